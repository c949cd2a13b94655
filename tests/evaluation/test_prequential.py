"""Prequential evaluation: predictions come before learning, a leaking model is caught,
and metrics over the stream are exact on hand-made streams."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from metarec.data.dataset import Interactions
from metarec.errors import CheckpointError, ConfigError
from metarec.evaluation.prequential import (
    LeakageError,
    PrequentialConfig,
    check_no_leak,
    run_prequential,
    time_order,
)


def stream(users, items, ratings, times=None) -> Interactions:
    n = len(users)
    return Interactions(np.asarray(users, np.int64), np.asarray(items, np.int64),
                        np.asarray(ratings, np.float32),
                        np.arange(n, dtype=np.float64) if times is None
                        else np.asarray(times, np.float64))


class UserMean:
    """Honest: predicts each user's mean rating so far (3 for a new user)."""

    def __init__(self, _events: Interactions | None = None) -> None:
        self.sum: dict[int, float] = {}
        self.count: dict[int, int] = {}
        self.calls: list[tuple[str, int]] = []

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.array([self.sum.get(u, 3.0) / self.count.get(u, 1) if u in self.count
                         else 3.0 for u in users.tolist()])

    def learn(self, events: Interactions) -> None:
        for u, r in zip(events.user.tolist(), events.rating.tolist(), strict=True):
            self.sum[u] = self.sum.get(u, 0.0) + r
            self.count[u] = self.count.get(u, 0) + 1


class Peeking(UserMean):
    """Leaks: it was built with the whole stream and looks up the true rating."""

    def __init__(self, events: Interactions) -> None:
        super().__init__()
        self.truth = {(u, i): r for u, i, r in zip(events.user.tolist(), events.item.tolist(),
                                                   events.rating.tolist(), strict=True)}

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.array([self.truth[(u, i)] for u, i in zip(users.tolist(), items.tolist(),
                                                            strict=True)])


class Recording(UserMean):
    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, tuple[int, ...]]] = []

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        self.log.append(("predict", tuple(items.tolist())))
        return super().predict(users, items)

    def learn(self, events: Interactions) -> None:
        self.log.append(("learn", tuple(events.item.tolist())))
        super().learn(events)


def test_each_event_is_predicted_before_it_is_learned() -> None:
    events = stream([1, 1, 2, 1], [10, 11, 12, 13], [5, 1, 4, 3])
    model = Recording()
    run_prequential(model, events, PrequentialConfig(next_items=1))  # no ranking lists
    assert model.log == [("predict", (10,)), ("learn", (10,)), ("predict", (11,)),
                         ("learn", (11,)), ("predict", (12,)), ("learn", (12,)),
                         ("predict", (13,)), ("learn", (13,))]


def test_exact_predictions_errors_and_warm_up() -> None:
    events = stream([1, 1, 2, 1, 2], [10, 11, 12, 13, 14], [5, 1, 4, 3, 2])
    result = run_prequential(UserMean(), events, PrequentialConfig(ndcg_every=100))
    np.testing.assert_allclose(result.pred, [3, 5, 3, 3, 4])
    summary = result.summary()
    assert summary["events"] == 5
    assert summary["mae"] == pytest.approx((2 + 4 + 1 + 0 + 2) / 5)
    assert summary["rmse"] == pytest.approx(np.sqrt((4 + 16 + 1 + 0 + 4) / 5))
    curve = result.curve(2)
    assert curve["end"].tolist() == [1, 3, 4] and curve["mae"].tolist() == [3.0, 0.5, 2.0]
    warm = run_prequential(UserMean(), events, PrequentialConfig(start=2, ndcg_every=100))
    assert np.isnan(warm.pred[:2]).all() and warm.scored.tolist() == [0, 0, 1, 1, 1]
    np.testing.assert_allclose(warm.pred[2:], [3, 3, 4])


def test_blocks_predict_the_whole_block_first() -> None:
    events = stream([1, 1, 1, 1], [10, 11, 12, 13], [5, 1, 4, 3])
    result = run_prequential(UserMean(), events, PrequentialConfig(block_size=2,
                                                                   ndcg_every=100))
    np.testing.assert_allclose(result.pred, [3, 3, 3, 3])


def test_block_size_below_one_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="block_size, next_items and ndcg_every must be >= 1"):
        run_prequential(UserMean(), stream([1], [10], [5]), PrequentialConfig(block_size=0))


def test_next_items_ranking() -> None:
    # User 1's lists start at their events 0 and 2 (ndcg_every=2), each of up to 3 items.
    events = stream([1, 1, 1, 1, 1], [10, 11, 12, 13, 14], [5, 1, 4, 3, 2])

    class ByItem(UserMean):
        def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
            return -items.astype(float)  # prefers low item ids

    result = run_prequential(ByItem(), events, PrequentialConfig(ndcg_every=2, next_items=3,
                                                                 ndcg_k=10))
    rank = result.ranking
    assert rank.groupby("query")["item"].apply(list).to_dict() == {0: [10, 11, 12],
                                                                   2: [12, 13, 14]}
    # Both lists are already in the ideal order except the first: 5,1,4.
    dcg = 31 + 1 / np.log2(3) + 15 / np.log2(4)
    idcg = 31 + 15 / np.log2(3) + 1 / np.log2(4)
    assert result.summary()["ndcg@10"] == pytest.approx((dcg / idcg + 1.0) / 2)


def test_leaking_model_fails_the_check_and_honest_one_passes() -> None:
    rng = np.random.default_rng(0)
    events = stream(rng.integers(0, 5, 60), np.arange(60), rng.integers(1, 6, 60))
    check_no_leak(UserMean, events, probes=4)
    check_no_leak(UserMean, events, PrequentialConfig(block_size=7, start=10), probes=4)
    with pytest.raises(LeakageError, match="before predicting it"):
        check_no_leak(Peeking, events, probes=2)


class FaintPeek(UserMean):
    """Leaks by a millionth of the true rating: numpy's default relative tolerance had
    let a change that small pass."""

    def __init__(self, events: Interactions) -> None:
        super().__init__()
        self.peek = Peeking(events)

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return 3.5 + 1e-6 * self.peek.predict(users, items)


def test_a_faint_leak_fails_the_check() -> None:
    rng = np.random.default_rng(0)
    events = stream(rng.integers(0, 5, 60), np.arange(60), rng.integers(1, 6, 60))
    with pytest.raises(LeakageError, match="before predicting it"):
        check_no_leak(FaintPeek, events, probes=2)


def test_time_order_is_stable_with_missing_last() -> None:
    events = stream([1, 2, 3, 4], [1, 2, 3, 4], [1, 1, 1, 1], [5.0, np.nan, 1.0, 5.0])
    assert time_order(events).user.tolist() == [3, 1, 4, 2]


@pytest.mark.parametrize("item_shrinkage", [None, 1.0])
def test_online_recommender_passes_the_leak_check(item_shrinkage) -> None:
    from metarec.data.synthetic import SyntheticConfig, generate
    from metarec.learners.config import LearnerConfig
    from metarec.learners.online import OnlineConfig, OnlineRecommender
    from metarec.learners.registry import learner_class
    from metarec.models import FeatureMLP

    dataset = generate(SyntheticConfig(num_users=40, num_items=30, num_ratings=800, seed=2))
    events = time_order(dataset.interactions).subset(np.arange(120))

    def make(_events: Interactions) -> OnlineRecommender:
        torch_seed(0)  # before the model: both runs must start from the same weights
        model = FeatureMLP.for_dataset(dataset, embedding_dim=4, hidden=(8,))
        learner = learner_class("maml-r")(model, LearnerConfig(inner_steps=2))
        return OnlineRecommender(learner, dataset, OnlineConfig(
            update_every=30, update_tasks=4, item_shrinkage=item_shrinkage))

    check_no_leak(make, events, PrequentialConfig(block_size=10, next_items=1), probes=2)


def torch_seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def test_run_prequential_modes_reads_the_runs_dataset(tmp_path) -> None:
    from metarec.data.synthetic import SyntheticConfig, generate
    from metarec.evaluation.prequential import run_prequential_modes
    from metarec.learners.config import LearnerConfig
    from metarec.learners.registry import learner_class
    from metarec.models import FeatureMLP

    options = {"num_users": 40, "num_items": 30, "num_ratings": 800, "seed": 2}
    dataset = generate(SyntheticConfig(**options))
    model = FeatureMLP.for_dataset(dataset, embedding_dim=4, hidden=(8,))
    learner_class("maml-r")(model, LearnerConfig(inner_steps=1)).save(
        tmp_path / "checkpoints" / "maml-r")
    (tmp_path / "config.toml").write_text(
        '[data]\ndataset = "synthetic"\n[data.options]\n'
        + "".join(f"{k} = {v}\n" for k, v in options.items()))
    records = run_prequential_modes(tmp_path, max_events=200, start=0.5, block_size=25,
                                    update_every=50)
    assert [r["mode"] for r in records] == ["static", "sgd", "meta"]
    assert all(r["events"] == 100 and r["start"] == 100 for r in records)
    assert records[0]["update_every"] == 0 and records[2]["update_every"] == 50
    assert records[0]["mae"] != records[2]["mae"]


def test_prequential_command_takes_item_shrinkage(tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from metarec.cli import app
    from metarec.data.synthetic import generate
    from metarec.learners.config import LearnerConfig
    from metarec.learners.registry import learner_class
    from metarec.models import FeatureMLP

    model = FeatureMLP.for_dataset(generate(), embedding_dim=4, hidden=(8,))
    learner_class("maml-r")(model, LearnerConfig(inner_steps=1)).save(tmp_path / "ckpt")
    maes = {}
    for extra in ([], ["--item-shrinkage", "2"]):
        out = tmp_path / f"preq{len(extra)}.json"
        result = CliRunner().invoke(app, ["prequential", str(tmp_path / "ckpt"),
                                          "--modes", "static", "--max-events", "3000",
                                          "--block-size", "50", "--out", str(out), *extra])
        assert result.exit_code == 0, result.output
        (record,) = json.loads(out.read_text())
        maes[record["item_shrinkage"]] = record["mae"]
    # An untrained model: the items' levels, learned from the stream, help a great deal.
    assert maes[2.0] < maes[None] - 0.05, maes


def test_the_runs_data_dir_is_where_its_data_set_is_read(tmp_path, monkeypatch) -> None:
    """A run made with ``--data-dir DIR`` is streamed from DIR (unless another is given)."""
    import metarec.data.registry
    from metarec.evaluation.prequential import data_of_run, run_prequential_modes

    (tmp_path / "checkpoints" / "x").mkdir(parents=True)
    (tmp_path / "checkpoints" / "x" / "learner.json").write_text("{}")
    (tmp_path / "config.toml").write_text('[data]\ndataset = "movielens-100k"\n'
                                          'data_dir = "/data/ml"\n[data.options]\n'
                                          'occupations = "codes"\n')
    assert data_of_run(tmp_path) == ("movielens-100k", {"occupations": "codes"}, "/data/ml")
    asked = []

    def load_dataset(name, *, data_dir=None, **options):  # noqa: ANN001, ANN202
        asked.append((name, data_dir, options))
        raise RuntimeError("stop here")

    monkeypatch.setattr(metarec.data.registry, "load_dataset", load_dataset)
    for given, expected in ((None, Path("/data/ml")), ("/elsewhere", Path("/elsewhere"))):
        with pytest.raises(RuntimeError, match="stop here"):
            run_prequential_modes(tmp_path, data_dir=given)
        assert asked.pop() == ("movielens-100k", expected, {"occupations": "codes"})
    (tmp_path / "config.toml").write_text('[data]\ndataset = "synthetic"\n'
                                          'data_dir = "none"\n')
    assert data_of_run(tmp_path) == ("synthetic", {}, None)


def test_find_saved_learner_takes_a_learner_name_or_a_checkpoint_name(tmp_path) -> None:
    from metarec.learners.base import find_saved_learner

    for name in ("maml-r-seed10", "maml-r-seed3", "reptile-seed3"):
        (tmp_path / "checkpoints" / name).mkdir(parents=True)
        (tmp_path / "checkpoints" / name / "learner.json").write_text("{}")
    checkpoints = tmp_path / "checkpoints"
    assert find_saved_learner(tmp_path, "maml-r") == checkpoints / "maml-r-seed3"
    assert find_saved_learner(tmp_path, "maml-r-seed10") == checkpoints / "maml-r-seed10"
    assert find_saved_learner(checkpoints / "reptile-seed3") == checkpoints / "reptile-seed3"
    with pytest.raises(CheckpointError, match="no saved learner 'anil' .*saved there: "
                                              "maml-r-seed10, maml-r-seed3, reptile-seed3"):
        find_saved_learner(tmp_path, "anil")
    with pytest.raises(CheckpointError, match="several learners saved .*--learner NAME"):
        find_saved_learner(tmp_path)
    (checkpoints / "reptile-seed3" / "learner.json").unlink()
    assert find_saved_learner(tmp_path) == checkpoints / "maml-r-seed3"  # the only learner


def test_ratings_without_a_timestamp_are_left_out_of_the_stream(tmp_path, monkeypatch,
                                                                caplog) -> None:
    """Sorted last, they would be the whole scored half of a stream (ML-1M has 51 % of
    them): the time-ordered stream leaves them out, and says so."""
    import dataclasses

    import metarec.data.registry
    from metarec.data.synthetic import SyntheticConfig, generate
    from metarec.evaluation.prequential import run_prequential_modes
    from metarec.learners.config import LearnerConfig
    from metarec.learners.registry import learner_class
    from metarec.models import FeatureMLP

    dataset = generate(SyntheticConfig(num_users=40, num_items=30, num_ratings=800, seed=2))
    stamps = dataset.interactions.timestamp.copy()
    stamps[::2] = np.nan
    untimed = dataclasses.replace(dataset, interactions=dataclasses.replace(
        dataset.interactions, timestamp=stamps))
    monkeypatch.setattr(metarec.data.registry, "load_dataset", lambda *a, **k: untimed)
    model = FeatureMLP.for_dataset(dataset, embedding_dim=4, hidden=(8,))
    learner_class("maml-r")(model, LearnerConfig(inner_steps=1)).save(tmp_path / "m")
    records = run_prequential_modes(tmp_path / "m", "synthetic", modes=("static",),
                                    start=0.5, block_size=50)
    timed = int(np.isfinite(stamps).sum())
    assert records[0]["events"] == timed - int(0.5 * timed)
    assert f"{len(stamps) - timed} of {len(stamps)} ratings have no timestamp" in caplog.text


def test_data_of_a_distill_or_transfer_folder(tmp_path) -> None:
    """A distillation's config.toml holds a [distill] section beside [data] (it had been
    refused as an unknown setting); a transfer between generated domains names no data
    set to load again."""
    from metarec.evaluation.prequential import data_of_run

    (tmp_path / "student").mkdir()
    data = '[data]\ndataset = "synthetic"\n[data.options]\nnum_users = 50\n'
    (tmp_path / "config.toml").write_text(data + '[distill]\nteacher_learner = "pretrain"\n')
    assert data_of_run(tmp_path / "student") == ("synthetic", {"num_users": 50}, None)
    (tmp_path / "config.toml").write_text(data + '[transfer]\nsource = "same"\n')
    assert data_of_run(tmp_path / "student") == ("synthetic", {"num_users": 50}, None)
    (tmp_path / "config.toml").write_text(data + "[transfer]\nshared_share = 0.4\n")
    with pytest.raises(ConfigError, match="generated from its \\[transfer\\] settings.*"
                                          "--dataset"):
        data_of_run(tmp_path / "student")


@pytest.mark.parametrize(("option", "message"), [
    (["--start", "1.5"], "start must be a fraction of the stream in \\[0, 1\\), got 1.5"),
    (["--start", "-0.5"], "start must be a fraction"),
    (["--max-events", "0"], "max_events must be >= 1"),
    (["--out", "."], "is a folder: name the JSON file"),
])
def test_prequential_refuses_settings_that_score_nothing(tmp_path, option, message) -> None:
    """They had given NaN rows (or, for --out, an error after the whole evaluation)."""
    from typer.testing import CliRunner

    from metarec.cli import app

    result = CliRunner().invoke(app, ["prequential", str(tmp_path / "missing"), *option])
    assert isinstance(result.exception, ConfigError), result.output
    assert re.search(message, str(result.exception))
