"""Seed ensembles on the MeLU benchmark: each predictor trained ``--members`` times on the
same split (different initial weights and batch order), its members' predictions averaged,
then scored like ``movielens_melu.py`` — single members beside the ensemble, so the gain
of averaging is measured for a learner and for a control alike, side by side.

    python benchmarks/seed_ensemble.py --config benchmarks/configs/ml1m_ridge_robust.toml \\
        --predictors ridge,foldin --members 3 --name seed_ensemble_ridge

``--predictors`` takes learner names and the controls ``finetune`` / ``foldin`` (which
train ``pretrain`` per member). Writes ``benchmarks/results/NAME.json`` (rows
``NAME`` = the ensemble, ``NAME#m`` = member m) and prints MAE / whole-star MAE / nDCG@3.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
from _common import load_ml1m, write_json
from rich.console import Console
from rich.table import Table

from metarec.config import load_config
from metarec.data.splits import SCENARIOS
from metarec.evaluation.metrics import compute_metrics, rating_levels
from metarec.evaluation.protocol import aggregate_seeds, predictions_frame
from metarec.experiment import ON_PRETRAIN, make_split, predictors_for, train_learner
from metarec.tasks.taskset import TaskSet


def member_seed(seed: int, member: int) -> int:
    """The training seed of ensemble member ``member`` on the split of ``seed`` (member 0
    trains exactly as ``movielens_melu.py`` does)."""
    return seed + 1000 * member


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--config", type=Path, default=None, help="TOML run config")
    parser.add_argument("--predictors", default="ridge")
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--set", action="append", default=[], help="section.field=value")
    parser.add_argument("--name", default="seed_ensemble")
    args = parser.parse_args()
    if args.members < 2:
        raise SystemExit("--members must be at least 2")

    console = Console()
    dataset = load_ml1m(args.data_dir)
    if dataset is None:
        raise SystemExit("ML-1M not found: pass --data-dir with ml-1m/ and melu-ml1m/")
    names = [x for x in args.predictors.split(",") if x]
    seeds = [int(x) for x in args.seeds.split(",")]
    config = load_config(args.config, ["data.dataset='movielens-1m'", *args.set])
    to_train = list(dict.fromkeys("pretrain" if n in ON_PRETRAIN else n for n in names))

    records: list[dict] = []
    timings: dict[str, float] = {}
    start = time.perf_counter()
    for seed in seeds:
        split = make_split(dataset, config, seed)
        levels = rating_levels(split.train_ratings.rating)
        sets = {s: split.scenarios[s] for s in SCENARIOS if len(split.scenarios[s])}
        predictions: dict[str, dict[str, list[np.ndarray]]] = {n: {s: [] for s in sets}
                                                               for n in names}
        for member in range(args.members):
            trained = {}
            for name in to_train:
                console.log(f"seed {seed} member {member}: training {name}")
                tic = time.perf_counter()
                trained[name] = train_learner(name, dataset, split, config,
                                              member_seed(seed, member))
                timings[f"train/{name}/seed{seed}/member{member}"] = time.perf_counter() - tic
            predictors = predictors_for(trained, split, config, names, dataset)
            for name, predict in predictors.items():
                for scenario, tasks in sets.items():
                    pred = predict(tasks)
                    predictions[name][scenario].append(pred)
                    records += scored(f"{name}#{member}", scenario, tasks, pred, seed, levels)
        for name in names:
            for scenario, tasks in sets.items():
                mean = np.mean(predictions[name][scenario], axis=0)
                records += scored(name, scenario, tasks, mean, seed, levels)
    aggregated = aggregate_seeds(records)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    console.print(table_of(aggregated, names, args.members, seeds))
    console.print(f"total {seconds:.0f} s, peak RSS {peak_mb:.0f} MB")
    path = write_json(args.name, "movielens-1m+melu", "melu-honest-warm", seeds, aggregated,
                      config=config.to_dict(), members=args.members, predictors=names,
                      timings=timings, peak_rss_mb=peak_mb, per_seed=records)
    console.print(f"wrote {path}")


def scored(name: str, scenario: str, tasks: TaskSet, pred: np.ndarray, seed: int,
           levels: np.ndarray | None) -> list[dict]:
    """The MAE, whole-star MAE and nDCG@3 records of one prediction vector."""
    values = compute_metrics(predictions_frame(tasks, pred), ks=(3,), levels=levels)
    return [{"learner": name, "scenario": scenario, "metric": metric, "value": values[metric],
             "seed": seed} for metric in ("mae", "mae_rounded", "ndcg@3") if metric in values]


def table_of(aggregated: list[dict], names: list[str], members: int,
             seeds: list[int]) -> Table:
    """Per predictor: the mean member, then the ensemble; ``MAE / whole-star / nDCG@3``."""
    index = {(r["learner"], r["scenario"], r["metric"]): r["mean"] for r in aggregated}
    table = Table(title=f"ML-1M, seed ensembles of {members}, mean over seeds {seeds} "
                        "(MAE / whole-star MAE / nDCG@3)")
    table.add_column("predictor")
    for scenario in SCENARIOS:
        table.add_column(scenario, justify="right")

    def cell(rows: list[str], scenario: str) -> str:
        return " / ".join(f"{np.mean([index[(r, scenario, m)] for r in rows]):.4f}"
                          for m in ("mae", "mae_rounded", "ndcg@3"))

    for name in names:
        singles = [f"{name}#{m}" for m in range(members)]
        table.add_row(f"{name} (mean of members)", *[cell(singles, s) for s in SCENARIOS])
        table.add_row(f"{name} (ensemble)", *[cell([name], s) for s in SCENARIOS])
    return table


if __name__ == "__main__":
    main()
