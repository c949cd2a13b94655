"""``metarec transfer`` / ``metarec distill`` end to end on tiny generated data, and their
one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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
                      'methods = ["target-only", "transfer"]\n')
    out = tmp_path / "run"
    result = runner.invoke(app, ["transfer", "--config", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
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
    # Reuse the saved source as a checkpoint.
    again = runner.invoke(app, ["transfer", "--config", str(config), "--out",
                                str(tmp_path / "run2"), "--source-checkpoint",
                                str(out / "source"), "--set", "transfer.fractions=[1.0]"])
    assert again.exit_code == 0, again.output


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


@pytest.mark.parametrize("args, error, message", [
    (["transfer", "--source-checkpoint", "nowhere"], CheckpointError,
     "source checkpoint nowhere does not exist"),
    (["transfer", "--freeze", "all"], ConfigError, "transfer.freeze must be one of"),
    (["transfer", "--set", "transfer.colour=1"], ConfigError,
     "unknown field(s) ['colour'] in section 'transfer'"),
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
    config = tmp_path / "c.toml"
    config.write_text(COMMON)
    result = runner.invoke(app, [*args, "--config", str(config), "--out", str(tmp_path / "o")])
    assert isinstance(result.exception, error), result.output
    assert message in str(result.exception)
    assert "\n" not in str(result.exception)


def test_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "metarec", "transfer", "--freeze", "all"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "transfer.freeze must be one of" in done.stderr
