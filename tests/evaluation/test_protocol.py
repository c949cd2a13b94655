"""Protocol: prediction frames, per-scenario records and aggregation over seeds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from metarec.data.dataset import Interactions
from metarec.evaluation.metrics import compute_metrics
from metarec.evaluation.protocol import aggregate_seeds, evaluate, predictions_frame
from metarec.tasks.taskset import TaskSet


def rows(triples) -> Interactions:
    array = np.array(triples, dtype=np.float64).reshape(-1, 3)
    return Interactions(user=array[:, 0].astype(np.int64), item=array[:, 1].astype(np.int64),
                        rating=array[:, 2].astype(np.float32),
                        timestamp=np.full(len(array), np.nan))


TASKS = TaskSet.from_rows(rows([(5, 0, 4), (2, 1, 3)]),
                          rows([(5, 3, 5), (2, 4, 1), (5, 6, 2)]))


def test_predictions_frame_aligns_with_query_rows():
    pred = np.arange(len(TASKS.query), dtype=np.float64)
    frame = predictions_frame(TASKS, pred)
    assert list(frame.columns) == ["user", "item", "true", "pred"]
    # tasks are ordered by user: user 2's query row first, then user 5's two rows
    assert frame["user"].tolist() == [2, 5, 5]
    assert frame["item"].tolist() == [4, 3, 6]
    assert frame["true"].tolist() == [1.0, 5.0, 2.0]
    assert frame["pred"].tolist() == [0.0, 1.0, 2.0]


def test_predictions_frame_rejects_wrong_length():
    with pytest.raises(ValueError, match="2 predictions for 3 query rows"):
        predictions_frame(TASKS, np.zeros(2))


def test_evaluate_records_per_scenario():
    good = predictions_frame(TASKS, TASKS.query.rating)
    bad = predictions_frame(TASKS, np.array([5.0, 1.0, 3.0]))
    records = evaluate({"warm": good, "user_cold": bad}, ks=(1, 3))
    metrics = list(compute_metrics(good, ks=(1, 3)))
    assert len(records) == 2 * len(metrics) == 2 * (3 + 6 * 2)
    assert [r["scenario"] for r in records] == ["warm"] * len(metrics) + ["user_cold"] * len(
        metrics)
    assert [r["metric"] for r in records[: len(metrics)]] == metrics
    values = {(r["scenario"], r["metric"]): r["value"] for r in records}
    assert values[("warm", "mae")] == 0.0
    assert values[("user_cold", "mae")] == pytest.approx((4 + 4 + 1) / 3)
    assert values[("warm", "ndcg@3")] == pytest.approx(1.0)
    assert set(records[0]) == {"scenario", "metric", "value"}


def test_evaluate_threshold_is_passed_on():
    frame = pd.DataFrame({"user": [0, 0], "item": [0, 1], "true": [3.0, 1.0],
                          "pred": [3.0, 1.0]})
    at_4 = {r["metric"]: r["value"] for r in evaluate({"s": frame}, ks=(1,))}
    at_3 = {r["metric"]: r["value"] for r in evaluate({"s": frame}, ks=(1,), threshold=3.0)}
    assert math.isnan(at_4["recall@1"])
    assert at_3["recall@1"] == 1.0


def test_aggregate_seeds_mean_and_sample_sd():
    records = [
        {"learner": "maml", "scenario": "warm", "metric": "mae", "value": v, "seed": s}
        for s, v in enumerate([1.0, 2.0, 3.0])
    ] + [
        {"learner": "biases", "scenario": "warm", "metric": "mae", "value": 0.9, "seed": 0},
        {"learner": "maml", "scenario": "cold", "metric": "mae", "value": 0.5, "seed": 0},
        {"learner": "maml", "scenario": "cold", "metric": "mae", "value": 0.7, "seed": 1},
    ]
    out = aggregate_seeds(records)
    assert [(r["learner"], r["scenario"]) for r in out] == [
        ("maml", "warm"), ("biases", "warm"), ("maml", "cold")]
    assert out[0] == {"learner": "maml", "scenario": "warm", "metric": "mae", "mean": 2.0,
                      "sd": 1.0, "n_seeds": 3}
    assert out[1]["mean"] == 0.9 and out[1]["sd"] == 0.0 and out[1]["n_seeds"] == 1
    assert out[2]["mean"] == pytest.approx(0.6)
    assert out[2]["sd"] == pytest.approx(math.sqrt(((0.1) ** 2 * 2) / 1))


def test_aggregate_seeds_skips_nan_values():
    records = [
        {"learner": "a", "scenario": "s", "metric": "recall@5", "value": float("nan"), "seed": 0},
        {"learner": "a", "scenario": "s", "metric": "recall@5", "value": 0.4, "seed": 1},
        {"learner": "a", "scenario": "s", "metric": "hit@5", "value": float("nan"), "seed": 0},
    ]
    recall, hit = aggregate_seeds(records)
    assert (recall["mean"], recall["sd"], recall["n_seeds"]) == (0.4, 0.0, 1)
    assert math.isnan(hit["mean"]) and math.isnan(hit["sd"]) and hit["n_seeds"] == 0


def test_aggregate_seeds_rejects_repeated_seed_and_missing_keys():
    record = {"learner": "a", "scenario": "s", "metric": "mae", "value": 1.0, "seed": 0}
    with pytest.raises(ValueError, match="more than once"):
        aggregate_seeds([record, record])
    with pytest.raises(ValueError, match="seed"):
        aggregate_seeds([{k: v for k, v in record.items() if k != "seed"}])
    assert aggregate_seeds([]) == []
