"""The generated data set: deterministic, of the requested size, and learnable."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from metarec.data.splits import SplitConfig, split_dataset
from metarec.data.synthetic import SyntheticConfig, generate
from metarec.errors import ConfigError
from metarec.evaluation.baselines import Biases, GlobalMean

SMALL = SyntheticConfig(num_users=300, num_items=200, num_ratings=15_000)


@pytest.fixture(scope="module")
def small():
    return generate(SMALL)


def test_same_seed_gives_identical_arrays(small) -> None:
    again = generate(SMALL)
    for name in ("user", "item", "rating", "timestamp"):
        np.testing.assert_array_equal(getattr(small.interactions, name),
                                      getattr(again.interactions, name))
    for side in ("users", "items"):
        a, b = getattr(small, side), getattr(again, side)
        assert a.specs == b.specs
        for name in a.values:
            assert torch.equal(a.values[name], b.values[name])
    assert small.user_ids == again.user_ids and small.item_ids == again.item_ids


def test_other_seed_differs(small) -> None:
    other = generate(SyntheticConfig(num_users=300, num_items=200, num_ratings=15_000, seed=1))
    assert not np.array_equal(small.interactions.rating[:500], other.interactions.rating[:500])


def test_sizes_near_the_config(small) -> None:
    inter = small.interactions
    assert small.num_users == 300 and small.num_items == 200
    # Per-user counts are clipped to [15, num_items] after scaling, so the total drifts.
    assert 0.8 * SMALL.num_ratings <= len(inter) <= 1.2 * SMALL.num_ratings
    counts = np.bincount(inter.user, minlength=small.num_users)
    assert counts.min() >= SMALL.min_user_ratings
    assert counts.max() <= SMALL.num_items
    # Each user rates distinct items: no (user, item) pair twice, no duplicate note.
    pairs = inter.user.astype(np.int64) * small.num_items + inter.item
    assert np.unique(pairs).size == len(inter)
    assert small.notes == []


def test_ratings_are_integers_in_1_to_5_and_use_the_scale(small) -> None:
    rating = small.interactions.rating
    assert set(np.unique(rating).tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert 3.0 < rating.mean() < 4.2


def test_features_and_timestamps(small) -> None:
    assert small.users.names == ["gender", "age", "occupation"]
    assert small.items.names == ["genres", "rate", "year"]
    year = small.items.values["year"].numpy()
    assert year.min() >= 1988 and year.max() <= 2000
    genres = small.items.values["genres"]
    assert ((genres > 0).sum(1) >= 1).all() and ((genres > 0).sum(1) <= 3).all()
    assert np.isfinite(small.interactions.timestamp).all()
    # A rating never predates its item's release (start of the release year).
    release = (year[small.interactions.item] - 1970) * 365.25 * 24 * 3600
    assert (small.interactions.timestamp >= np.round(release)).all()


def test_default_generation_is_fast() -> None:
    start = time.perf_counter()
    ds = generate()
    seconds = time.perf_counter() - start
    assert ds.num_users == 2000 and ds.num_items == 1500
    assert 120_000 <= len(ds.interactions) <= 180_000
    # Target is < 5 s on 2 cores; the bound is generous for a loaded CI machine.
    assert seconds < 15.0, f"generate() took {seconds:.1f} s"


def test_biases_beat_global_mean_on_new_users(small) -> None:
    split = split_dataset(small, SplitConfig(seed=0))
    new_users = split.scenarios["new_users"]
    assert len(new_users) >= 20
    train = split.train_ratings
    truth = new_users.query.rating
    mae = {}
    for name, baseline in (("mean", GlobalMean()), ("biases", Biases())):
        baseline.fit(train, small.num_users, small.num_items)
        mae[name] = float(np.abs(baseline.predict_tasks(new_users) - truth).mean())
    assert mae["biases"] < 0.95 * mae["mean"], mae


@pytest.mark.parametrize(("field", "value", "message"), [
    ("seed", -1, "synthetic seed must be >= 0, got -1"),
    ("noise_sd", -1.0, "synthetic noise_sd must be >= 0, got -1.0"),
    ("user_bias_sd", float("nan"), "synthetic user_bias_sd must be >= 0, got nan"),
    ("num_users", 0, "synthetic num_users must be >= 1, got 0"),
    ("latent_dim", 0, "synthetic latent_dim must be >= 1, got 0"),
    ("max_user_ratings", 10, "synthetic max_user_ratings must be >= 15, got 10"),
    ("feature_share", 1.5, "synthetic feature_share must be in [0, 1], got 1.5"),
    ("feature_share", -0.1, "synthetic feature_share must be in [0, 1], got -0.1"),
    ("global_mean", float("inf"), "synthetic global_mean must be a number, got inf"),
    ("year_range", (2000, 1990), "synthetic year_range must be (first, last) with "
     "1678 <= first <= last <= 2261, got (2000, 1990)"),
    ("year_range", (1990, 3000), "synthetic year_range must be (first, last) with "
     "1678 <= first <= last <= 2261, got (1990, 3000)"),
])
def test_config_out_of_range_is_a_config_error(field, value, message) -> None:
    with pytest.raises(ConfigError) as info:
        SyntheticConfig(**{field: value})
    assert str(info.value) == message


def test_config_bounds_are_allowed() -> None:
    data = generate(SyntheticConfig(num_users=20, num_items=20, num_ratings=300,
                                    feature_share=1.0, noise_sd=0.0, year_range=(1995, 1995),
                                    min_user_ratings=15, max_user_ratings=15))
    assert not np.isnan(data.interactions.rating).any()
    assert set(data.items.values["year"].tolist()) == {1995.0}
