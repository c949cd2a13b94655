"""From predictions to metric records: per scenario, then across seeds.

Evaluation never sees a model: a learner or baseline turns a :class:`~metarec.tasks.TaskSet`
into one prediction per query row, :func:`predictions_frame` pairs them with the truth,
:func:`evaluate` scores each scenario's frame with :func:`~metarec.evaluation.metrics.
compute_metrics`, and :func:`aggregate_seeds` summarises repeated runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from metarec.evaluation.metrics import DEFAULT_KS, DEFAULT_THRESHOLD, compute_metrics
from metarec.tasks.taskset import TaskSet


def predictions_frame(tasks: TaskSet, pred: np.ndarray, score: np.ndarray | None = None
                      ) -> pd.DataFrame:
    """A ``user, item, true, pred`` frame with one row per query row of ``tasks``, in the
    order of ``tasks.query`` (which is also the tie-break order of the ranking metrics),
    and a ``score`` column when the predictor ranks by something else than ``pred``."""
    columns = {"pred": pred} if score is None else {"pred": pred, "score": score}
    for name, values in columns.items():
        columns[name] = np.asarray(values, dtype=np.float64).reshape(-1)
        if len(columns[name]) != len(tasks.query):
            what = "predictions" if name == "pred" else "ranking scores"
            raise ValueError(f"got {len(columns[name])} {what} for {len(tasks.query)} "
                             "query rows; predict every query row of the task set, in order")
    return pd.DataFrame({
        "user": tasks.query.user,
        "item": tasks.query.item,
        "true": tasks.query.rating.astype(np.float64),
        **columns,
    })


def evaluate(frames: Mapping[str, pd.DataFrame], ks: Sequence[int] = DEFAULT_KS,
             threshold: float = DEFAULT_THRESHOLD,
             levels: np.ndarray | None = None) -> list[dict]:
    """Score each scenario's prediction frame (``levels``: the rating scale, for
    ``mae_rounded``).

    Returns one record ``{"scenario", "metric", "value"}`` per scenario and metric, in the
    order of ``frames`` and then of :func:`compute_metrics`.
    """
    records: list[dict] = []
    for scenario, frame in frames.items():
        for metric, value in compute_metrics(frame, ks=ks, threshold=threshold,
                                                 levels=levels).items():
            records.append({"scenario": scenario, "metric": metric, "value": value})
    return records


def aggregate_seeds(records: Sequence[Mapping[str, object]]) -> list[dict]:
    """Mean and spread of each (learner, scenario, metric) over seeds.

    Input records have keys ``learner, scenario, metric, value, seed``; one seed may appear
    once per (learner, scenario, metric). Output records ``{"learner", "scenario",
    "metric", "mean", "sd", "n_seeds"}``, in order of first appearance, where over the
    ``n`` seeds whose value is not NaN: ``mean = (1/n) sum_s v_s`` and
    ``sd = sqrt(sum_s (v_s - mean)^2 / (n - 1))`` (the sample sd; 0 when n = 1; mean and
    sd are NaN when n = 0).
    """
    keys = ["learner", "scenario", "metric"]
    columns = [*keys, "value", "seed"]
    table = pd.DataFrame(list(records), columns=columns)
    if table.empty:
        return []
    missing = table[columns].isna().drop(columns="value").any()
    if missing.any():
        raise ValueError(f"records lack key(s) {list(missing[missing].index)}")
    duplicated = table.duplicated(subset=[*keys, "seed"])
    if duplicated.any():
        first = table[duplicated].iloc[0]
        raise ValueError(f"seed {first['seed']!r} appears more than once for "
                         f"{dict(first[keys])}")
    table["value"] = table["value"].astype(np.float64)
    out: list[dict] = []
    for key, group in table.groupby(keys, sort=False):
        values = group["value"].dropna().to_numpy()
        n = len(values)
        mean = float(values.mean()) if n else float("nan")
        sd = float(values.std(ddof=1)) if n > 1 else (0.0 if n == 1 else float("nan"))
        out.append({**dict(zip(keys, key, strict=True)), "mean": mean, "sd": sd, "n_seeds": n})
    return out
