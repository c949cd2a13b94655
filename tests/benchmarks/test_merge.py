"""`movielens_melu.py --merge`: pooling per-seed records of several result files, a
predictor run again replacing its earlier records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _document(records: list[tuple[str, int, float]]) -> dict:
    return {"dataset": "movielens-1m+melu", "protocol": "melu-honest-warm",
            "machine": {"cpus": 2}, "versions": {},
            "per_seed": [{"learner": name, "scenario": "warm", "metric": metric,
                          "value": value, "seed": seed} for name, seed, value in records
                         for metric in ("mae", "ndcg@3")]}


def test_a_later_file_replaces_a_predictors_records(tmp_path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    melu = pytest.importorskip("movielens_melu")
    monkeypatch.setattr(melu, "RESULTS", tmp_path)
    old = tmp_path / "old.json"
    old.write_text(json.dumps(_document([("biased-mf", 0, 0.80), ("biased-mf", 1, 0.82),
                                         ("ridge", 0, 0.70), ("ridge", 1, 0.72)])))
    rerun = tmp_path / "rerun.json"
    rerun.write_text(json.dumps(_document([("biased-mf", 0, 0.71), ("biased-mf", 1, 0.73)])))
    melu.merge([old, rerun], "merged")
    merged = json.loads((tmp_path / "merged.json").read_text())
    values = {(r["learner"], r["seed"]): r["value"] for r in merged["per_seed"]}
    assert values == {("biased-mf", 0): 0.71, ("biased-mf", 1): 0.73, ("ridge", 0): 0.70,
                      ("ridge", 1): 0.72}
    means = {r["learner"]: r["mean"] for r in merged["results"] if r["metric"] == "mae"}
    assert means["biased-mf"] == pytest.approx(0.72)
    assert means["ridge"] == pytest.approx(0.71)


def test_results_paths_of_the_docs_are_read_from_the_results_folder(tmp_path,
                                                                    monkeypatch) -> None:
    """The docs' commands run from the repository root and name ``results/X.json``."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    melu = pytest.importorskip("movielens_melu")
    monkeypatch.setattr(melu, "RESULTS", tmp_path / "results")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "part.json").write_text(json.dumps(_document([("ridge", 0, 0.7)])))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    melu.merge([Path("results/part.json")], "merged")
    merged = json.loads((tmp_path / "results" / "merged.json").read_text())
    assert [r["value"] for r in merged["per_seed"] if r["metric"] == "mae"] == [0.7]
