"""A benchmark script asked for a real data set that is not there stops with one line
before anything is trained or written; it had skipped the data set (or fallen back to the
generated one) and written its results over the committed ones."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

CASES = [
    ("movielens_melu", [], "ML-1M not found in {d}: pass --data-dir"),
    ("seed_ensemble", [], "ML-1M not found in {d}: pass --data-dir"),
    ("cold_start_facts", [], "ML-1M not found in {d}: pass --data-dir"),
    ("film_effect", ["--run", "{d}"], "ML-1M not found in {d}: pass --data-dir"),
    ("meta_speed", [], "ML-1M not found in {d}: pass --data-dir"),
    ("ridge_speed", [], "ML-1M not found in {d}: pass --data-dir"),
    ("online", [], "{d}: no ml-100k/u.data (pass --data-dir, or --no-movielens)"),
    ("transfer", ["--movielens"], "--movielens needs ml-1m/ratings.dat and ml-100k/u.data"),
    ("distill", ["--ml1m"], "--ml1m: {d} has no ml-1m/ratings.dat (pass --data-dir)"),
]


@pytest.mark.parametrize(("script", "extra", "message"), CASES,
                         ids=[case[0] for case in CASES])
def test_missing_data_stops_the_script_before_it_writes(script: str, extra: list[str],
                                                        message: str, benchmarks,
                                                        tmp_path: Path, monkeypatch,
                                                        capsys) -> None:
    module = importlib.import_module(script)
    empty = tmp_path / "data"
    empty.mkdir()
    args = [a.format(d=empty) for a in extra]
    monkeypatch.setattr(sys, "argv", [f"{script}.py", *args, "--data-dir", str(empty)])
    monkeypatch.chdir(tmp_path)
    before = _written(benchmarks / "results")
    with pytest.raises(SystemExit) as stop:
        module.main()
    said = str(stop.value.code) if stop.value.code not in (None, 2) else capsys.readouterr().err
    assert message.format(d=empty) in said
    assert _written(benchmarks / "results") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def _written(folder: Path) -> dict[str, tuple[int, int]]:
    """Each file's size and modification time (nanoseconds) under ``folder``."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}
