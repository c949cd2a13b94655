"""``metarec transfer`` / ``metarec distill`` end to end on tiny generated data, and their
one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from metarec.cli import app
from metarec.errors import CheckpointError, ConfigError

runner = CliRunner()

COMMON = """seeds = [0]
[data]
dataset = "synthetic"
options = {num_users = 160, num_items = 80, num_ratings = 5000}
[split]
validation_fraction = 0.0
[learner]
epochs = 1
patience = 1
inner_steps = 1
[model]
embedding_dim = 4
hidden = [8]
"""


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def test_transfer_writes_a_run_folder(tmp_path: Path) -> None:
    config = tmp_path / "t.toml"
    config.write_text(COMMON + '[transfer]\nfractions = [0.5, 1.0]\nfreeze = "embeddings"\n'
                      'methods = ["target-only", "transfer"]\n'
                      "[per_learner.pretrain]\nmeta_lr = 0.0123\n")
    out = tmp_path / "run"
    result = runner.invoke(app, ["transfer", "--config", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    for folder in ("source", "model"):  # both trained by pretrain: [per_learner] applies
        saved = json.loads((out / folder / "learner.json").read_text())
        assert saved["config"]["meta_lr"] == 0.0123, folder  # (it had been ignored)
    document = json.loads((out / "results.json").read_text())
    rows = document["results"]
    assert {(r["fraction"], r["method"]) for r in rows} == {
        (f, m) for f in (0.5, 1.0) for m in ("target-only", "transfer")}
    assert {r["metric"] for r in rows} == {"mae", "ndcg@3"}
    # 6 side fields plus the item-id embedding (a run's model has one by default).
    assert [f["status"] for f in document["transfer_report"]["fields"]] == ["transferred"] * 7
    for name in ("report.html", "data_efficiency.png", "config.toml", "model/transfer.json",
                 "source/learner.json"):
        assert (out / name).is_file(), name
    assert 'freeze = "embeddings"' in (out / "config.toml").read_text()
    # Reuse the saved source as a checkpoint, even into the same folder: the new run
    # replaces it as a whole, with a copy of the source it used.
    source_weights = (out / "source" / "weights.safetensors").read_bytes()
    (out / "stale.png").write_text("from the run before")
    again = runner.invoke(app, ["transfer", "--config", str(config), "--out", str(out),
                                "--source-checkpoint", str(out / "source"),
                                "--set", "transfer.fractions=[1.0]"])
    assert again.exit_code == 0, again.output
    assert (out / "source" / "weights.safetensors").read_bytes() == source_weights
    rows = json.loads((out / "results.json").read_text())["results"]
    assert {r["fraction"] for r in rows} == {1.0}
    assert not (out / "stale.png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    # ... but not on a data set it was not trained on.
    other = runner.invoke(app, ["transfer", "--config", str(config), "--out",
                                str(tmp_path / "run3"), "--source-checkpoint",
                                str(out / "source"), "--set", "data.options.num_items=100"])
    assert isinstance(other.exception, CheckpointError), other.output
    assert "the source checkpoint" in str(other.exception)
    assert "has 80 item ids but the data set synthetic-source has 100 items" in str(
        other.exception)
    # ... nor with another seed's split of the users (some of its test users trained it),
    # nor across several seeds.
    for seeds, message in (("[1]", "trained with seed 0, this run splits with seed 1"),
                           ("[0,1]", "the run has seeds [0, 1]")):
        leak = runner.invoke(app, ["transfer", "--config", str(config), "--out",
                                   str(tmp_path / "run4"), "--source-checkpoint",
                                   str(out / "source"), "--set", f"seeds={seeds}"])
        assert isinstance(leak.exception, ConfigError), leak.output
        assert message in str(leak.exception)


def test_distill_writes_a_run_folder(tmp_path: Path) -> None:
    config = tmp_path / "d.toml"
    config.write_text(COMMON.replace("embedding_dim = 4\nhidden = [8]", "embedding_dim = 16\n"
                                     "hidden = [32]")
                      + "[distill]\nstudent_embedding_dim = 4\nstudent_hidden = [8]\n"
                      "distill_pairs = 500\ntiming_pairs = 2000\ntiming_users = 2\n")
    out = tmp_path / "run"
    result = runner.invoke(app, ["distill", "--config", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "results.json").read_text())["results"]
    assert [r["model"] for r in rows] == ["teacher", "student+teacher", "student alone"]
    assert rows[1]["parameters"] < rows[0]["parameters"]
    assert all(r["predictions_per_s"] > 0 and r["file_bytes"] > 0 for r in rows)
    assert (out / "student" / "distill.json").is_file()
    def refused(option: str, folder: str, error: type) -> str:
        """The message of a distill run from the saved teacher with ``--set option``."""
        result = runner.invoke(app, ["distill", "--config", str(config), "--out",
                                     str(tmp_path / folder), "--teacher-checkpoint",
                                     str(out / "student"), "--set", option])
        assert isinstance(result.exception, error), result.output
        assert "teacher checkpoint" in str(result.exception)
        return str(result.exception)

    assert "has 80 item ids but the data set synthetic has 100 items" in refused(
        "data.options.num_items=100", "run2", CheckpointError)
    assert "the run has seeds [0, 1]" in refused("seeds=[0,1]", "run3", ConfigError)


def _invoke(tmp_path: Path, args: list[str]):  # noqa: ANN202 (typer's Result)
    """``metarec ARGS`` with the tiny config and an output folder in ``tmp_path``."""
    config = tmp_path / "c.toml"
    config.write_text(COMMON)
    return runner.invoke(app, [*args, "--config", str(config), "--out", str(tmp_path / "o")])


@pytest.mark.parametrize("args, error, message", [
    (["transfer", "--source-checkpoint", "nowhere"], CheckpointError,
     "source checkpoint nowhere does not exist"),
    (["transfer", "--freeze", "all"], ConfigError, "transfer.freeze must be one of"),
    (["transfer", "--set", "transfer.colour=1"], ConfigError,
     "unknown field(s) ['colour'] in [transfer]"),
    (["transfer", "--set", "transfer.shared_share=abc"], ConfigError,
     "[transfer] shared_share: expected a number, got 'abc'"),
    (["transfer", "--set", "data.options.bogus=1"], ConfigError,
     "unknown option(s) ['bogus'] in [data.options] for synthetic"),
    (["distill", "--set", "distill.student_hidden=8"], ConfigError,
     "[distill] student_hidden: expected a list of integers, got 8"),
    (["distill", "--set", "distill.student_embedding_dim=64",
      "--set", "distill.student_hidden=[128,128]"], ConfigError, "not fewer than the teacher"),
    (["distill", "--teacher-checkpoint", "nowhere"], CheckpointError, "teacher checkpoint"),
    (["transfer", "--set", "split.unseen_codes_missing=true"], ConfigError,
     "split.unseen_codes_missing is for `metarec run`"),
    (["distill", "--set", "split.numeric_within_training=true"], ConfigError,
     "split.numeric_within_training is for `metarec run`"),
])
def test_bad_configurations_raise_project_errors(tmp_path: Path, args: list[str], error: type,
                                                 message: str) -> None:
    result = _invoke(tmp_path, args)
    assert isinstance(result.exception, error), result.output
    assert message in str(result.exception)
    assert "\n" not in str(result.exception)


@pytest.mark.parametrize("args, message", [
    (["transfer", "--set", "transfer.meta_learner=bogus"], "unknown learner 'bogus'"),
    (["transfer", "--set", "learner.memory_precision=1.0"],
     "pretrain keeps no memory of trained users"),
    (["distill", "--set", "distill.teacher_learner=bogus"], "unknown learner 'bogus'"),
    (["distill", "--set", "learner.average_decay=0.5"],
     "distill does not average the student's weights"),
])
def test_learners_are_checked_before_anything_trains(tmp_path: Path, args: list[str],
                                                     message: str) -> None:
    result = _invoke(tmp_path, args)
    assert isinstance(result.exception, ConfigError), result.output
    assert message in str(result.exception)
    assert "training" not in result.output


def test_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "metarec", "transfer", "--freeze", "all"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "transfer.freeze must be one of" in done.stderr


def _metric_values(out: Path) -> list[dict]:
    keep = ("setting", "seed", "fraction", "method", "model", "scenario", "metric", "value",
            "mae", "ndcg@3", "parameters")
    return [{k: v for k, v in r.items() if k in keep}
            for r in json.loads((out / "results.json").read_text())["results"]]


@pytest.mark.parametrize("command, section", [
    ("transfer", '[transfer]\nmethods = ["target-only", "transfer"]\n'),
    ("distill", "[distill]\nstudent_embedding_dim = 4\nstudent_hidden = [8]\n"
                "distill_pairs = 500\ntiming_pairs = 200\ntiming_users = 1\n"),
])
def test_one_config_gives_one_result(tmp_path: Path, command: str, section: str) -> None:
    """Every model's initial weights are seeded from the config: two runs agree."""
    config = tmp_path / "c.toml"
    config.write_text(COMMON.replace("embedding_dim = 4\nhidden = [8]", "embedding_dim = 8\n"
                                     "hidden = [16]") + section)
    for name, state in (("a", 1), ("b", 2)):
        torch.manual_seed(state)  # as each new process draws its own
        result = runner.invoke(app, [command, "--config", str(config), "--out",
                                     str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    assert _metric_values(tmp_path / "a") == _metric_values(tmp_path / "b")


@pytest.mark.parametrize("command, section", [("transfer", "[transfer]"),
                                              ("distill", "[distill]")])
def test_help_shows_the_section_name(command: str, section: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert f"{section} section" in " ".join(result.output.split())


def test_tables_are_not_cut_to_80_columns_when_output_is_not_a_terminal() -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    done = subprocess.run([sys.executable, "-c", "from metarec.cli import transfer, online; "
                           "print(transfer.console.width, online.console.width)"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.split() == ["160", "160"], done.stderr



def test_students_are_built_on_the_labelled_ratings_only(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """With ``label_fraction`` < 1 the students' starting mean had been that of every
    training rating, labels the student is not to see."""
    import metarec.cli.transfer as module

    built = []
    real = module.student_model

    def spy(settings, dataset, model=None):  # noqa: ANN001, ANN202
        built.append(len(dataset.interactions))
        return real(settings, dataset, model)

    monkeypatch.setattr(module, "student_model", spy)
    config = tmp_path / "d.toml"
    config.write_text(COMMON.replace("embedding_dim = 4\nhidden = [8]", "embedding_dim = 16\n"
                                     "hidden = [32]")
                      + "[distill]\nstudent_embedding_dim = 4\nstudent_hidden = [8]\n"
                      "timing_pairs = 200\ntiming_users = 1\n")
    sizes = {}
    for fraction in (1.0, 0.25):
        built.clear()
        result = runner.invoke(app, ["distill", "--config", str(config), "--out",
                                     str(tmp_path / f"run{fraction}"), "--set",
                                     f"distill.label_fraction={fraction}"])
        assert result.exit_code == 0, result.output
        sizes[fraction] = built[1:]  # the first is the settings check on a tiny data set
    assert len(set(sizes[1.0])) == 1 and len(set(sizes[0.25])) == 1
    assert sizes[0.25][0] < 0.4 * sizes[1.0][0]
