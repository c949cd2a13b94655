"""replaced_folder: a run replaces its output folder only when it is complete, and a
finished run is never deleted."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from metarec.errors import ConfigError
from metarec.evaluation import report
from metarec.evaluation.report import replaced_folder


def test_a_finished_run_that_cannot_take_the_folders_place_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.toml").write_text("old")
    (out / "results.json").write_text("{}")
    rename = os.rename

    def busy(source: object, target: object) -> None:  # a mount point cannot be renamed
        if Path(str(source)) == out:
            raise OSError(errno.EBUSY, "Device or resource busy")
        rename(source, target)

    monkeypatch.setattr(report.os, "rename", busy)
    with pytest.raises(ConfigError, match="the run is complete in .*could not replace") as err:
        with replaced_folder(out) as staging:
            (staging / "config.toml").write_text("new")
    kept = Path(str(err.value).split(" in ", 1)[1].split(" but ")[0])
    assert (kept / "config.toml").read_text() == "new"
    assert (out / "config.toml").read_text() == "old"


def test_an_error_in_the_run_deletes_only_what_it_wrote(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(RuntimeError), replaced_folder(out) as staging:
        (staging / "half.txt").write_text("x")
        raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_be_written_beside_is_a_config_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(ConfigError, match="cannot write a run beside"):
        with replaced_folder(tmp_path / "run"):
            pass


def test_results_json_is_strict_json_with_null_for_what_is_no_number(tmp_path: Path) -> None:
    import json

    from metarec.evaluation.report import write_run_folder

    document = {"results": [{"metric": "recall@3", "mean": float("nan"), "sd": float("inf")},
                            {"metric": "mae", "mean": 0.7, "sd": 0.0}]}
    folder = write_run_folder(tmp_path, config_toml="", document=document, figures={},
                              title="t")
    text = (folder / "results.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["results"] == [{"metric": "recall@3", "mean": None, "sd": None},
                                           {"metric": "mae", "mean": 0.7, "sd": 0.0}]


def test_report_table_puts_each_value_under_its_own_column() -> None:
    """A predictor without one scenario's column had its values shifted left."""
    rows = [{"learner": "a", "warm/mae": 1.0, "new_users/mae": 2.0},
            {"learner": "b", "new_users/mae": 3.0}]
    page = report._html("t", {}, rows, [])
    assert ("<tr><td>b</td><td></td><td>3.0000</td></tr>") in page


def test_bar_chart_of_zero_or_negative_means_has_a_proper_axis() -> None:
    records = [{"learner": "a", "scenario": "warm", "metric": "m", "mean": value, "sd": 0.0}
               for value in (0.0,)]
    low, high = report.bar_chart(records, "m", ["warm"]).axes[0].get_ylim()
    assert low < 0.0 < high
    records[0]["mean"] = -2.0
    low, high = report.bar_chart(records, "m", ["warm"]).axes[0].get_ylim()
    assert low < -2.0 < high
