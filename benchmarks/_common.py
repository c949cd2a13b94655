"""Helpers shared by the benchmark scripts: loading ML-1M (or, when asked, the generated
set), and writing the JSON result document. Data that are not there stop a script before
it writes anything, so one data set's results are never written over another's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table

from metarec.data.dataset import Dataset
from metarec.data.splits import SCENARIOS
from metarec.evaluation.report import results_document

RESULTS = Path(__file__).resolve().parent / "results"
SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"


def load_ml1m(data_dir: Path | None = None) -> Dataset:
    """ML-1M with MeLU's side features from ``data_dir`` (default ``../shared/datasets``,
    beside the repository), which holds ``ml-1m/`` and ``melu-ml1m/``; when either is
    missing the script stops with a one-line message."""
    from metarec.data.readers.ml1m import read_ml1m

    root = Path(data_dir) if data_dir else SHARED
    ml1m, melu = root / "ml-1m", root / "melu-ml1m" / "movies_extrainfos.dat"
    if not (ml1m / "ratings.dat").is_file() or not melu.is_file():
        raise SystemExit(f"ML-1M not found in {root}: pass --data-dir with ml-1m/ and "
                         "melu-ml1m/")
    return read_ml1m(ml1m, extras=melu)


def speed_dataset(choice: str, data_dir: Path | None = None) -> tuple[str, Dataset]:
    """The speed benchmarks' data and its name: the generated set for ``choice``
    ``"synthetic"``, else ML-1M with MeLU's side features (:func:`load_ml1m`)."""
    from metarec.data.synthetic import generate

    if choice == "synthetic":
        return "synthetic", generate()
    return "movielens-1m+melu", load_ml1m(data_dir)


def scenario_table(title: str) -> Table:
    """A rich table with a ``predictor`` column, then one column per scenario."""
    table = Table(title=title)
    table.add_column("predictor")
    for scenario in SCENARIOS:
        table.add_column(scenario, justify="right")
    return table


def write_json(name: str, dataset: str, protocol: str, seeds: list[int],
               results: list[dict[str, Any]], **extra: Any) -> Path:
    """Write ``benchmarks/results/NAME.json`` (the shared flat document format)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    document = results_document(dataset, protocol, seeds, results, **extra)
    path.write_text(json.dumps(document, indent=2))
    return path
