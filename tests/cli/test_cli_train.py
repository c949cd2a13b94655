"""``metarec train``: launched directly (typer's CliRunner) and under ``torchrun`` with two
processes, which must give the same weights as one."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from metarec.cli import app
from metarec.config import load_config
from metarec.errors import CheckpointError, ConfigError
from metarec.learners import Learner

runner = CliRunner()

CONFIG = """\
learners = ["reptile"]
[data]
dataset = "synthetic"
options = {num_users = 300, num_items = 200, num_ratings = 15000}
[model]
embedding_dim = 4
hidden = [8]
[learner]
epochs = 2
inner_steps = 1
meta_batch_size = 32
dtype = "float64"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(CONFIG)
    return path


def _train(*args: str) -> dict:
    result = runner.invoke(app, ["train", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _weights(out: Path, learner: str = "reptile") -> dict:
    return load_file(str(out / "checkpoints" / learner / "weights.safetensors"))


def test_train_writes_checkpoint_and_history_then_resumes(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = _train("--config", str(config), "--out", str(out), "--max-steps", "4",
                    "--checkpoint-every", "2")
    assert "reptile: 4 meta-steps" in result.output
    summary = json.loads((out / "train.json").read_text())
    assert (summary["steps"], summary["epochs"], summary["world_size"]) == (4, 0, 1)
    assert summary["finished"] is False and summary["history"] == []
    folder = out / "checkpoints" / "reptile"
    assert {p.name for p in folder.iterdir()} == {"learner.json", "weights.safetensors",
                                                  "memory.safetensors", "trainer_state.pt"}

    # Resume to the end of the 2 epochs (6 steps each) ...
    _train("--config", str(config), "--out", str(out), "--resume")
    summary = json.loads((out / "train.json").read_text())
    assert summary["resumed_from_step"] == 4
    assert (summary["steps"], summary["epochs"], summary["finished"]) == (12, 2, True)
    assert [r["epoch"] for r in summary["history"]] == [1, 2]
    # ... equals one uninterrupted run.
    straight = tmp_path / "straight"
    _train("--config", str(config), "--out", str(straight), "--set", "learner.patience=None")
    resumed, uninterrupted = _weights(out), _weights(straight)
    assert all((resumed[k] - uninterrupted[k]).abs().max() == 0 for k in uninterrupted)
    assert json.loads((straight / "train.json").read_text())["history"] == summary["history"]
    loaded = Learner.load(folder)
    assert loaded.name == "reptile" and len(loaded.history_) == 2
    # The resolved config travels with the checkpoint: a prequential run on the folder
    # streams the data set it was trained on (not the default synthetic one).
    assert load_config(out / "train_config.toml").data.options["num_items"] == 200
    assert not (out / "config.toml").exists()  # no `metarec run` folder: run refuses it
    refused = runner.invoke(app, ["run", "--out", str(out), "--learners", "reptile"])
    assert isinstance(refused.exception, ConfigError)
    assert "is not a run folder" in str(refused.exception)
    assert (folder / "trainer_state.pt").is_file()
    preq = runner.invoke(app, ["evaluate", str(out), "--protocol", "prequential",
                               "--max-events", "600"])
    assert preq.exit_code == 0, preq.output


def test_train_never_overwrites_a_run_and_resumes_only_what_it_trained(
        config: Path, tmp_path: Path) -> None:
    """A second `train` into the same --out had overwritten a finished run; a resume had
    trained on another data set, model or learner, and relabelled the folder."""
    out = tmp_path / "run"
    _train("--config", str(config), "--out", str(out), "--max-steps", "3",
           "--checkpoint-every", "1")
    before = _weights(out)

    def refused(*args: str, error: type = ConfigError) -> str:
        result = runner.invoke(app, ["train", "--config", str(config), "--out", str(out),
                                     *args])
        assert isinstance(result.exception, error), result.output
        return str(result.exception)

    assert "holds a training of 'reptile'" in refused("--max-steps", "2")
    assert "resume it with --learner reptile" in refused("--resume", "--learner", "maml-r")
    assert "another model" in refused("--resume", "--set", "model.hidden=[16]",
                                      error=CheckpointError)
    other_data = refused("--resume", "--set", "data.options.num_ratings=14000",
                         error=CheckpointError)  # (its starting mean differs too)
    assert "another model" in other_data or "other training tasks" in other_data
    assert "inner_steps=1 (this run: 2)" in refused(
        "--resume", "--set", "learner.inner_steps=2", error=CheckpointError)
    (out / "train.json").unlink()  # a run killed before its end: only the checkpoint
    assert "holds an unfinished training" in refused()
    assert "holds an unfinished training" in refused("--learner", "maml-r")
    assert "holds a training of 'reptile', not 'maml-r'" in refused("--resume", "--learner",
                                                                    "maml-r")
    after = _weights(out)
    assert all((before[k] == after[k]).all() for k in before)
    assert load_config(out / "train_config.toml").learner.inner_steps == 1
    _train("--config", str(config), "--out", str(out), "--resume", "--max-steps", "4")
    again = _train("--config", str(config), "--out", str(out), "--resume", "--max-steps", "4")
    assert "4 meta-steps, 0 epochs on 1 process(es), no step taken" in again.output
    assert json.loads((out / "train.json").read_text())["tasks_per_second"] is None


def test_a_folder_holding_two_trainings_from_before_the_rule_resumes_each(
        config: Path, tmp_path: Path) -> None:
    """Before one --out held one training, two learners could share it: both resume."""
    out, other = tmp_path / "legacy", tmp_path / "other"
    _train("--config", str(config), "--out", str(out), "--max-steps", "2",
           "--learner", "maml-r", "--checkpoint-every", "1")
    _train("--config", str(config), "--out", str(other), "--max-steps", "2",
           "--learner", "reptile", "--checkpoint-every", "1")
    shutil.copytree(other / "checkpoints" / "reptile", out / "checkpoints" / "reptile")
    shutil.copy(other / "train.json", out / "train.json")  # the later one's summary
    for learner in ("reptile", "maml-r"):
        result = _train("--config", str(config), "--out", str(out), "--resume",
                        "--learner", learner, "--max-steps", "3")
        assert f"{learner}: 3 meta-steps" in result.output


def test_train_refuses_a_file_where_the_checkpoints_go(config: Path, tmp_path: Path) -> None:
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "checkpoints").write_text("notes")
    result = runner.invoke(app, ["train", "--config", str(config), "--out",
                                 str(tmp_path / "o")])
    assert isinstance(result.exception, ConfigError), result.output
    assert "checkpoints is a file, where the checkpoints go" in str(result.exception)


def test_train_refuses_a_step_budget_below_one(config: Path, tmp_path: Path) -> None:
    for steps in ("0", "-3"):
        result = runner.invoke(app, ["train", "--config", str(config), "--max-steps", steps,
                                     "--out", str(tmp_path / "x")])
        assert isinstance(result.exception, ConfigError)
        assert "--max-steps must be >= 1" in str(result.exception)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(("option", "message"), [
    (["--threads", "0"], "--threads must be >= 1"),
    (["--checkpoint-every", "0"], "--checkpoint-every must be >= 1"),
    (["--out", "FILE"], "is a file: name a folder"),
])
def test_train_refuses_bad_options_before_loading_data(config: Path, tmp_path: Path,
                                                       option: list[str],
                                                       message: str) -> None:
    """--threads 0 and an --out that is a file had been tracebacks from torch and pathlib."""
    (tmp_path / "FILE").write_text("notes")
    option = [str(tmp_path / "FILE") if o == "FILE" else o for o in option]
    result = runner.invoke(app, ["train", "--config", str(config), "--out",
                                 str(tmp_path / "x"), *option])
    assert isinstance(result.exception, ConfigError), result.output
    assert message in str(result.exception)
    assert not (tmp_path / "x").exists()


def test_train_on_absolute_error_reports_both_errors(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = _train("--config", str(config), "--out", str(out), "--learner", "maml-r",
                    "--set", "learner.loss=mae", "--set", "learner.epochs=1")
    last = json.loads((out / "train.json").read_text())["history"][-1]
    assert last["val_loss"] == last["val_mae"] != last["val_mse"]
    assert f"val MSE {last['val_mse']:.4f}, val MAE {last['val_mae']:.4f}" in result.output


def test_train_refuses_a_learner_that_is_not_meta(config: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--config", str(config), "--learner", "pretrain",
                                 "--out", str(tmp_path / "x")])
    assert isinstance(result.exception, ConfigError)
    assert "not a meta-learner" in str(result.exception)
    assert "anil, ridge, melu (= maml-r)" in str(result.exception)  # every one that trains


def test_train_refuses_an_unknown_backend(config: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--config", str(config), "--backend", "bogus",
                                 "--out", str(tmp_path / "x")])
    assert isinstance(result.exception, ConfigError)
    assert "--backend must be one of gloo, nccl, mpi" in str(result.exception)
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_torchrun_two_processes_equal_one(config: Path, tmp_path: Path) -> None:
    torchrun = Path(sys.executable).parent / "torchrun"
    if not torchrun.exists() and shutil.which("torchrun") is None:
        pytest.skip("torchrun is not installed")
    command = [str(torchrun) if torchrun.exists() else "torchrun", "--standalone",
               "--nproc-per-node", "2", "-m", "metarec", "train", "--config", str(config),
               "--out", str(tmp_path / "two"), "--max-steps", "8", "--timeout", "60"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "reptile: 8 meta-steps" in done.stdout
    assert done.stdout.count("checkpoint:") == 1  # rank 0 alone reports
    summary = json.loads((tmp_path / "two" / "train.json").read_text())
    assert (summary["world_size"], summary["backend"], summary["steps"]) == (2, "gloo", 8)

    _train("--config", str(config), "--out", str(tmp_path / "one"), "--max-steps", "8")
    one, two = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert max(float((one[k] - two[k]).abs().max()) for k in one) < 1e-5


@pytest.mark.slow
def test_ray_train_two_workers_equal_one_process(config: Path, tmp_path: Path) -> None:
    """The same worker under Ray Train's TorchTrainer (2 CPU workers, gloo) gives the
    weights of a single-process run. Skips where Ray is not installed."""
    pytest.importorskip("ray.train.torch")
    import ray

    from metarec.cli.train import TrainJob, train_with_ray

    single = tmp_path / "single"
    _train("--config", str(config), "--out", str(single), "--max-steps", "6")
    on_ray = tmp_path / "ray"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        train_with_ray(TrainJob(config=str(config), out=str(on_ray), max_steps=6, threads=1),
                       num_workers=2)
    finally:
        ray.shutdown()
    expected, got = _weights(single), _weights(on_ray)
    assert expected.keys() == got.keys()
    for name, value in expected.items():
        assert (value - got[name]).abs().max() < 1e-5, name
