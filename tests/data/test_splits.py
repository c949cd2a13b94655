"""Cold-start splits on a hand-made data set, and the MeLU protocol against the published
ML-1M split files."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from metarec.data.dataset import Dataset, Interactions, build_dataset
from metarec.data.splits import SCENARIOS, SplitConfig, new_item_mask, split_dataset
from metarec.errors import ConfigError, DataError
from metarec.tasks.taskset import TaskSet

DATASETS = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"


def _toy() -> Dataset:
    """10 users, 21 items.

    Items 0-10 are old (years 1990-1994), item 11 is old by year (1996) but first rated at
    t=5003, items 12-19 are new (1998-2000), item 20 has no year and no rating. User u
    rates 9 old items (t < 1000), item 11 when 3 <= u <= 8 (t = 5000 + u) and 5 new items
    (t >= 6000), except user 9 who rates only 2 new items (below ``min_ratings``).
    """
    rows = []
    for u in range(10):
        for j in range(9):
            rows.append((u, (u + j) % 11, 1 + (u + j) % 5, 100 * u + 20 + j))
        if 3 <= u <= 8:
            rows.append((u, 11, 1 + u % 5, 5000 + u))
        for j in range(2 if u == 9 else 5):
            rows.append((u, 12 + (u + j) % 8, 1 + (u * j) % 5, 6000 + 10 * u + j))
    ratings = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    ratings["user"] = "u" + ratings["user"].astype(str)
    years = [1990 + i % 5 for i in range(11)] + [1996] + [1998 + i % 3 for i in range(8)]
    items = pd.DataFrame({"year": [*years, np.nan]}, index=pd.Index(range(21), name="item"))
    return build_dataset("toy", ratings, items=items, item_fields={"year": "numeric"})


CONFIG = SplitConfig(min_ratings=3, max_ratings=12, query_size=2, validation_fraction=0.25,
                     seed=3)


@pytest.fixture(scope="module")
def toy() -> Dataset:
    return _toy()


@pytest.fixture(scope="module")
def split(toy: Dataset):
    return split_dataset(toy, CONFIG)


def _pairs(rows: Interactions) -> set[tuple[int, int]]:
    return set(zip(rows.user.tolist(), rows.item.tolist(), strict=True))


def _rows_of_task(tasks: TaskSet, t: int) -> tuple[Interactions, Interactions]:
    s = slice(tasks.support_offsets[t], tasks.support_offsets[t + 1])
    q = slice(tasks.query_offsets[t], tasks.query_offsets[t + 1])
    return tasks.support.subset(s), tasks.query.subset(q)


def test_toy_shape(toy: Dataset) -> None:
    assert toy.num_users == 10 and toy.num_items == 21
    assert len(toy.interactions) == 90 + 6 + 47


def test_users_split_80_20_by_seed(toy: Dataset, split) -> None:
    assert len(split.new_users) == 2 and len(split.existing_users) == 8
    assert np.intersect1d(split.new_users, split.existing_users).size == 0
    np.testing.assert_array_equal(np.union1d(split.new_users, split.existing_users),
                                  np.arange(10))
    again = split_dataset(toy, CONFIG)
    np.testing.assert_array_equal(again.new_users, split.new_users)
    np.testing.assert_array_equal(again.validation_users, split.validation_users)
    for name in SCENARIOS:
        a, b = split.scenarios[name], again.scenarios[name]
        np.testing.assert_array_equal(a.users, b.users)
        np.testing.assert_array_equal(a.query.item, b.query.item)
        np.testing.assert_array_equal(a.support.item, b.support.item)
    draws = {tuple(split_dataset(toy, SplitConfig(**{**vars(CONFIG), "seed": s})).new_users)
             for s in range(6)}
    assert len(draws) > 1, "the new-user draw must depend on the seed"


def _raw_items(toy: Dataset, index: np.ndarray) -> list[int]:
    return sorted(toy.item_ids.raw_of(index).tolist())


def test_new_items_are_released_after_the_cutoff(toy: Dataset, split) -> None:
    assert _raw_items(toy, split.new_items) == list(range(12, 20))
    mask = new_item_mask(toy, SplitConfig(cutoff_year=1995))
    assert _raw_items(toy, np.flatnonzero(mask)) == list(range(11, 20))
    assert not mask[toy.item_ids.index_of([20])[0]], "an item with no year is not new"


def test_scenarios_hold_the_right_rows(toy: Dataset, split) -> None:
    is_new_user = np.isin(np.arange(10), split.new_users)
    is_new_item = np.isin(np.arange(21), split.new_items)
    for name, tasks in split.scenarios.items():
        rows = tasks.all_ratings()
        want_new_user = name in ("new_users", "new_users_new_items")
        want_new_item = name in ("new_items", "new_users_new_items")
        assert (is_new_user[rows.user] == want_new_user).all(), name
        assert (is_new_item[rows.item] == want_new_item).all(), name


def test_every_task_has_query_size_query_rows_and_the_rest_support(toy: Dataset,
                                                                   split) -> None:
    inter = toy.interactions
    for name, tasks in split.scenarios.items():
        assert (tasks.query_sizes == CONFIG.query_size).all(), name
        assert np.all(np.diff(tasks.users) > 0), "one task per user, sorted"
        for t, user in enumerate(tasks.users):
            support, query = _rows_of_task(tasks, t)
            assert (support.user == user).all() and (query.user == user).all()
            assert not _pairs(support) & _pairs(query)
            in_scenario = inter.subset((inter.user == user)
                                       & np.isin(inter.item, np.concatenate(
                                           [support.item, query.item])))
            assert len(support) + len(query) == len(in_scenario)
            # Within a task rows are in time order.
            assert np.all(np.diff(support.timestamp) >= 0)


def test_scenarios_partition_the_ratings_of_users_within_bounds(toy: Dataset, split) -> None:
    inter = toy.interactions
    code = (np.isin(inter.user, split.new_users).astype(int)
            + 2 * np.isin(inter.item, split.new_items).astype(int))
    seen: dict[tuple[int, int], str] = {}
    for name, tasks in split.scenarios.items():
        for pair in _pairs(tasks.all_ratings()):
            assert pair not in seen, f"{pair} in {seen.get(pair)} and {name}"
            seen[pair] = name
    expected = set()
    for c in range(4):
        users, counts = np.unique(inter.user[code == c], return_counts=True)
        ok = users[(counts >= CONFIG.min_ratings) & (counts <= CONFIG.max_ratings)]
        part = inter.subset((code == c) & np.isin(inter.user, ok))
        expected |= _pairs(part)
    assert set(seen) == expected
    # User 9 rated 2 new items (< min_ratings): left out of its new-item scenario.
    u9 = int(toy.user_ids.index_of(["u9"])[0])
    for name in ("new_items", "new_users_new_items"):
        assert u9 not in split.scenarios[name].users
    # Ratings copied unchanged.
    by_pair = {(u, i): r for u, i, r in zip(inter.user, inter.item, inter.rating, strict=True)}
    for tasks in split.scenarios.values():
        rows = tasks.all_ratings()
        assert all(by_pair[(u, i)] == r
                   for u, i, r in zip(rows.user, rows.item, rows.rating, strict=True))


def test_max_ratings_bound_excludes_heavy_users(toy: Dataset) -> None:
    cfg = SplitConfig(min_ratings=3, max_ratings=9, query_size=2, seed=3)
    warm = split_dataset(toy, cfg).scenarios["warm"]
    # Users 3-8 have 10 old-item ratings (9 + item 11): above the bound.
    raw = set(toy.user_ids.raw_of(warm.users).tolist())
    assert raw and raw <= {"u0", "u1", "u2", "u9"}


def test_warm_is_honest(split) -> None:
    warm = split.scenarios["warm"]
    held_out = _pairs(warm.query)
    assert not held_out & _pairs(split.train.all_ratings())
    assert not held_out & _pairs(split.validation.all_ratings())
    assert not held_out & _pairs(split.train_ratings)
    # Everything training sees is warm support of existing users.
    assert _pairs(split.train.all_ratings()) <= _pairs(warm.support)
    assert not np.isin(split.train.users, split.new_users).any()


def test_validation_users_are_held_out_of_training(split) -> None:
    assert len(split.validation_users) == 2
    assert np.isin(split.validation_users, split.existing_users).all()
    assert not np.isin(split.train.users, split.validation_users).any()
    assert np.isin(split.validation.users, split.validation_users).all()
    assert len(split.train) > 0 and len(split.validation) > 0
    # Meta-training tasks split each support set again: query = min(query_size, n // 2).
    for tasks in (split.train, split.validation):
        n = tasks.support_sizes + tasks.query_sizes
        np.testing.assert_array_equal(tasks.query_sizes, np.minimum(2, n // 2))


def test_validation_trained_new_items_are_training_users_unevaluated_new_films(
        toy: Dataset, split) -> None:
    """The third validation set: new-film ratings of training users that no scenario
    evaluates (bounds of 3-4 put every user's 5 new films outside ``new_items``), at most
    ``max_ratings`` a user, ``query_size`` of them the query; never evaluated, never
    trained on, never another validation set's."""
    config = replace(CONFIG, max_ratings=4, train_out_of_bounds=True)
    bounded = split_dataset(toy, config)
    tasks = bounded.validation_trained_new_items
    assert len(bounded.scenarios["new_items"]) == 0 and len(tasks) > 0
    assert np.isin(tasks.users, bounded.train.users).all()
    assert not np.isin(tasks.users, bounded.validation_users).any()
    rows = tasks.all_ratings()
    assert np.isin(rows.item, bounded.new_items).all()
    np.testing.assert_array_equal(tasks.query_sizes, 2)
    np.testing.assert_array_equal(tasks.support_sizes + tasks.query_sizes, 4)
    assert _pairs(rows) <= _pairs(bounded.unbounded_new_items)
    for other in [*bounded.scenarios.values(), bounded.validation,
                  bounded.validation_new_items]:
        assert not _pairs(rows) & _pairs(other.all_ratings())
    assert not _pairs(rows) & _pairs(bounded.train_ratings)
    again = split_dataset(toy, config).validation_trained_new_items
    assert _pairs(again.query) == _pairs(tasks.query)
    # The default toy bounds evaluate every user's new films but user 9's two, fewer than
    # min_ratings: nothing is left for this set.
    assert len(split.validation_trained_new_items) == 0
    assert set(split.unbounded_new_items.user.tolist()) <= {9}


def test_validation_new_items_are_the_validation_users_new_item_supports(toy: Dataset,
                                                                         split) -> None:
    """The second validation set: every new-item support rating of the validation users,
    split again; never an evaluated query, never a training rating, only new items."""
    tasks = split.validation_new_items
    assert len(tasks) > 0 and np.isin(tasks.users, split.validation_users).all()
    rows = tasks.all_ratings()
    new_items = split.scenarios["new_items"]
    own = new_items.select(np.isin(new_items.users, split.validation_users))
    assert _pairs(rows) == _pairs(own.support)
    assert np.isin(rows.item, split.new_items).all()
    for scenario in split.scenarios.values():
        assert not _pairs(rows) & _pairs(scenario.query)
    assert not _pairs(rows) & _pairs(split.train_ratings)
    n = tasks.support_sizes + tasks.query_sizes
    np.testing.assert_array_equal(tasks.query_sizes, np.minimum(2, n // 2))
    # Seeded by the split: the same tasks again; with support_history (whose supports
    # hold old films too) the same new-item ratings.
    again = split_dataset(toy, CONFIG).validation_new_items
    assert _pairs(again.query) == _pairs(tasks.query)
    more = split_dataset(toy, replace(CONFIG, support_history=True))
    assert _pairs(more.validation_new_items.all_ratings()) == _pairs(rows)


def test_time_protocol_new_items_first_rated_after_quantile(toy: Dataset) -> None:
    cfg = SplitConfig(protocol="time", new_item_quantile=0.55, min_ratings=3,
                      max_ratings=12, query_size=2, seed=3)
    # Items 0-19 have a first rating: the 11 old ones at t <= 208, item 11 at t=5003,
    # the rest later. The 0.55 quantile of those 20 times (position 10.45 of 0-19) lies
    # between the last old item's and item 11's. Item 20, never rated, has no first
    # rating before the cutoff either: it is new.
    assert _raw_items(toy, np.flatnonzero(new_item_mask(toy, cfg))) == list(range(11, 21))
    split = split_dataset(toy, cfg)
    assert _raw_items(toy, split.new_items) == list(range(11, 21))
    assert not np.isin(split.scenarios["warm"].all_ratings().item, split.new_items).any()


def test_time_protocol_cuts_at_items_first_ratings_not_all_ratings() -> None:
    # Five old items, first rated at t = 1..5 and then rated on and on (t = 100..);
    # items 5-6 first rated at t = 6 and 7. The 0.7 quantile of all timestamps lies among
    # the late ratings of old items, after every first rating: it would find no new item.
    # The 0.7 quantile of the seven first-rating times (1..7) is 5.2: items 5 and 6 are new.
    rows = [(u, i, 3.0, i + 1.0 if u == 0 else 100.0 + 10 * u + i)
            for u in range(8) for i in range(5)]
    rows += [(0, 5, 4.0, 6.0), (1, 6, 2.0, 7.0)]
    ratings = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    data = build_dataset("t", ratings)
    assert np.quantile(ratings["timestamp"], 0.7) > 7
    mask = new_item_mask(data, SplitConfig(protocol="time", new_item_quantile=0.7))
    assert _raw_items(data, np.flatnonzero(mask)) == [5, 6]
    everything_old = SplitConfig(protocol="time", new_item_quantile=1.0)
    assert not new_item_mask(data, everything_old).any()
    with pytest.raises(ConfigError, match="new_item_quantile"):
        SplitConfig(protocol="time", new_item_quantile=1.5)


def test_time_protocol_needs_timestamps() -> None:
    ratings = pd.DataFrame({"user": [1, 2], "item": [1, 1], "rating": [3.0, 4.0]})
    with pytest.raises(ConfigError, match="timestamps"):
        split_dataset(build_dataset("t", ratings), SplitConfig(protocol="time"))
    with pytest.raises(ConfigError, match="release year"):
        split_dataset(build_dataset("t", ratings), SplitConfig(protocol="melu"))


def test_latest_query_takes_the_newest_ratings(toy: Dataset) -> None:
    cfg = SplitConfig(min_ratings=3, max_ratings=12, query_size=2, query="latest", seed=3)
    for name, tasks in split_dataset(toy, cfg).scenarios.items():
        for t in range(len(tasks)):
            support, query = _rows_of_task(tasks, t)
            assert support.timestamp.max() < query.timestamp.min(), name


def test_config_rejects_query_not_smaller_than_min_ratings() -> None:
    with pytest.raises(ConfigError, match="query_size"):
        SplitConfig(min_ratings=10, query_size=10)


def test_cap_support_k_shot(split) -> None:
    tasks = split.scenarios["warm"]
    capped = tasks.cap_support(3, seed=7)
    np.testing.assert_array_equal(capped.support_sizes, np.minimum(tasks.support_sizes, 3))
    np.testing.assert_array_equal(capped.users, tasks.users)
    np.testing.assert_array_equal(capped.query.item, tasks.query.item)
    for t in range(len(tasks)):
        full, _ = _rows_of_task(tasks, t)
        kept, _ = _rows_of_task(capped, t)
        assert _pairs(kept) <= _pairs(full)
        assert np.all(np.diff(kept.timestamp) >= 0), "time order kept"
    again = tasks.cap_support(3, seed=7)
    np.testing.assert_array_equal(again.support.item, capped.support.item)
    other = [tasks.cap_support(3, seed=s).support.item for s in range(8, 12)]
    assert any(not np.array_equal(o, capped.support.item) for o in other)
    whole = tasks.cap_support(1000, seed=0)
    np.testing.assert_array_equal(whole.support.item, tasks.support.item)
    np.testing.assert_array_equal(whole.support_offsets, tasks.support_offsets)


# ---- the published MeLU split of ML-1M -----------------------------------------------
MELU_FILES = ("warm_state", "user_cold_state", "item_cold_state", "user_and_item_cold_state")
# MeLU renumbers ML-1M movies 860 -> 811 and 1795 -> 1741 in its split files; both are old
# (1994) films, so they are left out of the new-item comparison on both sides.
RENUMBERED = {811, 860, 1741, 1795}


@pytest.mark.slow  # 3-7 s: reads all of ML-1M
def test_melu_split_matches_published() -> None:
    from metarec.data.readers.ml1m import read_ml1m

    ml1m, melu = DATASETS / "ml-1m", DATASETS / "melu-ml1m"
    if not (ml1m / "ratings.dat").is_file() or not (melu / "warm_state.json").is_file():
        pytest.skip(f"ML-1M or the MeLU split files not available under {DATASETS}")
    published = {name: {int(u): [int(i) for i in items] for u, items in
                        json.loads((melu / f"{name}.json").read_text()).items()}
                 for name in MELU_FILES}
    dataset = read_ml1m(ml1m, extras=melu / "movies_extrainfos.dat")
    split = split_dataset(dataset, SplitConfig(protocol="melu", seed=0))

    # All 6040 users: 4832 existing, 1208 new, in both.
    assert len(published["warm_state"]) == 4832 and len(published["user_cold_state"]) == 1208
    assert len(split.existing_users) == 4832 and len(split.new_users) == 1208
    assert sum(len(v) for d in published.values() for v in d.values()) == len(
        dataset.interactions)

    # New items (release year > 1997): exactly the published item-cold items.
    published_new = {i for name in ("item_cold_state", "user_and_item_cold_state")
                     for items in published[name].values() for i in items} - RENUMBERED
    rated = np.unique(dataset.interactions.item)
    ours_new = set(dataset.item_ids.raw_of(np.intersect1d(split.new_items, rated)).tolist())
    assert ours_new - RENUMBERED == published_new
    assert len(published_new) == 740

    # Per-scenario users and ratings after the 13..100 bound. They differ only through the
    # random draw of the 1208 new users out of 6040. For each user u let x_u be their
    # in-bound count (users: 0/1; ratings: count) on old items and y_u on new items; a
    # scenario total is a sum over a simple random sample of users, whose standard
    # deviation is sqrt(n var(x) (N - n) / (N - 1)) (n = 1208 for the new-user
    # scenarios; warm and new_items are the complements, with the same deviation). Two
    # independent draws differ by sqrt(2) times that; we allow 4 such deviations.
    old_count = {u: len(v) for name in ("warm_state", "user_cold_state")
                 for u, v in published[name].items()}
    new_count = {u: len(v) for name in ("item_cold_state", "user_and_item_cold_state")
                 for u, v in published[name].items()}
    users = sorted(set(old_count) | set(new_count))
    n_total, n_new = len(users), 1208

    def in_bounds(count: int) -> bool:
        return 13 <= count <= 100

    def spread(values: np.ndarray) -> float:
        return float(np.sqrt(n_new * values.var() * (n_total - n_new) / (n_total - 1)))

    per_side = {}
    for side, counts in (("old", old_count), ("new", new_count)):
        c = np.array([counts.get(u, 0) for u in users])
        ok = np.array([in_bounds(v) for v in c])
        per_side[side] = {"users": spread(ok.astype(float)),
                          "ratings": spread(np.where(ok, c, 0).astype(float))}
    side_of = {"warm_state": ("warm", "old"), "user_cold_state": ("new_users", "old"),
               "item_cold_state": ("new_items", "new"),
               "user_and_item_cold_state": ("new_users_new_items", "new")}
    for name, (scenario, side) in side_of.items():
        kept = [len(v) for v in published[name].values() if in_bounds(len(v))]
        tasks = split.scenarios[scenario]
        ours = {"users": len(tasks),
                "ratings": int(tasks.support_sizes.sum() + tasks.query_sizes.sum())}
        theirs = {"users": len(kept), "ratings": sum(kept)}
        for what in ("users", "ratings"):
            tolerance = 4 * np.sqrt(2) * per_side[side][what]
            assert abs(ours[what] - theirs[what]) <= tolerance, (
                f"{scenario} {what}: ours {ours[what]}, published {theirs[what]}, "
                f"tolerance {tolerance:.0f}")


def test_train_out_of_bounds_adds_dropped_existing_users_only(toy: Dataset) -> None:
    """Users 3-8 have 10 old-item ratings (above max_ratings=9) and are in no warm task:
    with ``train_out_of_bounds`` their old-item ratings become training tasks of at most
    ``max_ratings`` rows each, every row once; evaluation is unchanged."""
    cfg = SplitConfig(min_ratings=3, max_ratings=4, query_size=2, validation_fraction=0.25,
                      seed=3)
    plain = split_dataset(toy, cfg)
    more = split_dataset(toy, replace(cfg, train_out_of_bounds=True))
    for name in SCENARIOS:
        for side in ("support", "query"):
            assert _pairs(getattr(more.scenarios[name], side)) == _pairs(
                getattr(plain.scenarios[name], side))
    assert _pairs(more.validation.all_ratings()) == _pairs(plain.validation.all_ratings())
    extra = more.train.select(np.arange(len(plain.train), len(more.train)))
    assert _pairs(more.train.all_ratings()) - _pairs(extra.all_ratings()) == _pairs(
        plain.train.all_ratings())
    # Who and what: existing, non-validation users outside the warm tasks; old items only.
    assert not np.isin(extra.users, plain.scenarios["warm"].users).any()
    assert not np.isin(extra.users, plain.new_users).any()
    assert not np.isin(extra.users, plain.validation_users).any()
    rows = extra.all_ratings()
    assert not np.isin(rows.item, plain.new_items).any()
    assert not _pairs(rows) & _pairs(plain.scenarios["warm"].query)
    # Every old-item rating of those users, each once, in tasks of <= max_ratings rows.
    inter = toy.interactions
    expected = ~np.isin(inter.item, plain.new_items) & np.isin(inter.user, extra.users)
    assert len(rows) == int(expected.sum()) and _pairs(rows) == _pairs(inter.subset(expected))
    sizes = extra.support_sizes + extra.query_sizes
    assert sizes.max() <= cfg.max_ratings and len(extra) > len(np.unique(extra.users))
    np.testing.assert_array_equal(extra.query_sizes, np.minimum(2, sizes // 2))


def test_support_history_gives_each_task_everything_known_about_its_user(toy: Dataset
                                                                         ) -> None:
    """With ``support_history`` a task's support is every rating of its user that is no
    scenario's query (training ratings, other scenarios' supports, ratings outside the
    bounds); queries, training and validation stay as they were, so models train
    identically."""
    cfg = SplitConfig(min_ratings=3, max_ratings=9, query_size=2, validation_fraction=0.25,
                      train_out_of_bounds=True, seed=3)
    plain = split_dataset(toy, cfg)
    more = split_dataset(toy, replace(cfg, support_history=True))
    for part in ("train", "validation"):
        for side in ("support", "query"):
            assert _pairs(getattr(getattr(more, part), side)) == _pairs(
                getattr(getattr(plain, part), side))
    queries = set().union(*(_pairs(t.query) for t in plain.scenarios.values()))
    everything = _pairs(toy.interactions)
    grew = []
    for name in SCENARIOS:
        before, after = plain.scenarios[name], more.scenarios[name]
        assert _pairs(after.query) == _pairs(before.query)
        assert after.users.tolist() == before.users.tolist()
        assert _pairs(before.support) <= _pairs(after.support)
        users = set(before.users.tolist())
        assert _pairs(after.support) == {(u, i) for u, i in everything - queries
                                         if u in users}
        assert len(after.support) == len(_pairs(after.support))  # each rating once
        grew.append(len(after.support) > len(before.support))
    # New-item tasks gain their users' training ratings; in this toy every scenario grows.
    assert _pairs(more.scenarios["new_items"].support) & _pairs(plain.train_ratings)
    assert all(grew)


def _toy_with_features() -> Dataset:
    """The toy with a numeric year (new films 12-19 are later than every old one), a
    categorical director, multi-valued writers and a categorical user zip code."""
    toy = _toy()
    raw_items = pd.DataFrame({
        "year": [1990 + i % 5 for i in range(11)] + [1996] + [1998 + i % 3 for i in range(8)]
        + [np.nan],
        # Old films share directors a/b; new films 12-15 have a, 16-19 the new director z.
        "director": ["a" if i % 2 else "b" for i in range(12)] + ["a"] * 4 + ["z"] * 4
        + [""],
        "writers": ["w1|w2"] * 12 + ["w1|w9"] * 8 + [""]},
        index=pd.Index(range(21), name="item"))
    users = pd.DataFrame({"zip": [f"z{u}" for u in range(10)]},
                         index=pd.Index([f"u{u}" for u in range(10)], name="user"))
    ratings = pd.DataFrame({"user": [f"u{u}" for u in toy.interactions.user],
                            "item": toy.interactions.item, "rating": toy.interactions.rating,
                            "timestamp": toy.interactions.timestamp})
    data = build_dataset("toy", ratings, users=users, items=raw_items,
                         user_fields={"zip": "categorical"},
                         item_fields={"year": "numeric", "director": "categorical",
                                      "writers": "multi"})
    return data


def test_unseen_codes_read_as_missing_only_when_asked() -> None:
    data = _toy_with_features()
    split = split_dataset(data, CONFIG)
    plain = split.features(data)  # off by default: the features as they are
    assert plain.users is data.users and plain.items is data.items
    train = split.train_ratings  # and the training ratings only
    for field in ("user", "item", "rating"):
        np.testing.assert_array_equal(getattr(plain.interactions, field), getattr(train, field))
    seen = split_dataset(data, replace(CONFIG, unseen_codes_missing=True)).features(data)
    assert seen.users is not data.users and len(seen.interactions) < len(data.interactions)
    director = data.items.spec("director").vocab.index("z") + 1
    writer = data.items.spec("writers").vocab.index("w9") + 1
    old = split.train_ratings.item
    assert director not in data.items.values["director"][old].tolist()
    # The new director reads as missing; a known one stays; w9 drops out of the set.
    assert seen.items.values["director"][16:20].tolist() == [0] * 4
    assert torch.equal(seen.items.values["director"][:16], data.items.values["director"][:16])
    w1 = data.items.spec("writers").vocab.index("w1") + 1
    assert seen.items.values["writers"][12].tolist() == [w1, 0]
    assert (data.items.values["writers"][12] == writer).any()
    torch.testing.assert_close(seen.items.values["year"], data.items.values["year"],
                               equal_nan=True)  # numeric fields unchanged
    # A training user's zip stays; a new or validation user's (unique) zip is missing.
    zips = seen.users.values["zip"]
    trained = set(split.train.users.tolist())
    for user in range(10):
        expected = data.users.values["zip"][user] if user in trained else 0
        assert int(zips[user]) == int(expected), user
    assert set(split.new_users.tolist()) and not set(split.new_users.tolist()) & trained


def test_numeric_values_clamp_to_the_training_range_only_when_asked() -> None:
    data = _toy_with_features()
    split = split_dataset(data, replace(CONFIG, numeric_within_training=True))
    seen = split.features(data)
    years = data.items.values["year"]
    trained = np.unique(split.train_ratings.item)
    low, high = np.nanmin(years[trained].numpy()), np.nanmax(years[trained].numpy())
    low, high = float(low), float(high)
    assert high < float(years[12:20].min())  # every new film is later than training's
    # Inside the range nothing moves; beyond it a value reads as the nearest end; missing
    # stays missing; categorical fields are untouched (unseen codes are another option).
    expected = years.clamp(low, high)
    torch.testing.assert_close(seen.items.values["year"], expected, equal_nan=True)
    assert seen.items.values["year"][12:20].tolist() == [high] * 8
    assert torch.isnan(seen.items.values["year"][20])
    torch.testing.assert_close(seen.items.values["year"][trained], years[trained],
                               equal_nan=True)
    assert torch.equal(seen.items.values["director"], data.items.values["director"])
    assert torch.equal(seen.users.values["zip"], data.users.values["zip"])
    both = split_dataset(data, replace(CONFIG, numeric_within_training=True,
                                       unseen_codes_missing=True)).features(data)
    assert both.items.values["year"][12:20].tolist() == [high] * 8
    assert both.items.values["director"][16:20].tolist() == [0] * 4


@pytest.mark.parametrize(("changes", "note"), [
    ({}, None),
    ({"new_user_fraction": 0.0}, "no user fits new_users, new_users_new_items: no user is new "
                                 "(split.new_user_fraction = 0)"),
    ({"cutoff_year": 2005, "new_user_fraction": 0.0},
     "no user fits new_items, new_users_new_items: no item is new (none released after "
     "split.cutoff_year = 2005); no user fits new_users: no user is new "
     "(split.new_user_fraction = 0); no user fits meta-train: a user counts in a scenario "
     "with 3 to 12 ratings there (split.min_ratings, split.max_ratings)"),
    ({"cutoff_year": 1000}, "no user fits warm, new_users, meta-train: every rated item is "
                            "new (released after split.cutoff_year = 1000); no user fits "
                            "new_items: a user counts in a scenario with 3 to 12 ratings "
                            "there (split.min_ratings, split.max_ratings)"),
    ({"min_ratings": 11}, "no user fits warm, new_users, new_items, new_users_new_items, "
                          "meta-train: a user counts in a scenario with 11 to 12 ratings "
                          "there (split.min_ratings, split.max_ratings)"),
])
def test_the_empty_note_names_the_cause_of_each_empty_scenario(toy: Dataset, changes: dict,
                                                               note: str | None) -> None:
    """With no new item the note had blamed the bounds on a user's ratings."""
    assert split_dataset(toy, replace(CONFIG, **changes)).empty_note() == note


def test_nothing_to_train_on_because_every_item_is_new_says_to_move_the_cutoff(
        toy: Dataset) -> None:
    with pytest.raises(DataError, match=r"toy: nothing to train on: .*every rated item is "
                                        r"new .*; move the split's new-item cutoff$"):
        split_dataset(toy, replace(CONFIG, cutoff_year=1000)).require_training("toy")


def test_config_rejects_an_unknown_query() -> None:
    with pytest.raises(ConfigError) as info:
        SplitConfig(query="rnd")  # type: ignore[arg-type]
    assert str(info.value) == "split query must be 'random' or 'latest', got 'rnd'"


def test_config_rejects_min_ratings_above_max_ratings() -> None:
    with pytest.raises(ConfigError) as info:
        SplitConfig(min_ratings=20, max_ratings=15)
    assert str(info.value) == ("split min_ratings (20) must not exceed max_ratings (15): "
                               "every scenario would be empty")
    SplitConfig(min_ratings=15, max_ratings=15)


@pytest.mark.parametrize(("fields", "message"), [
    ({"query_size": 0}, "split query_size must be >= 1, got 0: every task needs a query"),
    ({"query_size": -3}, "split query_size must be >= 1, got -3: every task needs a query"),
    ({"seed": -1}, "split seed must be >= 0, got -1"),
    ({"cutoff_year": float("nan")}, "split cutoff_year must be a year, got nan"),
])
def test_config_rejects_out_of_range_fields(fields, message) -> None:
    with pytest.raises(ConfigError) as info:
        SplitConfig(**fields)
    assert str(info.value) == message

