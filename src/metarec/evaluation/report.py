"""Run folders: ``results.json`` (a flat, DataFrame-ready document), PNG plots and a
self-contained ``report.html`` that shows them."""

from __future__ import annotations

import html
import json
import math
import os
import platform
import shutil
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from metarec.errors import ConfigError  # noqa: E402
from metarec.files import replacing  # noqa: E402


def machine() -> dict[str, Any]:
    """Where a run happened: platform, processor, CPU count, accelerator."""
    import torch

    info: dict[str, Any] = {"platform": platform.platform(), "processor": platform.machine(),
                            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape results."""
    import numpy
    import pandas
    import torch

    from metarec import __version__

    return {"python": sys.version.split()[0], "metarec": __version__, "torch": torch.__version__,
            "numpy": numpy.__version__, "pandas": pandas.__version__}


def results_document(dataset: str, protocol: str, seeds: Sequence[int],
                     results: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """The ``results.json`` document: run facts plus a flat list of result records
    (``pandas.DataFrame(doc["results"])`` loads them)."""
    return {"dataset": dataset, "protocol": protocol, "seeds": list(seeds),
            "machine": machine(), "versions": versions(), **extra, "results": results}


def write_run_folder(out_dir: str | Path, *, config_toml: str, document: dict[str, Any],
                     figures: dict[str, Figure], title: str,
                     table: list[dict[str, Any]] | None = None) -> Path:
    """Write ``config.toml``, ``results.json`` (strict JSON: a value that is not a number,
    such as the recall of a user with nothing relevant, is ``null``), one PNG per figure
    and ``report.html``."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text(config_toml)
    text = json.dumps(_nulls(document), indent=2, default=_jsonable, allow_nan=False)
    _atomic_write(folder / "results.json", text)
    images = []
    for name, figure in figures.items():
        path = folder / f"{name}.png"
        figure.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(figure)
        images.append(path.name)
    rows = table if table is not None else document.get("results", [])
    _atomic_write(folder / "report.html", _html(title, document, rows, images))
    return folder


RUN_FILES = ("config.toml", "results.json")
"""What every run folder written by :func:`write_run_folder` holds (a ``metarec train``
folder holds neither)."""


def check_replaceable(out_dir: str | Path) -> None:
    """Refuse (:class:`ConfigError`) an output folder that a new run may not replace: a
    file, or a non-empty folder that is not a run folder (:data:`RUN_FILES`), so that
    replacing a run never deletes other files (a ``metarec train`` folder's included)."""
    folder = Path(out_dir)
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise ConfigError(f"{folder} exists and is not a folder (a file or a link): "
                          "choose another output folder")
    if folder.is_dir() and any(folder.iterdir()) and not all(
            (folder / name).is_file() for name in RUN_FILES):
        raise ConfigError(f"{folder} is not empty and is not a run folder (one with "
                          f"{' and '.join(RUN_FILES)}): choose another output folder, or "
                          "empty it; a new run replaces the whole folder")


@contextmanager
def replaced_folder(out_dir: str | Path) -> Iterator[Path]:
    """A new empty folder beside ``out_dir`` to write a run into. When the block ends
    without an error it takes ``out_dir``'s place as a whole (an old run there is deleted,
    so nothing of it mixes with the new one); on an error in the block it is deleted and
    ``out_dir`` stays as it was. ``out_dir`` is checked first (:func:`check_replaceable`).
    A finished run is never deleted: when it cannot take ``out_dir``'s place (``out_dir``
    became a user's folder meanwhile, or is a mount point that cannot be renamed), a
    :class:`ConfigError` says where it is."""
    folder = Path(os.path.abspath(out_dir))
    check_replaceable(folder)
    staging = folder.parent / f".{folder.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir(parents=True)
    except OSError as error:
        raise ConfigError(f"cannot write a run beside {folder} ({error.strerror or error}): "
                          "choose an output folder in a folder you can write to") from None
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        check_replaceable(folder)  # again: the run may have taken hours
        _swap(staging, folder)
    except (ConfigError, OSError) as error:
        reason = error.strerror if isinstance(error, OSError) else str(error)
        raise ConfigError(f"the run is complete in {staging} but could not replace "
                          f"{folder} ({reason}); move it there by hand") from None


def _swap(staging: Path, folder: Path) -> None:
    """Put ``staging`` in ``folder``'s place; the old ``folder`` is deleted after."""
    old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
    if folder.exists():
        os.rename(folder, old)
    try:
        os.rename(staging, folder)
    except OSError:
        if old.exists():
            os.rename(old, folder)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _atomic_write(path: Path, text: str) -> None:
    with replacing(path) as temporary:
        temporary.write_text(text)


def _nulls(value: Any) -> Any:
    """``value`` with every NaN or infinite float (numpy's too) replaced by None (JSON has
    neither)."""
    if isinstance(value, (np.generic, np.ndarray)):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_nulls(v) for v in value]
    if isinstance(value, dict):
        return {k: _nulls(v) for k, v in value.items()}
    return value


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _html(title: str, document: dict[str, Any], rows: list[dict[str, Any]],
          images: list[str]) -> str:
    columns = list(dict.fromkeys(k for row in rows for k in row))  # every row's, in order
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(row.get(k, '')))}</td>"
                                    for k in columns) + "</tr>" for row in rows)
    facts = {k: v for k, v in document.items() if k != "results"}
    pictures = "".join(f'<figure><img src="{html.escape(name)}" alt="{html.escape(name)}">'
                       f"<figcaption>{html.escape(name)}</figcaption></figure>"
                       for name in images)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:1200px}}
table{{border-collapse:collapse;font-size:.85rem}}td,th{{border:1px solid #ccc;padding:2px 6px}}
th{{background:#f3f3f3}}img{{max-width:100%}}figure{{margin:1rem 0}}
pre{{background:#f7f7f7;padding:.5rem;overflow:auto}}</style></head>
<body><h1>{html.escape(title)}</h1>
<h2>Results</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<h2>Plots</h2>{pictures}
<h2>Run</h2><pre>{html.escape(json.dumps(facts, indent=2, default=_jsonable))}</pre>
</body></html>
"""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def bar_chart(records: list[dict[str, Any]], metric: str, scenarios: Sequence[str]) -> Figure:
    """Grouped bars of ``metric`` (mean ± sd) per scenario, one bar per learner."""
    learners = list(dict.fromkeys(r["learner"] for r in records))
    figure, axis = plt.subplots(figsize=(max(6, 1.6 * len(scenarios)), 4))
    width = 0.8 / max(len(learners), 1)
    for i, learner in enumerate(learners):
        means, sds = [], []
        for scenario in scenarios:
            match = [r for r in records if r["learner"] == learner and r["scenario"] == scenario
                     and r["metric"] == metric]
            means.append(match[0]["mean"] if match else float("nan"))
            sds.append(match[0]["sd"] if match else 0.0)
        positions = [j + i * width for j in range(len(scenarios))]
        axis.bar(positions, means, width, yerr=sds, label=learner)
    axis.set_xticks([j + 0.4 - width / 2 for j in range(len(scenarios))], scenarios)
    axis.set_ylabel(metric)
    axis.set_title(f"{metric} per scenario")
    axis.legend(fontsize=7, ncol=2)
    finite = [r["mean"] for r in records if r["metric"] == metric and r["mean"] == r["mean"]]
    if finite:
        low, high = min(finite), max(finite)
        if low > 0:
            axis.set_ylim(low * 0.9, high * 1.05)
        else:  # zero or negative means: a margin of 10 % of the largest magnitude (or 1)
            pad = 0.1 * max(abs(low), abs(high)) or 1.0
            axis.set_ylim(low - pad, high + pad)
    return figure


def line_chart(series: dict[str, tuple[Sequence[float], Sequence[float]]], *, xlabel: str,
               ylabel: str, title: str, logx: bool = False) -> Figure:
    """One line per named ``(x, y)`` series."""
    figure, axis = plt.subplots(figsize=(6, 4))
    for name, (x, y) in series.items():
        axis.plot(list(x), list(y), marker="o", label=name)
    if logx:
        axis.set_xscale("log")
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.legend(fontsize=7)
    return figure
