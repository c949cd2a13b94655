"""`time_split_sizes.py` stops before writing when a data set is missing (it had written
an empty table over its committed results)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


def test_a_missing_data_set_stops_it_before_anything_is_written(benchmarks, tmp_path: Path,
                                                                 monkeypatch, capsys) -> None:
    bench = pytest.importorskip("time_split_sizes")
    (tmp_path / "ml-100k").mkdir()
    written = []
    monkeypatch.setattr(bench, "write_json", lambda *args: written.append(args))
    monkeypatch.setattr(sys, "argv", ["time_split_sizes.py", "--data-dir", str(tmp_path)])
    with pytest.raises(SystemExit) as stop:
        bench.main()
    assert stop.value.code == 2 and written == []
    assert f"{tmp_path}: no ml-latest-small/, ml-1m/ (pass --data-dir)" in capsys.readouterr().err
