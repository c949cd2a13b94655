"""Seed ensembles on the MeLU benchmark: each predictor trained ``--members`` times on the
same split (different initial weights and batch order), its members' predictions averaged,
then scored like ``movielens_melu.py`` — single members beside the ensemble, so the gain
of averaging is measured for a learner and for a control alike, side by side.

    python benchmarks/seed_ensemble.py --config benchmarks/configs/ml1m_ridge_robust.toml \\
        --predictors ridge,foldin --members 3 --name seed_ensemble_ridge

``--predictors`` takes learner names, the controls ``finetune`` / ``foldin`` (which
train ``pretrain`` per member) and the refitted baselines (``biased-mf``, ALS seeded per
member). Writes ``benchmarks/results/NAME.json`` (rows ``NAME`` = the ensemble, ``NAME#m``
= member m) and prints MAE / whole-star MAE / nDCG@3.

``--blend A+B`` (repeatable; A and B among the predictors) also scores the convex blend
of two predictors (:mod:`metarec.evaluation.blend`), its weight chosen on the validation
users by ``learner.loss``: rows ``A+B`` (the blend of the two ensembles) and ``A#0+B#0``
(of the two single models), beside a ``validation`` scenario. A refitted baseline
(``biased-mf``, ``biases``, ``item-knn``) joins the blend only on items it was trained on.

``--save-predictions DIR`` writes every member's and ensemble's predictions, with the
query rows they score (the validation sets included), to ``DIR/NAME.seedS.npz``;
``blend_saved.py`` blends predictors of different runs from those files.
``--first-member K`` trains members K, K+1, ... instead of 0, 1, ...: more members for a
saved run, in a run of their own (blend the two with ``blend_saved.py``).
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
from _common import load_ml1m, scenario_table, write_json
from _predictions import save_seed, seed_file
from rich.console import Console
from rich.table import Table

from metarec.config import load_config
from metarec.data.splits import SCENARIOS
from metarec.evaluation.blend import blend, blend_weight, known_items
from metarec.evaluation.metrics import compute_metrics, rating_levels
from metarec.evaluation.protocol import aggregate_seeds, predictions_frame
from metarec.experiment import (
    ON_PRETRAIN,
    REFITTED,
    make_split,
    predictors_for,
    train_learner,
)
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
    parser.add_argument("--first-member", type=int, default=0, metavar="K")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--set", action="append", default=[], help="section.field=value")
    parser.add_argument("--blend", action="append", default=[],
                        help="A+B: also score the blend of predictors A and B")
    parser.add_argument("--name", default="seed_ensemble")
    parser.add_argument("--save-predictions", type=Path, default=None, metavar="DIR",
                        help="also write each seed's predictions to DIR/NAME.seedS.npz")
    args = parser.parse_args()
    if args.members < 1 or args.first_member < 0:
        raise SystemExit("--members must be at least 1 and --first-member at least 0")
    member_ids = range(args.first_member, args.first_member + args.members)

    console = Console()
    dataset = load_ml1m(args.data_dir)
    names = [x for x in args.predictors.split(",") if x]
    if "popularity" in names:  # its ranking is by count, which no average or blend keeps
        raise SystemExit("popularity ranks by rating count, not by a prediction that "
                         "members average or blends mix: evaluate it with "
                         "movielens_melu.py --baselines popularity")
    pairs = [tuple(spec.split("+")) for spec in args.blend]
    if any(len(p) != 2 or not set(p) <= set(names) for p in pairs):
        raise SystemExit(f"--blend takes A+B with A and B among --predictors {names}; "
                         f"got {args.blend}")
    seeds = [int(x) for x in args.seeds.split(",") if x]
    if not seeds:
        raise SystemExit("--seeds names no seed")
    config = load_config(args.config, ["data.dataset='movielens-1m'", *args.set])
    to_train = list(dict.fromkeys("pretrain" if n in ON_PRETRAIN else n for n in names
                                  if n not in REFITTED))

    records: list[dict] = []
    timings: dict[str, float] = {}
    weights: dict[str, float] = {}
    start = time.perf_counter()
    for seed in seeds:
        split = make_split(dataset, config, seed)
        train_ratings = split.train_ratings  # concatenated on each access: once per seed
        levels = rating_levels(train_ratings.rating)
        sets = {s: split.scenarios[s] for s in SCENARIOS if len(split.scenarios[s])}
        if pairs and not len(split.validation):
            raise SystemExit("--blend chooses its weight on validation users; the split "
                             "has none (split.validation_fraction)")
        if pairs or args.save_predictions:
            for scenario, tasks in (("validation", split.validation),
                                    ("validation_new_items", split.validation_new_items),
                                    ("validation_trained_new_items",
                                     split.validation_trained_new_items)):
                if len(tasks):
                    sets[scenario] = tasks
        predictions: dict[str, dict[str, list[np.ndarray]]] = {n: {s: [] for s in sets}
                                                               for n in names}
        for member in member_ids:
            trained = {}
            for name in to_train:
                console.log(f"seed {seed} member {member}: training {name}")
                tic = time.perf_counter()
                trained[name] = train_learner(name, dataset, split, config,
                                              member_seed(seed, member))
                timings[f"train/{name}/seed{seed}/member{member}"] = time.perf_counter() - tic
            predictors = predictors_for(trained, split, config, names, dataset,
                                        seed=member_seed(seed, member))
            for name, predict in predictors.items():
                for scenario, tasks in sets.items():
                    pred = predict(tasks)
                    predictions[name][scenario].append(pred)
                    records += scored(f"{name}#{member}", scenario, tasks, pred, seed, levels)
        ensembles = {n: {s: np.mean(predictions[n][s], axis=0) for s in sets} for n in names}
        for name in names:
            for scenario, tasks in sets.items():
                records += scored(name, scenario, tasks, ensembles[name][scenario], seed,
                                  levels)
        known = known_items(train_ratings.item, dataset.num_items)
        if args.save_predictions:
            saved = {f"{n}#{m}": {s: predictions[n][s][i] for s in sets}
                     for n in names for i, m in enumerate(member_ids)}
            saved.update(ensembles)
            path = save_seed(seed_file(args.save_predictions, args.name, seed), seed, sets,
                             known, levels, saved,
                             only_known=[n for n in saved if n.split("#")[0] in REFITTED],
                             trained_users=np.unique(split.train.users))
            console.log(f"seed {seed}: predictions saved to {path}")
        singles = {n: {s: predictions[n][s][0] for s in sets} for n in names}
        for first, second in pairs:
            for label, source in ((f"{first}+{second}", ensembles),
                                  (f"{first}#{member_ids[0]}+{second}#{member_ids[0]}",
                                   singles)):
                weight, rows = blended(label, source[first], source[second], sets,
                                       known if second in REFITTED else None,
                                       config.learner.loss, seed, levels)
                weights[f"{label}/seed{seed}"] = weight
                console.log(f"seed {seed}: {label}, weight {weight} on {first}")
                records += rows
        # written after every seed, so a crash loses at most the seed in progress
        done = seeds[:seeds.index(seed) + 1]
        aggregated = aggregate_seeds(records)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        path = write_json(args.name, "movielens-1m+melu", "melu-honest-warm", done,
                          aggregated, config=config.to_dict(), members=args.members,
                          first_member=args.first_member,
                          predictors=names, blends=args.blend, blend_weights=weights,
                          timings=timings, peak_rss_mb=peak_mb, per_seed=records)
        console.log(f"seeds {done} written to {path}")
    seconds = time.perf_counter() - start
    console.print(table_of(aggregated, names, member_ids, seeds, args.blend))
    console.print(f"total {seconds:.0f} s, peak RSS {peak_mb:.0f} MB")


def blended(label: str, first: dict[str, np.ndarray], second: dict[str, np.ndarray],
            sets: dict[str, TaskSet], known: np.ndarray | None, loss: str, seed: int,
            levels: np.ndarray | None) -> tuple[float, list[dict]]:
    """The weight chosen on ``sets["validation"]`` and the records of the blend of two
    predictors' per-scenario predictions; ``known`` (items) limits where ``second`` joins."""
    def applies(tasks: TaskSet) -> np.ndarray:
        return known[tasks.query.item] if known is not None else np.ones(len(tasks.query), bool)

    valid = sets["validation"]
    weight = blend_weight(first["validation"], second["validation"], valid.query.rating,
                          applies(valid), loss)
    records: list[dict] = []
    for scenario, tasks in sets.items():
        mixed = blend(first[scenario], second[scenario], weight, applies(tasks))
        records += scored(label, scenario, tasks, mixed, seed, levels)
    return weight, records


def scored(name: str, scenario: str, tasks: TaskSet, pred: np.ndarray, seed: int,
           levels: np.ndarray | None) -> list[dict]:
    """The MAE, whole-star MAE and nDCG@3 records of one prediction vector."""
    values = compute_metrics(predictions_frame(tasks, pred), ks=(3,), levels=levels)
    return [{"learner": name, "scenario": scenario, "metric": metric, "value": values[metric],
             "seed": seed} for metric in ("mae", "mae_rounded", "ndcg@3") if metric in values]


def table_of(aggregated: list[dict], names: list[str], members: range,
             seeds: list[int], blends: list[str]) -> Table:
    """Per predictor: the mean member, then the ensemble; per blend A+B the single models'
    blend, then the ensembles'; ``MAE / whole-star / nDCG@3``."""
    index = {(r["learner"], r["scenario"], r["metric"]): r["mean"] for r in aggregated}
    table = scenario_table(f"ML-1M, seed ensembles of {len(members)}, mean over seeds {seeds} "
                           "(MAE / whole-star MAE / nDCG@3)")

    def cell(rows: list[str], scenario: str) -> str:
        return " / ".join(f"{np.mean([index[(r, scenario, m)] for r in rows]):.4f}"
                          for m in ("mae", "mae_rounded", "ndcg@3"))

    for name in names:
        singles = [f"{name}#{m}" for m in members]
        table.add_row(f"{name} (mean of members)", *[cell(singles, s) for s in SCENARIOS])
        table.add_row(f"{name} (ensemble)", *[cell([name], s) for s in SCENARIOS])
    for spec in blends:
        first, second = spec.split("+")
        table.add_row(f"{first} + {second} (single models)",
                      *[cell([f"{first}#{members[0]}+{second}#{members[0]}"], s)
                        for s in SCENARIOS])
        table.add_row(f"{spec} (ensembles)", *[cell([spec], s) for s in SCENARIOS])
    return table


if __name__ == "__main__":
    main()
