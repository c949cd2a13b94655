"""Evaluation: metrics over (user, item, true, pred) arrays, per-scenario protocols and
baselines. Evaluation sees predictions, never a model."""

from metarec.evaluation.baselines import (
    Baseline,
    BiasedMFALS,
    Biases,
    GlobalMean,
    Popularity,
    tuned_mf,
)
from metarec.evaluation.item_knn import ItemKNN
from metarec.evaluation.metrics import (
    accuracy,
    compute_metrics,
    f1_at_k,
    hit_rate_at_k,
    mae,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    rmse,
)
from metarec.evaluation.protocol import aggregate_seeds, evaluate, predictions_frame

__all__ = [
    "Baseline",
    "BiasedMFALS",
    "Biases",
    "GlobalMean",
    "ItemKNN",
    "Popularity",
    "accuracy",
    "aggregate_seeds",
    "compute_metrics",
    "evaluate",
    "f1_at_k",
    "hit_rate_at_k",
    "mae",
    "ndcg_at_k",
    "precision_at_k",
    "predictions_frame",
    "recall_at_k",
    "rmse",
    "tuned_mf",
]
