"""OnlineRecommender: per-user state, adaptation equal to the learner's, meta-updates
with replay, and the three modes."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from metarec.data.dataset import Interactions
from metarec.data.splits import SplitConfig, split_dataset
from metarec.data.synthetic import SyntheticConfig, generate
from metarec.errors import ConfigError, InputError
from metarec.learners.config import LearnerConfig
from metarec.learners.online import OnlineConfig, OnlineRecommender
from metarec.learners.ranking import top_k
from metarec.learners.registry import learner_class
from metarec.models import FeatureMF, FeatureMLP
from metarec.tasks.batch import pad_tasks
from metarec.tasks.taskset import TaskSet


@pytest.fixture(scope="module", params=["maml-r", "ridge"])
def setup(request):
    """A trained learner: one that adapts by gradient steps, one in closed form."""
    dataset = generate(SyntheticConfig(num_users=150, num_items=100, num_ratings=6000,
                                       seed=1))
    split = split_dataset(dataset, SplitConfig(seed=0))
    torch.manual_seed(0)  # the same model whichever tests ran before
    model = FeatureMLP.for_dataset(dataset, embedding_dim=8, hidden=(16, 16))
    learner = learner_class(request.param)(model, LearnerConfig(epochs=1, inner_steps=3,
                                                                patience=None))
    learner.fit(split.train, dataset)
    return dataset, learner


def events(users, items, ratings) -> Interactions:
    n = len(users)
    return Interactions(np.asarray(users, np.int64), np.asarray(items, np.int64),
                        np.asarray(ratings, np.float32), np.arange(n, dtype=np.float64))


def test_state_keeps_the_latest_events_up_to_the_cap(setup) -> None:
    dataset, learner = setup
    online = OnlineRecommender(learner, dataset, OnlineConfig(support_cap=3))
    online.learn(events([5, 5, 7, 5, 5], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5]))
    state = online.state_of(5)
    assert state.snapshot() == {"items": [2, 4, 5], "ratings": [2.0, 4.0, 5.0],
                                "num_events": 4, "last_time": 4.0, "seen": [1, 2, 4, 5]}
    assert online.state_of(7).num_events == 1 and online.state_of(9) is None


def test_a_re_rated_item_keeps_its_latest_rating_only(setup) -> None:
    """A user who rates an item again changed their mind: the support holds the item
    once, with the new rating, as its latest event; a meta-update task cannot hold the
    item in both support and query."""
    dataset, learner = setup
    online = OnlineRecommender(learner, dataset, OnlineConfig(support_cap=4, query_size=1))
    online.learn(events([5, 5, 5, 5, 5], [1, 2, 3, 2, 4], [1, 2, 3, 5, 4]))
    assert online.state_of(5).snapshot() == {
        "items": [1, 3, 2, 4], "ratings": [1.0, 3.0, 5.0, 4.0], "num_events": 5,
        "last_time": 4.0, "seen": [1, 2, 3, 4]}
    online.learn(events([5], [4], [2]))
    [task] = online.recent_tasks(1)
    assert (task.items.tolist(), task.ratings.tolist()) == ([1, 3, 2, 4], [1, 3, 5, 2])
    # The same adaptation as a user who rated each item once, in that order.
    fresh = OnlineRecommender(learner, dataset, OnlineConfig(support_cap=4, query_size=1))
    fresh.learn(events([5, 5, 5, 5], [1, 3, 2, 4], [1, 3, 5, 2]))
    assert np.array_equal(online.score(5), fresh.score(5))


def test_recommend_leaves_out_every_rated_item_not_only_the_kept_ones(setup) -> None:
    dataset, learner = setup
    online = OnlineRecommender(learner, dataset, OnlineConfig(support_cap=2))
    online.learn(events([5, 5, 5, 5], [1, 2, 3, 4], [5, 1, 4, 2]))
    assert list(online.state_of(5).items) == [3, 4]
    top = [i for i, _ in online.recommend(5, k=dataset.num_items)]
    assert sorted(top) == sorted(set(range(dataset.num_items)) - {1, 2, 3, 4})
    every = [i for i, _ in online.recommend(5, k=dataset.num_items, exclude_seen=False)]
    assert sorted(every) == list(range(dataset.num_items))


def test_recommend_and_score_reject_unknown_users_and_negative_k(setup) -> None:
    dataset, learner = setup
    online = OnlineRecommender(learner, dataset)
    with pytest.raises(InputError, match="out of range"):
        online.recommend(dataset.num_users, k=3)
    with pytest.raises(InputError, match="out of range"):
        online.score(-1)
    with pytest.raises(InputError, match="k must be a whole number >= 0"):
        online.recommend(0, k=-2)
    with pytest.raises(InputError, match=f"candidate 1: item index {dataset.num_items} is "
                                         "outside the item table"):
        online.recommend(0, k=3, candidates=np.array([0, dataset.num_items]))
    assert online.recommend(0, k=3, candidates=np.array([], dtype=np.int64)) == []


def test_a_changed_item_readapts_the_users_who_rated_it(setup) -> None:
    dataset, learner = setup
    dataset = copy.deepcopy(dataset)
    online = OnlineRecommender(learner, dataset)
    stream = events([7, 7, 7, 8], [1, 2, 3, 4], [5, 1, 4, 2])
    online.learn(stream)
    online.score(7), online.score(8)
    adaptations = online.adaptations
    rate = dataset.items.values["rate"]
    rate[2] = 1 + rate[2] % 4  # item 2's features change in place, as POST /items does
    online.item_changed(2)
    after = {u: online.score(u) for u in (7, 8)}
    assert online.adaptations == adaptations + 1  # user 7 only: user 8 never rated it
    restarted = OnlineRecommender(learner, dataset)  # what a restart rebuilds
    restarted.learn(stream)
    for user in (7, 8):
        np.testing.assert_allclose(after[user], restarted.score(user), atol=1e-6)


def test_adaptation_equals_the_learners_padded_adapt(setup) -> None:
    dataset, learner = setup
    online = OnlineRecommender(learner, dataset)
    online.learn(events([3] * 6 + [4] * 2, [1, 2, 3, 4, 5, 6, 7, 8], [5, 1, 4, 2, 5, 1, 3, 3]))
    items = np.arange(10)
    single = online.score(3, items)
    # Learner.adapt on a one-task padded batch, then predict: the reference.
    support = online.state_of(3).support(3)
    query = Interactions(np.full(10, 3), items, np.zeros(10, np.float32), np.full(10, np.nan))
    task = TaskSet(np.array([3]), support, np.array([0, 6]), query, np.array([0, 10]))
    batch = pad_tasks(task, np.array([0]), dataset.users, dataset.items)
    adapted = learner.adapt(batch)
    reference = learner.predict(adapted, batch.user_fields, batch.query_fields)[0].numpy()
    np.testing.assert_allclose(single, reference, atol=1e-5)
    # Batched (several users at once) equals one at a time.
    online._cache.clear()
    together = online.predict(np.array([3, 4, 3]), np.array([9, 9, 8]))
    online._cache.clear()
    apart = [online.predict(np.array([u]), np.array([i]))[0] for u, i in ((3, 9), (4, 9), (3, 8))]
    np.testing.assert_allclose(together, apart, atol=1e-5)
    assert online.adaptations == 5  # 1 (score) + 2 (together) + 2 (apart; 3 is cached)


def test_new_events_readapt_and_new_user_is_personalised(setup) -> None:
    dataset, learner = setup
    online = OnlineRecommender(learner, dataset)
    cold = online.score(11)
    online.learn(events([11, 11, 11], [1, 2, 3], [5, 5, 5]))
    warm = online.score(11)
    assert not np.allclose(cold, warm)
    assert warm.mean() > cold.mean()  # all fives pull the user's scores up
    assert online.score(11) is not warm and np.array_equal(online.score(11), warm)
    assert online.adaptations == 1
    # Scoring every item reuses cached item embeddings: equal to scoring them by index.
    np.testing.assert_allclose(warm, online.score(11, np.arange(100)), atol=1e-6)
    top = online.recommend(11, k=5)
    assert len(top) == 5 and not {i for i, _ in top} & {1, 2, 3}


def test_warm_up_leaves_every_state_as_it_was(setup) -> None:
    dataset, learner = setup
    online = OnlineRecommender(learner, dataset)
    online.warm_up()  # nobody known yet: nobody known after
    assert online.users == {} and online._cache == {} and online.last_adapted == {}
    assert online.adaptations == 0
    online.learn(events([0, 0, 2], [4, 5, 6], [5, 1, 3]))
    before = online.score(0)
    kept = (online.state_of(0).snapshot(), online._cache[0][0], online.last_adapted[0],
            online.adaptations)
    online.warm_up()
    assert (online.state_of(0).snapshot(), online._cache[0][0], online.last_adapted[0],
            online.adaptations) == kept
    np.testing.assert_array_equal(online.score(0), before)
    assert online.adaptations == kept[3]  # still cached


def test_static_ignores_events_and_sgd_changes_the_model(setup) -> None:
    dataset, learner = setup
    stream = events([1, 2, 3, 1], [4, 5, 6, 7], [5, 5, 5, 5])
    static = OnlineRecommender(copy.deepcopy(learner), dataset, OnlineConfig(mode="static"))
    before = static.predict(np.array([1, 2]), np.array([9, 9]))
    static.learn(stream)
    np.testing.assert_array_equal(static.predict(np.array([1, 2]), np.array([9, 9])), before)
    sgd = OnlineRecommender(copy.deepcopy(learner), dataset, OnlineConfig(mode="sgd",
                                                                          sgd_lr=0.05))
    sgd.learn(stream)
    after = sgd.predict(np.array([1, 2]), np.array([9, 9]))
    assert (after > before).all()  # a step towards ratings of 5


def test_meta_updates_run_every_n_events_with_replay(setup) -> None:
    dataset, learner = setup
    learner = copy.deepcopy(learner)
    online = OnlineRecommender(learner, dataset, OnlineConfig(
        update_every=20, update_tasks=4, replay_tasks=2, replay_capacity=3, query_size=2))
    weights = {k: v.clone() for k, v in learner.model.state_dict().items()}
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(10), 6)
    online.learn(events(users, rng.integers(0, 100, 60), rng.integers(1, 6, 60)))
    assert online.meta_updates == 3
    # Offered: users 0-2 at event 20 (user 3 has only 2 events then), 3-6 and 6-9 later.
    assert len(online._reservoir) == 3 and online._offered == 3 + 4 + 4
    changed = [k for k, v in learner.model.state_dict().items()
               if not torch.equal(v, weights[k])]
    assert changed  # the initialisation moved
    assert online.model_version == 3 and online._cache == {}


def test_no_update_tasks_means_no_meta_update(setup) -> None:
    """``update_tasks = 0`` had meta-trained on every recently active user."""
    dataset, learner = setup
    learner = copy.deepcopy(learner)
    weights = {k: v.clone() for k, v in learner.model.state_dict().items()}
    online = OnlineRecommender(learner, dataset, OnlineConfig(
        update_every=4, update_tasks=0, replay_tasks=0, query_size=1))
    online.learn(events([1, 1, 2, 2, 3, 3], [1, 2, 3, 4, 5, 6], [5, 1, 4, 2, 3, 3]))
    assert online.recent_tasks(0) == []
    assert online.meta_updates == 0
    assert all(torch.equal(v, weights[k]) for k, v in learner.model.state_dict().items())


def test_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="online mode"):
        OnlineConfig(mode="fast")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        OnlineConfig(support_cap=0)
    with pytest.raises(ConfigError, match="item_shrinkage"):
        OnlineConfig(item_shrinkage=-1.0)


def _static(learner, dataset, users, items) -> np.ndarray:
    with torch.no_grad():
        return learner.model(dataset.users.take(torch.tensor(users)),
                             dataset.items.take(torch.tensor(items))).double().numpy()


def test_item_offsets_exact_on_a_hand_made_stream(setup) -> None:
    dataset, learner = setup
    online = OnlineRecommender(learner, dataset, OnlineConfig(mode="static",
                                                              item_shrinkage=1.0))
    online.learn(events([5, 6, 5], [1, 1, 2], [5, 2, 4]))
    p51, p61, p52 = _static(learner, dataset, [5, 6, 5], [1, 1, 2])
    r1, r2, r3 = 5 - p51, 2 - p61, 4 - p52
    # Item 1: two raters with no earlier events; item 2: user 5's residual less their
    # mean before it (r1 over 1 event + 1 pseudo-event); item 3: no event.
    expected = np.array([(r1 + r2) / (2 + 1), (r3 - r1 / 2) / (1 + 1), 0.0])
    np.testing.assert_allclose(online.offsets.of(np.array([1, 2, 3])), expected,
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(online.predict(np.array([7, 7, 7]), np.array([1, 2, 3])),
                               _static(learner, dataset, [7, 7, 7], [1, 2, 3]) + expected,
                               rtol=1e-6, atol=1e-6)
    scores = online.score(7)
    np.testing.assert_allclose(scores[[1, 2, 3]], _static(learner, dataset, [7, 7, 7],
                                                          [1, 2, 3]) + expected, atol=1e-5)
    # Off (the default): nothing is added.
    plain = OnlineRecommender(learner, dataset, OnlineConfig(mode="static"))
    plain.learn(events([5, 6, 5], [1, 1, 2], [5, 2, 4]))
    np.testing.assert_allclose(plain.predict(np.array([7]), np.array([1])),
                               _static(learner, dataset, [7], [1]), atol=1e-6)


@pytest.mark.parametrize("options", [{}, {"update_every": 25, "update_tasks": 4},
                                     {"mode": "sgd", "sgd_lr": 0.1}])
def test_item_offsets_do_not_depend_on_how_the_stream_is_cut(setup, options) -> None:
    # Residuals are taken against the model as trained, even when meta-updates or SGD
    # steps change the model between chunks (or inside one).
    dataset, learner = setup
    rng = np.random.default_rng(4)
    n = 80
    stream = events(rng.integers(0, 10, n), rng.integers(0, 30, n), rng.integers(1, 6, n))
    config = OnlineConfig(item_shrinkage=2.0, **options)
    whole = OnlineRecommender(copy.deepcopy(learner), dataset, config)
    whole.learn(stream)
    assert whole.meta_updates == (3 if "update_every" in options else 0)
    one_by_one = OnlineRecommender(copy.deepcopy(learner), dataset, config)
    for e in range(n):
        one_by_one.learn(stream.subset(np.array([e])))
    chunks = OnlineRecommender(copy.deepcopy(learner), dataset, config)
    for start in range(0, n, 7):
        chunks.learn(stream.subset(np.arange(start, min(start + 7, n))))
    items = np.arange(dataset.num_items)
    for other in (one_by_one, chunks):
        np.testing.assert_allclose(other.offsets.of(items), whole.offsets.of(items),
                                   atol=1e-6)  # float32 forwards of other batches
        if options.get("mode") != "sgd":  # (SGD's steps do depend on the cut)
            np.testing.assert_allclose(other.predict(np.full(len(items), 3), items),
                                       whole.predict(np.full(len(items), 3), items),
                                       atol=1e-6)


def _with_offsets(setup):
    """A copy of the data set (features may be changed) and a recommender with item
    offsets that has learned a three-event stream, with its offsets of items 0-3."""
    dataset, learner = setup
    dataset = copy.deepcopy(dataset)
    config = OnlineConfig(item_shrinkage=1.0)
    stream = events([7, 7, 8], [1, 2, 2], [5, 1, 4])
    online = OnlineRecommender(learner, dataset, config)
    online.learn(stream)
    return dataset, learner, config, stream, online, online.offsets.of(np.arange(4))


def test_a_failed_refit_keeps_the_offsets_and_their_log(setup, monkeypatch) -> None:
    dataset, learner, config, stream, online, before = _with_offsets(setup)
    rate = dataset.items.values["rate"]
    rate[2] = 1 + rate[2] % 4  # item 2's features change: its offset must be learned again
    online.item_changed(2)
    real = online._trained_predict
    monkeypatch.setattr(online, "_trained_predict",
                        lambda rows: (_ for _ in ()).throw(MemoryError("transient")))
    with pytest.raises(MemoryError):
        online.predict(np.array([9]), np.array([2]))
    # Nothing was replaced, and the pass is still owed.
    assert online._offsets_stale and len(online.offsets.log_users) == 3
    np.testing.assert_array_equal(online.offsets.of(np.arange(4)), before)
    monkeypatch.setattr(online, "_trained_predict", real)
    online.predict(np.array([9]), np.array([2]))  # learned again, from the whole log
    fresh = OnlineRecommender(learner, dataset, config)
    fresh.learn(stream)
    np.testing.assert_allclose(online.offsets.of(np.arange(4)), fresh.offsets.of(np.arange(4)),
                               atol=1e-6)
    assert np.abs(online.offsets.of(np.array([2])) - before[2]).max() > 1e-4


def test_a_changed_user_has_the_offsets_learned_again(setup) -> None:
    dataset, learner, config, stream, online, before = _with_offsets(setup)
    gender = dataset.users.values["gender"]
    gender[7] = 1 if gender[7] == 2 else 2  # user 7's features change (codes 1, 2)
    online.forget_adaptation(7)
    after = online.predict(np.array([9, 9]), np.array([1, 2]))
    fresh = OnlineRecommender(learner, dataset, config)  # what a restart rebuilds
    fresh.learn(stream)
    np.testing.assert_allclose(after, fresh.predict(np.array([9, 9]), np.array([1, 2])),
                               atol=1e-6)
    assert np.abs(online.offsets.of(np.array([1, 2])) - before[[1, 2]]).max() > 1e-4


def test_learn_refuses_non_finite_ratings_and_indices_outside_the_tables(setup) -> None:
    dataset, learner = setup
    for shrinkage in (None, 1.0):
        online = OnlineRecommender(learner, dataset, OnlineConfig(item_shrinkage=shrinkage))
        with pytest.raises(InputError, match="event 1: rating nan is not a finite number"):
            online.learn(events([1, 2], [3, 4], [4.0, np.nan]))
        with pytest.raises(InputError, match=f"event 0: item index {dataset.num_items} is "
                           "outside the item table"):
            online.learn(events([1], [dataset.num_items], [4.0]))
        assert online.users == {} and not len(online.offsets.log_users)  # nothing learned


def test_item_offsets_are_learned_again_when_features_or_the_model_change(setup) -> None:
    dataset, learner = setup
    dataset = copy.deepcopy(dataset)
    config = OnlineConfig(item_shrinkage=1.0)
    stream = events([7, 7, 8, 9], [1, 2, 2, 3], [5, 1, 4, 2])
    online = OnlineRecommender(learner, dataset, config)
    online.learn(stream)
    before = online.offsets.of(np.arange(5))
    online.refit_offsets()  # nothing changed: the same offsets
    np.testing.assert_allclose(online.offsets.of(np.arange(5)), before, atol=1e-6)
    rate = dataset.items.values["rate"]
    rate[2] = 1 + rate[2] % 4  # item 2's features change in place, as POST /items does
    online.item_changed(2)
    after = online.score(9)
    restarted = OnlineRecommender(learner, dataset, config)  # what a restart rebuilds
    restarted.learn(stream)
    np.testing.assert_allclose(after, restarted.score(9), atol=1e-6)
    assert np.abs(online.offsets.of(np.array([2])) - before[2]).max() > 1e-4
    # Another model (a service swapping its checkpoint) learns the logged events again.
    other = copy.deepcopy(learner)
    with torch.no_grad():
        next(other.model.parameters()).add_(0.1)
    swapped = OnlineRecommender(other, dataset, config, users=online.users)
    swapped.carry_offsets(online.offsets)
    fresh = OnlineRecommender(other, dataset, config)
    fresh.learn(stream)
    np.testing.assert_allclose(swapped.score(9), fresh.score(9), atol=1e-6)


def test_item_offsets_lower_the_prequential_error(setup) -> None:
    from metarec.evaluation.prequential import PrequentialConfig, run_prequential, time_order

    dataset, learner = setup
    stream = time_order(dataset.interactions)
    config = PrequentialConfig(block_size=50, start=len(stream) // 2, ndcg_every=1000)
    error = {}
    for shrinkage in (None, 5.0):
        online = OnlineRecommender(learner, dataset, OnlineConfig(mode="static",
                                                                  item_shrinkage=shrinkage))
        error[shrinkage] = run_prequential(online, stream, config).summary()["mae"]
    assert error[5.0] < error[None] - 0.01, error


def test_top_k_is_the_head_of_a_stable_descending_sort() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 30))
        scores = rng.integers(0, 5, n).astype(np.float64)  # many ties
        scores[rng.random(n) < 0.2] = -np.inf
        for k in (1, 3, n - 1, n, n + 2):
            want = np.argsort(-scores, kind="stable")[:max(k, 0)]
            np.testing.assert_array_equal(top_k(scores, k), want)
    # NaN scores go last, as -inf would (the recommender drops both).
    np.testing.assert_array_equal(top_k(np.array([np.nan, 1.0, 2.0, np.nan]), 3), [2, 1, 0])
    assert len(top_k(np.array([1.0, 2.0]), 0)) == 0


@pytest.mark.parametrize(("name", "joint"), [("ridge", ()), ("maml-r", ()), ("ridge", (4,))])
def test_two_tower_scores_of_every_item_come_from_cached_item_vectors(name, joint) -> None:
    """A FeatureMF head scores every item from item vectors computed once (the user
    tower applied once): the same scores as its forward over every item, refreshed when
    the model or the catalogue changes; a joint MLP takes the forward itself."""
    dataset = generate(SyntheticConfig(num_users=80, num_items=60, num_ratings=2500, seed=2))
    split = split_dataset(dataset, SplitConfig(seed=0))
    torch.manual_seed(0)
    model = FeatureMF.for_dataset(dataset, embedding_dim=6, hidden=(8,), factors=4,
                                  joint_hidden=joint)
    learner = learner_class(name)(model, LearnerConfig(epochs=1, inner_steps=2,
                                                       patience=None))
    learner.fit(split.train, dataset)
    online = OnlineRecommender(learner, dataset, OnlineConfig(update_every=4))
    online.learn(events([7, 7, 7], [1, 2, 3], [5, 1, 4]))
    every = online.score(7)
    assert ("item_vectors" in online._item_cache) == (not joint)
    np.testing.assert_allclose(every, online.score(7, np.arange(60)), atol=1e-5)
    assert np.ptp(every) > 1e-3
    vectors = online._item_cache.get("item_vectors")
    online.learn(events([7], [4], [2]))  # a meta-update: a new model, new item vectors
    assert online.meta_updates == 1
    again = online.score(7)
    np.testing.assert_allclose(again, online.score(7, np.arange(60)), atol=1e-5)
    if not joint:
        assert online._item_cache["item_vectors"][1] is not vectors[1]
    assert not np.allclose(again, every)
    # An item's features changed in place (what the service does on POST /items):
    # with items_version bumped, its cached vector is rebuilt.
    rate = dataset.items.values["rate"]
    rate[5] = 1 + rate[5] % 4
    online.items_version += 1
    changed = online.score(7)
    np.testing.assert_allclose(changed, online.score(7, np.arange(60)), atol=1e-5)
    assert abs(changed[5] - again[5]) > 1e-6
    np.testing.assert_allclose(np.delete(changed, 5), np.delete(again, 5), atol=1e-6)
