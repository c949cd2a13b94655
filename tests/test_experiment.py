"""End to end: `metarec run` on a small generated data set writes a complete run folder,
and `metarec evaluate` on that folder reproduces the numbers from the checkpoints."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from metarec.cli import app
from metarec.config import load_config
from metarec.data.splits import SCENARIOS
from metarec.errors import ConfigError
from metarec.experiment import evaluate_run, run_experiment

SMALL = ["data.options={'num_users': 300, 'num_items': 200, 'num_ratings': 18000}",
         "learner.epochs=2", "learner.meta_batch_size=16", "model.embedding_dim=4",
         "model.hidden=[8]", "evaluation.shots=[1, 5]"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    config = load_config(None, [*SMALL, "learners=['maml-r', 'reptile']"])
    run_experiment(config, out)
    return out


def test_run_folder_is_complete(run_dir: Path) -> None:
    for name in ("config.toml", "results.json", "report.html", "scenarios_mae.png",
                 "scenarios_ndcg3.png", "cold_start_curve.png", "training_curves.png",
                 "checkpoints/maml-r-seed0/weights.safetensors",
                 "checkpoints/reptile-seed0/learner.json",
                 "checkpoints/pretrain-seed0/learner.json"):
        assert (run_dir / name).is_file(), name
    html = (run_dir / "report.html").read_text()
    assert "cold_start_curve.png" in html and "maml-r" in html


def test_results_json_is_a_flat_dataframe_ready_document(run_dir: Path) -> None:
    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    text = (run_dir / "results.json").read_text()
    doc = json.loads(text, parse_constant=refuse)  # strict JSON: no NaN, null instead
    assert doc["dataset"] == "synthetic" and doc["protocol"] == "melu" and doc["seeds"] == [0]
    assert {"python", "torch", "metarec"} <= set(doc["versions"])
    frame = pd.DataFrame(doc["results"])
    assert list(frame.columns) == ["learner", "scenario", "metric", "mean", "sd", "n_seeds"]
    learners = set(frame.learner)
    assert learners == {"global-mean", "biases", "popularity", "biased-mf", "pretrain",
                        "finetune", "foldin", "maml-r", "reptile"}
    assert set(SCENARIOS) | {"new_users_k1", "new_users_k5", "new_users_all"} == set(
        frame.scenario)
    # Ranking the whole catalogue is harder than ranking the 10 query items.
    ranked = frame[(frame.learner == "maml-r") & (frame.metric == "ndcg@3")].set_index(
        "scenario")["mean"]
    assert ranked["new_users_all"] < ranked["new_users"]
    assert {"mae", "rmse", "mae_rounded", "ndcg@3", "precision@5", "recall@10",
            "accuracy"} <= set(frame.metric)
    # The global mean predicts one value for everyone: its MAE is the mean distance to it.
    assert frame.query("learner == 'maml-r' and metric == 'mae'")["mean"].between(0, 4).all()


def test_evaluate_reproduces_the_run_from_its_checkpoints(run_dir: Path) -> None:
    saved = json.loads((run_dir / "results.json").read_text())["results"]
    again = evaluate_run(run_dir).aggregated
    key = lambda r: (r["learner"], r["scenario"], r["metric"])  # noqa: E731
    before = {key(r): r["mean"] for r in saved}
    after = {key(r): r["mean"] for r in again}
    assert before.keys() == after.keys()
    for k, value in before.items():
        assert after[k] == pytest.approx(value, rel=1e-5, abs=1e-6, nan_ok=True), k


def test_evaluate_reproduces_memories_of_trained_users(tmp_path: Path) -> None:
    """`ridge` and the `foldin` control remembering trained users: `metarec evaluate`
    gives every number of the run again (the memory changes new items here)."""
    memory = ["learners=['ridge']", "baselines=['foldin']"]
    config = load_config(None, [*SMALL, *memory, "per_learner.ridge.memory_precision=1.0"])
    run = run_experiment(config, tmp_path / "memory").aggregated
    plain = run_experiment(load_config(None, [*SMALL, *memory]), tmp_path / "plain").aggregated
    again = evaluate_run(tmp_path / "memory").aggregated
    key = lambda r: (r["learner"], r["scenario"], r["metric"])  # noqa: E731
    for name in ("ridge", "foldin"):
        changed = [r for r, p in zip(run, plain, strict=True)
                   if r["learner"] == name and r["mean"] != p["mean"]]
        assert changed and {r["scenario"] for r in changed} == {"new_items"}, name
    assert {key(r): r["mean"] for r in run} == pytest.approx(
        {key(r): r["mean"] for r in again}, rel=1e-5, abs=1e-6, nan_ok=True)


def test_cli_run_prints_the_table_and_writes_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "cli-run"
    args = ["run", "--learners", "anil", "--baselines", "global-mean,biases", "--out",
            str(out), "--seed", "1"]
    for override in SMALL:
        args += ["--set", override]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "anil" in result.output and "new users" in result.output
    doc = json.loads((out / "results.json").read_text())
    assert doc["seeds"] == [1]
    users = {row["scenario"]: row["users"] for row in doc["split"]}
    assert f"new users {users['new_users']:,}" in " ".join(result.output.split())
    assert {r["learner"] for r in doc["results"]} == {"global-mean", "biases", "anil"}


def test_cli_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "metarec", "run", "--set", "learner.epoch=1",
                           "--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: config: unknown field(s) ['epoch'] in [learner]; known: "
        + str(sorted(load_config().learner.to_dict()))]


def test_evaluate_prequential_streams_the_runs_data(run_dir: Path) -> None:
    result = CliRunner().invoke(app, ["evaluate", str(run_dir), "--protocol", "prequential",
                                      "--max-events", "400"])
    assert result.exit_code == 0, result.output
    assert "Prequential" in result.output and "static" in result.output
    bad = CliRunner().invoke(app, ["evaluate", str(run_dir), "--protocol", "nope"])
    assert bad.exit_code != 0


def test_all_candidates_ranks_every_item_outside_the_support() -> None:
    import numpy as np

    from metarec.data.dataset import Interactions
    from metarec.experiment import all_candidates
    from metarec.tasks.taskset import TaskSet

    def rows(user, items, ratings):  # noqa: ANN001, ANN202
        n = len(items)
        return Interactions(np.full(n, user), np.array(items), np.array(ratings, np.float32),
                            np.full(n, np.nan))

    support = rows(7, [0, 2], [5, 1])
    query = rows(7, [3], [4])
    tasks = TaskSet(np.array([7]), support, np.array([0, 2]), query, np.array([0, 1]))
    full = all_candidates(tasks, num_items=5)
    assert full.query.item.tolist() == [1, 3, 4]
    assert np.isnan(full.query.rating[[0, 2]]).all() and full.query.rating[1] == 4
    assert full.query_offsets.tolist() == [0, 3] and full.support is tasks.support
    # An item the user rated in another held-out part is no candidate: not unrated.
    rated = rows(7, [0, 2, 3, 4], [5, 1, 4, 5])
    other_user = rows(8, [1], [5])
    ratings = Interactions(*(np.concatenate([getattr(rated, f), getattr(other_user, f)])
                             for f in ("user", "item", "rating", "timestamp")))
    seen = all_candidates(tasks, num_items=5, rated=ratings)
    assert seen.query.item.tolist() == [1, 3] and seen.query.rating[1] == 4


@pytest.mark.parametrize("option", ["unseen_codes_missing", "numeric_within_training"])
def test_learners_train_on_the_split_features(option: str) -> None:
    import numpy as np
    import torch

    from metarec.experiment import load_data, make_split, train_learner

    config = load_config(None, [*SMALL, f"split.{option}=true"])
    dataset = load_data(config)
    split = make_split(dataset, config, 0)
    learner = train_learner("anil", dataset, split, config, 0)
    features = learner.features_
    assert features is not dataset
    trained = {"users": split.train.users, "items": np.unique(split.train_ratings.item)}
    changed = 0
    for side in ("users", "items"):
        table, full = getattr(features, side), getattr(dataset, side)
        for spec in table.specs:
            seen, values = table.values[spec.name], full.values[spec.name]
            changed += int((seen != values).sum())
            if option == "unseen_codes_missing" and spec.kind != "numeric":
                # Codes are kept or read as missing, never changed into another code.
                assert torch.all((seen == values) | (seen == 0)), spec.name
            elif option == "numeric_within_training" and spec.kind == "numeric":
                known = values[trained[side]]
                assert torch.equal(seen, values.clamp(float(known.min()), float(known.max())))
            else:
                assert torch.equal(seen, values), spec.name
    if option == "numeric_within_training":
        assert changed  # the generated data's new items are later than every training item


def test_validation_users_are_scored_on_request() -> None:
    """``evaluation.validation`` adds the tasks early stopping watches as a scenario,
    scored like the others: the same number as the validation loss training reports."""
    config = load_config(None, [*SMALL, "learners=['ridge']", "baselines=['biases']",
                                "evaluation.validation=true", "evaluation.shots=[]",
                                "evaluation.all_items=false", "learner.patience=null"])
    result = run_experiment(config)
    scored = {(r["learner"], r["metric"]): r["value"] for r in result.records
              if r["scenario"] == "validation"}
    assert {("ridge", "mae"), ("biases", "mae"), ("ridge", "ndcg@3")} <= set(scored)
    # The model kept is the one of the best validation epoch: its MSE is that epoch's.
    best = min(r["val_mse"] for r in result.histories["ridge"])
    assert scored[("ridge", "rmse")] ** 2 == pytest.approx(best, rel=1e-5)
    assert {r["scenario"] for r in result.records} == {*SCENARIOS, "validation",
                                                       "validation_new_items"}


def test_item_knn_runs_as_a_baseline_and_falls_back_to_biases_on_new_items() -> None:
    """``item-knn`` is a baseline name of ``metarec run``: scored in every scenario, equal
    to ``biases`` where every query film is new (no film training never saw has a
    neighbour) and different where films are known."""
    config = load_config(None, [*SMALL, "learners=[]", "baselines=['biases', 'item-knn']",
                                "evaluation.shots=[]", "evaluation.all_items=false"])
    result = run_experiment(config)
    mae = {(r["learner"], r["scenario"]): r["value"] for r in result.records
           if r["metric"] == "mae"}
    assert {s for learner, s in mae if learner == "item-knn"} == set(SCENARIOS)
    for scenario in ("new_items", "new_users_new_items"):
        assert mae[("item-knn", scenario)] == pytest.approx(mae[("biases", scenario)])
    assert mae[("item-knn", "warm")] < mae[("biases", "warm")]


TINY = [*SMALL, "evaluation.shots=[]", "evaluation.all_items=false", "learner.epochs=1"]


def test_a_rerun_replaces_the_run_folder_as_a_whole(tmp_path: Path) -> None:
    """Nothing of an old run stays beside a new one in the same folder, and a run that
    fails leaves the old folder as it was (and nothing of its own)."""
    out = tmp_path / "run"
    run_experiment(load_config(None, [*SMALL, "learners=['anil']", "baselines=['biases']",
                                      "learner.epochs=1"]), out)
    assert (out / "cold_start_curve.png").is_file()
    run_experiment(load_config(None, [*TINY, "learners=['reptile']", "baselines=[]"]), out)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["reptile-seed0"]
    assert not (out / "cold_start_curve.png").exists()
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    import metarec.experiment

    config = load_config(None, [*TINY, "learners=['maml-r']", "baselines=[]"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(metarec.experiment, "write_results", fail)
        with pytest.raises(RuntimeError, match="disk full"):
            run_experiment(config, out)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_a_folder_that_is_not_a_run_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    events: list[tuple[str, dict]] = []
    with pytest.raises(ConfigError, match="is not empty and is not a run folder"):
        run_experiment(load_config(None, [*TINY, "learners=['anil']"]), tmp_path,
                       lambda kind, payload: events.append((kind, payload)))
    assert events == [] and [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("overrides", [
    ["learners=['maml-r', 'bogus']"],
    ["learners=['ridge']", "baselines=['foldin']", "learner.memory_precision=1.0"],
    ["learners=['anil']", "baselines=['global-mean', 'bogus']"],
    ["learners=['reptile']", "per_learner.reptile.loss='mae'"],
])
def test_every_learner_is_checked_before_data_are_loaded(overrides: list[str]) -> None:
    events: list[tuple[str, dict]] = []
    with pytest.raises(ConfigError):
        run_experiment(load_config(None, [*TINY, *overrides]),
                       events=lambda kind, payload: events.append((kind, payload)))
    assert events == []  # not even "loading"


def test_an_unknown_data_option_names_the_known_ones() -> None:
    with pytest.raises(ConfigError) as error:
        run_experiment(load_config(None, [*TINY, "data.options.bogus=3", "learners=[]",
                                          "baselines=['biases']"]))
    assert "unknown option(s) ['bogus'] in [data.options] for synthetic" in str(error.value)
    assert "num_items" in str(error.value)


def test_evaluate_names_missing_checkpoints(run_dir: Path, tmp_path: Path) -> None:
    import shutil

    from metarec.errors import CheckpointError

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    shutil.rmtree(copy / "checkpoints" / "reptile-seed0")
    with pytest.raises(CheckpointError, match=r"missing checkpoint\(s\) "
                                              r"checkpoints/reptile-seed0 \("):
        evaluate_run(copy)


def test_evaluate_prequential_of_a_run_without_learners(tmp_path: Path) -> None:
    """No learner: the `pretrain` checkpoint when there is one, else a one-line error."""
    from metarec.errors import CheckpointError

    plain = tmp_path / "plain"
    run_experiment(load_config(None, [*TINY, "learners=[]", "baselines=['biases']"]), plain)
    result = CliRunner().invoke(app, ["evaluate", str(plain), "--protocol", "prequential"])
    assert isinstance(result.exception, CheckpointError), result.output
    assert "the run trained no learner" in str(result.exception)
    pretrained = tmp_path / "pretrained"
    run_experiment(load_config(None, [*TINY, "learners=[]", "baselines=['pretrain']"]),
                   pretrained)
    result = CliRunner().invoke(app, ["evaluate", str(pretrained), "--protocol",
                                      "prequential", "--max-events", "200"])
    assert result.exit_code == 0, result.output
    assert "static" in result.output


def _with_queries_rated_five(config):
    """The run's data set, split and the same with every scenario's query ratings set to
    5 (the split's training tasks are unchanged: checked)."""
    import dataclasses

    import numpy as np

    from metarec.experiment import load_data, make_split

    dataset = load_data(config)
    split = make_split(dataset, config, 0)
    held_out = set()
    for scenario in SCENARIOS:
        query = split.scenarios[scenario].query
        held_out |= set(zip(query.user.tolist(), query.item.tolist(), strict=True))
    inter = dataset.interactions
    rows = np.array([(u, i) in held_out for u, i in zip(inter.user.tolist(),
                                                       inter.item.tolist(), strict=True)])
    assert rows.sum() == sum(len(split.scenarios[s].query) for s in SCENARIOS)
    rating = inter.rating.copy()
    rating[rows] = 5.0
    changed = dataclasses.replace(dataset, interactions=dataclasses.replace(inter,
                                                                            rating=rating))
    changed_split = make_split(changed, config, 0)
    np.testing.assert_array_equal(changed_split.train_ratings.rating,
                                  split.train_ratings.rating)
    return dataset, split, changed, changed_split


@pytest.mark.parametrize("name", ["pretrain", "maml-r"])
def test_no_evaluation_rating_reaches_a_trained_model(name: str) -> None:
    """Setting every scenario's query ratings to 5 changes neither the split's training
    tasks nor anything trained on them (the model's starting mean included)."""
    import numpy as np

    from metarec.experiment import train_learner

    config = load_config(None, [*SMALL, "learner.epochs=1"])
    dataset, split, changed, changed_split = _with_queries_rated_five(config)
    tasks = split.validation
    original = train_learner(name, dataset, split, config, 0).predict_tasks(tasks)
    again = train_learner(name, changed, changed_split, config, 0).predict_tasks(tasks)
    np.testing.assert_array_equal(again, original)


def test_no_evaluation_rating_reaches_a_prediction_of_any_baseline_or_ridge() -> None:
    """Every baseline and ``ridge`` with its memory and neighbourhood term predict every
    scenario's query rows the same when those rows' ratings are all 5: nothing they fit
    or choose on validation (``biased-mf``'s regularisation, ``foldin``'s precision, the
    term's scale) reads a held-out rating, and no predictor reads the query's own."""
    import numpy as np

    from metarec.experiment import BASELINES, predictors_for, train_learner

    config = load_config(None, [*SMALL, "learner.epochs=1", "model.kind='FeatureMF'",
                                "per_learner.ridge.memory_precision=1.0",
                                "per_learner.ridge.neighbours=5"])
    names = [*BASELINES, "ridge"]
    runs = _with_queries_rated_five(config)
    assert all((runs[3].scenarios[s].query.rating != runs[1].scenarios[s].query.rating
                ).any() for s in SCENARIOS)
    predictions = []
    for dataset, split in (runs[:2], runs[2:]):
        trained = {name: train_learner(name, dataset, split, config, 0)
                   for name in ("pretrain", "ridge")}
        predictors = predictors_for(trained, split, config, names, dataset)
        predictions.append({(name, scenario): predictors[name](split.scenarios[scenario])
                            for name in names for scenario in SCENARIOS})
    original, again = predictions
    assert {name for name, _ in original} == {*BASELINES, "ridge"}
    for key, values in original.items():
        np.testing.assert_array_equal(again[key], values, err_msg=str(key))


def test_a_split_with_nothing_to_train_on_is_a_data_error_before_training(tmp_path) -> None:
    from metarec.errors import DataError

    config = load_config(None, [*TINY, "learners=['maml-r']", "baselines=['biases']",
                                "split.min_ratings=200", "split.max_ratings=300"])
    with pytest.raises(DataError, match="nothing to train on: no user fits warm, "
                                        ".*meta-train: a user counts in a scenario with "
                                        "200 to 300 ratings"):
        run_experiment(config, tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("override", "message"), [
    ("split.seed=5", "split.seed: metarec run splits and trains once per seed of `seeds`"),
    ("learner.seed=5", "learner.seed: metarec run"),
    ("per_learner.maml-r.seed=2", "per_learner.maml-r.seed: metarec run"),
    ("evaluation.shots=[-1]", "evaluation.shots must be whole numbers >= 1, got [-1]"),
    ("evaluation.ks=[0, 3]", "evaluation.ks must be whole numbers >= 1"),
])
def test_settings_a_run_would_ignore_or_crash_on_are_refused_first(
        tmp_path: Path, override: str, message: str) -> None:
    """The seeds had been written to config.toml and not used; a negative shot had
    crashed with a traceback after everything trained."""
    with pytest.raises(ConfigError, match=message.replace("[", "\\[").replace("]", "\\]")):
        run_experiment(load_config(None, [*SMALL, "learners=[]", "baselines=['biases']",
                                          override]), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_a_relative_data_path_is_saved_absolute(tmp_path: Path, monkeypatch) -> None:
    """config.toml had kept the path as typed: `metarec evaluate` from another folder
    could not find the data (or read another file of the same name)."""
    (tmp_path / "data").mkdir()
    rows = [f"{u},{i},{1 + (u * i) % 5},{u * 100 + i}" for u in range(60) for i in range(25)
            if (u + i) % 3]
    (tmp_path / "data" / "log.csv").write_text("user,item,rating,ts\n" + "\n".join(rows))
    monkeypatch.chdir(tmp_path)
    config = load_config(None, ["data.dataset='data/log.csv'", "data.options={'time_col': 'ts'}",
                                "split.protocol='time'", "learners=[]",
                                "baselines=['global-mean']", "evaluation.shots=[]"])
    run_experiment(config, tmp_path / "run")
    saved = load_config(tmp_path / "run" / "config.toml")
    assert saved.data.dataset == str(tmp_path / "data" / "log.csv")
    monkeypatch.chdir(tmp_path / "data")
    evaluate_run(tmp_path / "run")


def test_several_seeds_say_whose_split_and_curves_the_document_holds(tmp_path: Path) -> None:
    out = tmp_path / "two"
    run_experiment(load_config(None, [*SMALL, "learners=['anil']", "baselines=['biases']",
                                      "seeds=[3, 4]", "evaluation.shots=[]"]), out)
    doc = json.loads((out / "results.json").read_text())
    assert doc["split_and_histories_seed"] == 3
    one = tmp_path / "one"
    run_experiment(load_config(None, [*SMALL, "learners=['anil']", "baselines=['biases']",
                                      "seeds=[3]", "evaluation.shots=[]"]), one)
    alone = json.loads((one / "results.json").read_text())
    assert doc["split"] == alone["split"] and doc["histories"] == alone["histories"]
