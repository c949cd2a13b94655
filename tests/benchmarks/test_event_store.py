"""`event_store.py` runs end to end on a small store and writes one row per size and kind."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest


def test_event_store_benchmark_writes_every_size_and_kind(benchmarks, tmp_path: Path,
                                                         monkeypatch) -> None:
    bench = pytest.importorskip("event_store")
    monkeypatch.setattr(sys, "argv", ["event_store.py", "--stored", "1500", "--sizes", "1,3",
                                      "--rounds", "2", "--name", str(tmp_path / "e")])
    bench.main()
    rows = json.loads((tmp_path / "e.json").read_text())["results"]
    assert [(r["events_per_commit"], r["kind"], r["count"]) for r in rows] == [
        (size, kind, 2) for size in (1, 3) for kind in ("no key", "key", "retry")]
