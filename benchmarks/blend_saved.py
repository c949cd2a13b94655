"""Blend predictors of different runs from their saved predictions, the weights chosen on
the validation users: on rows whose item training knows, on ``validation``; on rows whose
item is new, on ``validation_new_items`` (whether an item is new is known when predicting,
so each kind of row gets the blend its own validation set prefers). With
``--trained-users``, new-item rows of users training saw (whose user-id rows a model
trained) get weights of their own, chosen on ``validation_trained_new_items``; whether
training saw a user is known when predicting too. Nothing trains.

    python benchmarks/seed_ensemble.py ... --name RUN --save-predictions benchmarks/predictions
    python benchmarks/blend_saved.py --run plain=RUN --run other=RUN2 \\
        --blend plain:ridge,plain:biased-mf,other:finetune --name blend_saved

``--run ALIAS=NAME`` (repeatable) reads ``DIR/NAME.seedS.npz`` for every seed (``--from
DIR``, default ``benchmarks/predictions``); every run must score the same query rows.
``NAME+MORE`` reads a run and its extension (``seed_ensemble.py --first-member``) as one:
all members of both, each ensemble their mean.
``--blend`` (repeatable) lists ``ALIAS:PREDICTOR`` names. Each blend is scored twice: of
the ensembles (the predictor names as given; row ``spec``) and of the single models
(the first member of each, member 0 unless a run started later; row ``spec #0``),
beside each component alone. Convex weights in
steps of ``--step`` (``metarec.evaluation.blend.simplex_weights``). A predictor that knows
only training items (a refitted factorisation) joins only the blend of known-item rows.
Writes ``benchmarks/results/NAME.json`` with the weights of every seed.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from _common import scenario_table, write_json
from _predictions import SavedSeed, Scenario, load_seed, merged, seed_file
from rich.console import Console
from rich.table import Table

from metarec.data.splits import SCENARIOS
from metarec.evaluation.blend import mix, simplex_weights
from metarec.evaluation.metrics import compute_metrics
from metarec.evaluation.protocol import aggregate_seeds

PREDICTIONS = Path(__file__).resolve().parent / "predictions"
METRICS = ("mae", "mae_rounded", "ndcg@3")


def parse_runs(specs: list[str]) -> dict[str, str]:
    """``ALIAS=NAME`` specs as ``{alias: name}``."""
    runs: dict[str, str] = {}
    for spec in specs:
        alias, sep, name = spec.partition("=")
        if not sep or not alias or not name or ":" in alias:
            raise SystemExit(f"--run takes ALIAS=NAME (an alias without ':'), got {spec!r}")
        if alias in runs:
            raise SystemExit(f"--run names the alias {alias!r} twice")
        runs[alias] = name
    return runs


def parse_blend(spec: str, runs: dict[str, str]) -> list[tuple[str, str]]:
    """``ALIAS:PREDICTOR,...`` as ``[(alias, predictor), ...]``."""
    parts = [tuple(p.split(":", 1)) for p in spec.split(",") if p]
    if len(parts) < 2 or any(len(p) != 2 or p[0] not in runs for p in parts):
        raise SystemExit(f"--blend takes two or more ALIAS:PREDICTOR with ALIAS among "
                         f"{sorted(runs)}; got {spec!r}")
    return parts  # type: ignore[return-value]


def load_runs(directory: Path, runs: dict[str, str], seed: int) -> dict[str, SavedSeed]:
    """Every run's predictions on ``seed``, checked to score the same query rows."""
    loaded: dict[str, SavedSeed] = {}
    for alias, name in runs.items():
        parts = []
        for part in name.split("+"):
            try:
                parts.append(load_seed(seed_file(directory, part, seed)))
            except (FileNotFoundError, ValueError) as error:
                raise SystemExit(f"{error} (run {alias!r}: write it with seed_ensemble.py "
                                 f"--name {part} --save-predictions {directory})") from None
        try:
            loaded[alias] = merged(parts)
        except ValueError as error:
            raise SystemExit(f"{error} (run {alias!r})") from None
    first_alias, first = next(iter(loaded.items()))
    shared = [s for s in first.scenarios if all(s in x.scenarios for x in loaded.values())]
    for saved in loaded.values():
        for scenario in shared:
            if not first.scenarios[scenario].same_rows(saved.scenarios[scenario]):
                raise SystemExit(f"{saved.path}: its {scenario} query rows differ from those "
                                 f"of {first.path} (run {first_alias!r}); blend only runs "
                                 "of one split")
    # A scenario that some run did not save (e.g. a validation set newer than the run)
    # is left out of every run.
    return {alias: replace(saved, scenarios={s: saved.scenarios[s] for s in shared},
                           predictions={n: {s: p[s] for s in shared}
                                        for n, p in saved.predictions.items()})
            for alias, saved in loaded.items()}


def prediction(loaded: dict[str, SavedSeed], alias: str, name: str,
               scenario: str) -> np.ndarray:
    """One predictor's predictions, with a clear error when the run lacks it."""
    saved = loaded[alias]
    if name not in saved.predictions:
        raise SystemExit(f"{saved.path}: no predictor {name!r}; it has "
                         f"{sorted(saved.predictions)}")
    return saved.predictions[name][scenario]


GROUPS = {"known": "validation", "new": "validation_new_items",
          "new_trained": "validation_trained_new_items"}
"""Each kind of row and the validation set its weights are chosen on: known items; new
items (of users training never saw, with ``trained_users``); new items of users it saw."""


def row_groups(rows: Scenario, trained_users: bool) -> dict[str, np.ndarray]:
    """Which rows of a scenario each group of :data:`GROUPS` blends."""
    if not trained_users:
        return {"known": rows.known, "new": ~rows.known}
    if rows.trained is None:
        raise SystemExit("--trained-users needs runs saved with the rows' users' training "
                         "flags (seed_ensemble.py --save-predictions, since the third "
                         "validation set)")
    return {"known": rows.known, "new": ~rows.known & ~rows.trained,
            "new_trained": ~rows.known & rows.trained}


def gated_blend(loaded: dict[str, SavedSeed], parts: list[tuple[str, str]], step: float,
                loss: str, trained_users: bool = False
                ) -> tuple[dict[str, np.ndarray], dict[str, list[float]]]:
    """Per scenario, the blend of ``parts``: known-item rows mixed with the weights chosen
    on ``validation``, new-item rows with those chosen on ``validation_new_items`` among
    the parts that score new items; with ``trained_users``, new-item rows of users
    training saw with those chosen on ``validation_trained_new_items`` instead. Returns
    the predictions and the weights of each group (one per part; 0 for a part that does
    not join)."""
    any_run = next(iter(loaded.values()))
    weights: dict[str, list[float]] = {}
    for group, valid in GROUPS.items():
        if group == "new_trained" and not trained_users:
            continue
        known = group == "known"
        joins = [known or n not in loaded[a].only_known for a, n in parts]
        if not any(joins):
            raise SystemExit(f"no predictor of {parts} scores new items")
        if valid not in any_run.scenarios:
            raise SystemExit(f"{any_run.path}: no {valid} rows to choose weights on")
        rows = any_run.scenarios[valid]
        kind = rows.known == known
        if not kind.any():
            raise SystemExit(f"{any_run.path}: {valid} has no row to choose weights on")
        chosen = simplex_weights([prediction(loaded, a, n, valid)[kind]
                                  for (a, n), j in zip(parts, joins, strict=True) if j],
                                 rows.true[kind], loss, step)
        it = iter(chosen)
        weights[group] = [next(it) if j else 0.0 for j in joins]
    mixed: dict[str, np.ndarray] = {}
    for scenario, rows in any_run.scenarios.items():
        preds = [prediction(loaded, a, n, scenario) for a, n in parts]
        out = np.full(len(rows.true), np.nan)
        for group, selected in row_groups(rows, trained_users).items():
            out[selected] = mix(preds, weights[group])[selected]
        mixed[scenario] = out
    return mixed, weights


def scored(label: str, saved: SavedSeed, predictions: dict[str, np.ndarray]) -> list[dict]:
    """The MAE, whole-star MAE and nDCG@3 records of one predictor on every scenario."""
    records = []
    for scenario, rows in saved.scenarios.items():
        frame = pd.DataFrame({"user": rows.user, "item": rows.item, "true": rows.true,
                              "pred": predictions[scenario]})
        values = compute_metrics(frame, ks=(3,), levels=saved.levels)
        records += [{"learner": label, "scenario": scenario, "metric": m, "value": values[m],
                     "seed": saved.seed} for m in METRICS if m in values]
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="directory", type=Path, default=PREDICTIONS)
    parser.add_argument("--run", action="append", default=[], help="ALIAS=NAME")
    parser.add_argument("--blend", action="append", default=[],
                        help="ALIAS:PREDICTOR,ALIAS:PREDICTOR[,...]")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--step", type=float, default=0.05)
    parser.add_argument("--loss", choices=("mae", "mse"), default="mae")
    parser.add_argument("--trained-users", action="store_true",
                        help="new-item rows of users training saw: weights of their own")
    parser.add_argument("--name", default="blend_saved")
    args = parser.parse_args()
    runs = parse_runs(args.run)
    if not runs or not args.blend:
        raise SystemExit("name at least one --run and one --blend")
    blends = {spec: parse_blend(spec, runs) for spec in args.blend}
    seeds = [int(x) for x in args.seeds.split(",") if x]

    console = Console()
    records: list[dict] = []
    chosen: dict[str, dict[str, list[float]]] = {}
    components = list(dict.fromkeys(p for parts in blends.values() for p in parts))
    for seed in seeds:
        loaded = load_runs(args.directory, runs, seed)
        any_run = next(iter(loaded.values()))
        single = {(a, n): loaded[a].first_member(n) for a, n in components}
        for alias, name in components:
            for member in (name, single[(alias, name)]):
                records += scored(f"{alias}:{member}", any_run,
                                  {s: prediction(loaded, alias, member, s)
                                   for s in any_run.scenarios})
        for spec, parts in blends.items():
            for label, members in ((spec, parts),
                                   (f"{spec} #0", [(a, single[(a, n)]) for a, n in parts])):
                mixed, weights = gated_blend(loaded, members, args.step, args.loss,
                                             args.trained_users)
                chosen[f"{label}/seed{seed}"] = weights
                console.log(f"seed {seed}: {label}: {weights}")
                records += scored(label, any_run, mixed)
    aggregated = aggregate_seeds(records)
    path = write_json(args.name, "movielens-1m+melu", "melu-honest-warm", seeds, aggregated,
                      runs=runs, blends=args.blend, step=args.step, loss=args.loss,
                      trained_users=args.trained_users, weights=chosen, per_seed=records)
    console.print(table_of(aggregated, seeds))
    console.print(f"written to {path}")


def table_of(aggregated: list[dict], seeds: list[int]) -> Table:
    """One row per component and blend: ``MAE / whole-star MAE / nDCG@3`` per scenario."""
    index = {(r["learner"], r["scenario"], r["metric"]): r["mean"] for r in aggregated}
    table = scenario_table(f"ML-1M, saved predictions blended, mean over seeds {seeds} "
                           "(MAE / whole-star MAE / nDCG@3)")
    for label in dict.fromkeys(r["learner"] for r in aggregated):
        table.add_row(label, *[" / ".join(f"{index.get((label, s, m), np.nan):.4f}"
                                          for m in METRICS) for s in SCENARIOS])
    return table


if __name__ == "__main__":
    main()
