"""Fixtures shared by the reader tests: writing hand-made files, decoding encoded
fields back to values, and locating the real data sets (skipping when absent)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from metarec.data.dataset import FeatureTable

DATASETS = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"
"""Real data sets, beside the repository (never inside it); tests using them skip
when the folder is absent."""


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """``write(name, text, encoding="utf-8")`` writes ``tmp_path / name`` (``bytes`` are
    written as-is) and returns its path."""

    def _write(name: str, text: str | bytes, encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode(encoding))
        return path

    return _write


@pytest.fixture
def real_dataset() -> Callable[[str], Path]:
    """``real_dataset(folder)``: the path of a real data set, or skip the test."""

    def _find(folder: str) -> Path:
        path = DATASETS / folder
        if not path.is_dir():
            pytest.skip(f"real data set {folder} not available at {path}")
        return path

    return _find


def decode(table: FeatureTable, field: str, row: int) -> object:
    """The value of ``field`` at ``row``: a category (or None), a list for multi fields,
    a float for numeric ones."""
    spec = table.spec(field)
    value = table.values[field][row]
    if spec.kind == "numeric":
        return float(value)
    if spec.kind == "categorical":
        return spec.vocab[int(value) - 1] if int(value) else None
    return [spec.vocab[int(c) - 1] for c in value.tolist() if c]


@pytest.fixture(name="decode")
def decode_fixture() -> Callable[[FeatureTable, str, int], object]:
    """The :func:`decode` helper as a fixture."""
    return decode
