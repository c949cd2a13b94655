"""One suite every learner in ``LEARNERS`` must pass, on a small generated data set."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from metarec.data.dataset import Interactions
from metarec.data.splits import SplitConfig, split_dataset
from metarec.data.synthetic import SyntheticConfig, generate
from metarec.errors import CheckpointError, ConfigError, InputError
from metarec.evaluation.baselines import GlobalMean
from metarec.learners import LEARNERS, Learner, LearnerConfig, learner_class
from metarec.models import FeatureMF, FeatureMLP

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = LearnerConfig(epochs=4, meta_batch_size=16, inner_steps=2, meta_lr=1e-2,
                       patience=None, batch_size=256)


@pytest.fixture(scope="module")
def data():
    ds = generate(SyntheticConfig(num_users=300, num_items=200, num_ratings=15_000))
    return ds, split_dataset(ds, SplitConfig(seed=0))


def _make(name: str, ds, config: LearnerConfig = CONFIG) -> Learner:
    torch.manual_seed(0)
    model = FeatureMLP.for_dataset(ds, embedding_dim=8, hidden=(16,))
    return learner_class(name)(model, config)


@pytest.fixture(scope="module")
def fitted(data):
    """``fitted(name)``: the learner trained once with ``CONFIG`` (cached per name)."""
    ds, split = data
    cache: dict[str, Learner] = {}

    def get(name: str) -> Learner:
        if name not in cache:
            cache[name] = _make(name, ds).fit(split.train, ds)
        return cache[name]

    return get


def _mae(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.abs(pred - truth).mean())


@pytest.mark.parametrize("name", sorted(LEARNERS))
class TestLearner:
    def test_training_loss_falls(self, name: str, fitted) -> None:
        history = fitted(name).history_
        assert [h["epoch"] for h in history] == [1, 2, 3, 4]
        losses = [h["train_loss"] for h in history]
        assert all(np.isfinite(losses))
        assert losses[-1] < 0.95 * losses[0], losses

    def test_beats_global_mean_on_new_users(self, name: str, fitted, data) -> None:
        ds, split = data
        new_users = split.scenarios["new_users"]
        baseline = GlobalMean().fit(split.train_ratings, ds.num_users, ds.num_items)
        truth = new_users.query.rating
        pred = fitted(name).predict_tasks(new_users)
        assert pred.shape == truth.shape and np.isfinite(pred).all()
        ours, base = _mae(pred, truth), _mae(baseline.predict_tasks(new_users), truth)
        # On this data the learners reach 0.85-0.89 of the global mean's MAE.
        assert ours < 0.95 * base, (ours, base)

    def test_save_load_gives_identical_predictions(self, name: str, fitted, data,
                                                   tmp_path: Path) -> None:
        ds, split = data
        learner = fitted(name)
        folder = learner.save(tmp_path / "model")
        assert (folder / "weights.safetensors").is_file()
        loaded = Learner.load(folder, features=ds)
        assert type(loaded) is type(learner)
        assert loaded.config == learner.config
        assert loaded.history_ == learner.history_
        tasks = split.scenarios["new_items"]
        np.testing.assert_array_equal(loaded.predict_tasks(tasks), learner.predict_tasks(tasks))
        state, again = learner.state_dict(), loaded.state_dict()
        assert state.keys() == again.keys()
        assert all(torch.equal(state[k], again[k]) for k in state)
        # recommend() adapts a trained user to, and excludes, the ratings training saw:
        # they travel with the checkpoint.
        user = int(split.train.users[0])
        assert loaded.recommend(user, k=10) == learner.recommend(user, k=10)

    def test_same_seed_same_results(self, name: str, data) -> None:
        ds, split = data
        train = split.train.select(np.arange(48))
        config = LearnerConfig(**{**CONFIG.to_dict(), "epochs": 2, "seed": 3})
        runs = [_make(name, ds, config).fit(train, ds) for _ in range(2)]
        assert runs[0].history_ == runs[1].history_
        tasks = split.scenarios["warm"]
        np.testing.assert_array_equal(runs[0].predict_tasks(tasks), runs[1].predict_tasks(tasks))

    def test_recommend_k_distinct_unseen_items(self, name: str, fitted, data) -> None:
        ds, split = data
        learner = fitted(name)
        user = int(split.train.users[0])
        seen = set(learner.known_.item[learner.known_.user == user].tolist())
        assert seen
        top = learner.recommend(user, k=7)
        items = [i for i, _ in top]
        assert len(items) == 7 and len(set(items)) == 7
        assert not set(items) & seen
        assert all(0 <= i < ds.num_items for i in items)
        scores = [s for _, s in top]
        assert scores == sorted(scores, reverse=True)
        with_seen = [i for i, _ in learner.recommend(user, k=ds.num_items, exclude_seen=False)]
        assert sorted(with_seen) == list(range(ds.num_items))


def test_recommend_for_a_user_with_no_ratings(fitted, data) -> None:
    ds, split = data
    learner = fitted("maml-r")
    new_user = int(split.new_users[0])
    top = learner.recommend(new_user, k=5)
    assert len({i for i, _ in top}) == 5


def test_recommend_rejects_unknown_users_and_negative_k(fitted, data) -> None:
    ds, _ = data
    learner = fitted("maml-r")
    for user in (-1, ds.num_users):
        with pytest.raises(InputError, match="out of range"):
            learner.recommend(user, k=3)
    with pytest.raises(InputError, match="k must be a whole number >= 0"):
        learner.recommend(0, k=-1)
    assert learner.recommend(0, k=0) == []
    with pytest.raises(InputError, match="user index must be an integer, got 1.7"):
        learner.recommend(1.7, k=3)
    # Integers of every kind are users: numpy scalars, 0-d arrays and tensors.
    expected = learner.recommend(2, k=3)
    for user in (np.int64(2), np.array(2), torch.tensor(2)):
        assert learner.recommend(user, k=3) == expected
    with pytest.raises(InputError, match="k must be a whole number"):
        learner.recommend(0, k=2.5)


def _ratings(user: int, items: list[int], ratings: list[float]) -> Interactions:
    return Interactions(np.full(len(items), user), np.array(items),
                        np.array(ratings, dtype=np.float32), np.zeros(len(items)))


def test_scoring_rejects_bad_support_and_items(fitted, data) -> None:
    """A NaN or infinite support rating, or an index outside the tables, is an
    InputError naming it (it had made every score NaN, or scored another item)."""
    ds, split = data
    learner = fitted("maml-r")
    user = int(split.new_users[0])
    for bad in (np.nan, np.inf):
        support = _ratings(user, [1, 2], [4.0, bad])
        with pytest.raises(InputError, match="support rating 1: rating .* not a finite"):
            learner.score_items(user, support, np.arange(5))
        with pytest.raises(InputError, match="support rating 1"):
            learner.recommend(user, k=5, support=support)
    support = _ratings(user, [1], [4.0])
    for item in (-1, ds.num_items):
        with pytest.raises(InputError, match=f"item 1: item index {item} is outside"):
            learner.score_items(user, support, np.array([0, item]))
        with pytest.raises(InputError, match=f"item index {item} is outside the item"):
            learner.score_items(user, _ratings(user, [item], [4.0]), np.arange(3))
    with pytest.raises(InputError, match="whole numbers"):
        learner.score_items(user, support, np.array([0.5]))
    assert np.isfinite(learner.score_items(user, support, np.arange(ds.num_items))).all()
    assert learner.score_items(user, support, []).shape == (0,)  # nothing to score


def test_fit_rejects_a_non_finite_training_rating(data) -> None:
    ds, split = data
    train = split.train.select(np.arange(8))
    train.query.rating[3] = np.nan
    with pytest.raises(InputError, match="training rating .*: rating nan is not a finite"):
        _make("maml-r", ds).fit(train, ds)


def test_saving_an_unfitted_learner_over_a_fitted_one_leaves_no_memory(fitted, data,
                                                                     tmp_path: Path) -> None:
    ds, split = data
    fitted("maml-r").save(tmp_path / "m")
    _make("maml-r", ds).save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "learner.json", "weights.safetensors"]
    assert Learner.load(tmp_path / "m", features=ds).known_ is None


@pytest.mark.parametrize("damage", ["json", "no-model", "kind", "weights", "memory",
                                    "bigger", "other-learner", "digests", "flipped-weights",
                                    "flipped-memory", "no-memory"])
def test_load_of_a_damaged_checkpoint_is_a_checkpoint_error(damage: str, fitted, data,
                                                           tmp_path: Path) -> None:
    ds, _ = data
    folder = fitted("metasgd").save(tmp_path / "m")
    meta = json.loads((folder / "learner.json").read_text())
    if damage in ("weights", "memory", "bigger"):
        # Checkpoints written before learner.json recorded the files' SHA-256: the
        # safetensors reader and the model still refuse what does not fit.
        del meta["sha256"]
        (folder / "learner.json").write_text(json.dumps(meta))
    if damage.startswith("flipped-"):  # one byte of the last tensor: still a valid file
        damaged = folder / f"{damage.removeprefix('flipped-')}.safetensors"
        data_bytes = bytearray(damaged.read_bytes())
        data_bytes[-1] ^= 0x01
        damaged.write_bytes(bytes(data_bytes))
    elif damage == "no-memory":  # recorded in learner.json, so its loss is no silent drop
        (folder / "memory.safetensors").unlink()
    elif damage == "digests":
        meta["sha256"] = "not an object"
        (folder / "learner.json").write_text(json.dumps(meta))
    elif damage == "json":
        (folder / "learner.json").write_text("{not json")
    elif damage in ("no-model", "kind"):
        if damage == "no-model":
            del meta["model"]
        else:
            meta["model"]["kind"] = "Nope"
        (folder / "learner.json").write_text(json.dumps(meta))
    elif damage in ("weights", "memory"):
        (folder / f"{damage}.safetensors").write_bytes(b"garbage")
    elif damage == "bigger":
        torch.manual_seed(0)
        bigger = FeatureMLP.for_dataset(ds, embedding_dim=8, hidden=(32,))
        learner_class("metasgd")(bigger, CONFIG).save(tmp_path / "b")
        (folder / "weights.safetensors").write_bytes(
            (tmp_path / "b" / "weights.safetensors").read_bytes())
    else:  # maml-r's settings over metasgd's weights (it has learned step sizes)
        meta["learner"] = "maml-r"
        (folder / "learner.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"m/(learner\.json|weights|memory)"):
        Learner.load(folder, features=ds)


def test_learner_json_records_each_file_s_sha256_and_older_checkpoints_still_load(
        fitted, data, tmp_path: Path) -> None:
    ds, _ = data
    learner = fitted("metasgd")
    folder = learner.save(tmp_path / "m")
    meta = json.loads((folder / "learner.json").read_text())
    assert meta["sha256"] == {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
                              for name in ("weights.safetensors", "memory.safetensors")}
    del meta["sha256"]  # as written before the digests were recorded
    (folder / "learner.json").write_text(json.dumps(meta))
    loaded = Learner.load(folder, features=ds)
    state, again = learner.state_dict(), loaded.state_dict()
    assert state.keys() == again.keys() and all(torch.equal(state[k], again[k]) for k in state)
    np.testing.assert_array_equal(loaded.known_.rating, learner.known_.rating)


@pytest.mark.parametrize("other", ["fields", "items"])
def test_load_with_features_it_was_not_trained_on_is_a_checkpoint_error(
        other: str, data, tmp_path: Path) -> None:
    """Features of another data set had failed later, inside the model's lookups."""
    ds, split = data
    model = FeatureMF.for_dataset(ds, embedding_dim=4, hidden=(8,), factors=2,
                                  item_id_embedding=True)
    folder = learner_class("ridge")(model, CONFIG).save(tmp_path / "m")
    if other == "fields":  # one genre fewer
        specs = [replace(f, vocab=f.vocab[:-1]) if f.name == "genres" else f
                 for f in ds.items.specs]
        elsewhere = replace(ds, items=replace(ds.items, specs=specs))
        message = r"checkpoint .*/m's item fields \['genres'\] differ from those of the"
    else:
        elsewhere = generate(SyntheticConfig(num_users=300, num_items=150,
                                             num_ratings=15_000))
        message = r"checkpoint .*/m's model has 200 item ids but the data set .* has 150"
    with pytest.raises(CheckpointError, match=message):
        Learner.load(folder, features=elsewhere)
    assert Learner.load(folder, features=ds).features_ is ds
    assert Learner.load(folder).features_ is None  # features attached later (the service)


def test_fit_again_starts_a_new_history(data) -> None:
    ds, split = data
    train = split.train.select(np.arange(32))
    config = LearnerConfig(**{**CONFIG.to_dict(), "epochs": 2})
    learner = _make("reptile", ds, config).fit(train, ds).fit(train, ds)
    assert [h["epoch"] for h in learner.history_] == [1, 2]


def test_unknown_learner_name() -> None:
    with pytest.raises(ConfigError, match="unknown learner"):
        learner_class("nope")
    assert learner_class("melu") is learner_class("maml-r")


@pytest.mark.parametrize("name", ["maml-r", "metasgd", "ridge", "pretrain"])
def test_feature_mf_learns_new_users(name: str, data, tmp_path: Path) -> None:
    """The factorisation model: adapting the user side personalises new users (for
    ``pretrain`` that is the fine-tuned control, which leaves the item side global)."""
    ds, split = data
    torch.manual_seed(0)
    model = FeatureMF.for_dataset(ds, embedding_dim=8, hidden=(16,), factors=4)
    learner = learner_class(name)(model, LearnerConfig(**{**CONFIG.to_dict(),
                                                          "inner_lr": 0.2}))
    learner.fit(split.train, ds)
    losses = [h["train_loss"] for h in learner.history_]
    assert losses[-1] < 0.95 * losses[0], losses
    new_users = split.scenarios["new_users"]
    truth = new_users.query.rating
    adapted = _mae(learner.predict_tasks(new_users), truth)
    unadapted = _mae(learner.predict_tasks(new_users, steps=0), truth)
    base = _mae(GlobalMean().fit(split.train_ratings, ds.num_users, ds.num_items)
                .predict_tasks(new_users), truth)
    assert adapted < 0.95 * base, (adapted, base)
    assert adapted < unadapted, (adapted, unadapted)
    loaded = Learner.load(learner.save(tmp_path / "mf"), features=ds)
    assert type(loaded.model) is FeatureMF
    np.testing.assert_array_equal(loaded.predict_tasks(new_users),
                                  learner.predict_tasks(new_users))


def test_redraw_query_trains_on_fresh_queries_deterministically(data) -> None:
    ds, split = data
    train = split.train.select(np.arange(64))
    config = LearnerConfig(**{**CONFIG.to_dict(), "epochs": 3, "redraw_query": True})
    runs = [_make("maml-r", ds, config).fit(train, ds) for _ in range(2)]
    assert runs[0].history_ == runs[1].history_
    plain = _make("maml-r", ds, LearnerConfig(**{**CONFIG.to_dict(), "epochs": 3})
                  ).fit(train, ds)
    # Epoch 0 draws again too, so the first epoch's loss already differs.
    assert plain.history_[0]["train_loss"] != runs[0].history_[0]["train_loss"]
    learner = runs[0]
    assert learner.epoch_tasks(train, 1).query_sizes.tolist() == train.query_sizes.tolist()
    assert not np.array_equal(learner.epoch_tasks(train, 1).query.item,
                              learner.epoch_tasks(train, 2).query.item)
