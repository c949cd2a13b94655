"""Facts about ML-1M's cold-start scenarios that benchmarks/movielens1m.md rests on:

* how many new items and new users carry a side-feature code that no training item or
  user has (what ``split.unseen_codes_missing`` changes);
* the mean rating by film year (why a feature-only path trained on old films may
  extrapolate badly to the new ones);
* the mean of all ratings against that of the training ratings (what a model started
  from before models were built on the training ratings only), and how many ratings
  carry a timestamp (what a time-ordered stream can use).

    python benchmarks/cold_start_facts.py --config benchmarks/configs/ml1m_ridge_mae.toml

Prints both tables and writes ``benchmarks/results/cold_start_facts.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _common import load_ml1m, write_json
from rich.console import Console
from rich.table import Table

from metarec.config import load_config
from metarec.data.dataset import FeatureTable
from metarec.data.splits import split_dataset

YEAR_BINS = [(0, 1980), (1981, 1990), (1991, 1995), (1996, 1997), (1998, 3000)]


def unseen_codes(table: FeatureTable, seen_rows: np.ndarray, rows: np.ndarray,
                 side: str, scenario: str) -> list[dict]:
    """Per categorical / multi-valued field: the share of ``rows`` with at least one code
    that none of ``seen_rows`` has, and the share of their codes that are such codes."""
    out = []
    for spec in table.specs:
        if spec.kind == "numeric":
            continue
        values = table.values[spec.name].numpy()
        seen = set(np.unique(values[seen_rows]).tolist()) - {0}
        per_row = [set(np.atleast_1d(v).tolist()) - {0} for v in values[rows]]
        per_row = [codes for codes in per_row if codes]
        unseen = [len(codes - seen) for codes in per_row]
        total = sum(len(codes) for codes in per_row)
        out.append({"scenario": scenario, "side": side, "field": spec.name,
                    "entities": len(per_row),
                    "share_with_unseen_code": float(np.mean([u > 0 for u in unseen]))
                    if per_row else 0.0,
                    "share_of_codes_unseen": sum(unseen) / total if total else 0.0})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--config", type=Path, default=None, help="TOML run config (split)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="cold_start_facts", help="results/NAME.json")
    args = parser.parse_args()
    dataset = load_ml1m(args.data_dir)
    config = load_config(args.config, [f"split.seed={args.seed}"])
    split = split_dataset(dataset, config.split)
    train_items = np.unique(split.train_ratings.item)
    rows = []
    for scenario in ("new_items", "new_users_new_items"):
        items = np.unique(split.scenarios[scenario].query.item)
        rows += unseen_codes(dataset.items, train_items, items, "item", scenario)
    for scenario in ("new_users", "new_users_new_items"):
        rows += unseen_codes(dataset.users, split.train.users,
                             np.unique(split.scenarios[scenario].users), "user", scenario)

    ratings = dataset.interactions
    years = dataset.items.values["year"].numpy()[ratings.item]
    for low, high in YEAR_BINS:
        chosen = (years >= low) & (years <= high)
        rows.append({"metric": "mean_rating_by_year", "years": f"{low}-{high}",
                     "ratings": int(chosen.sum()),
                     "mean": float(ratings.rating[chosen].mean()) if chosen.any() else None})

    train = split.train_ratings
    for which, chosen in (("all", ratings), ("training", train)):
        rows.append({"metric": "mean_rating", "ratings": which, "count": len(chosen.rating),
                     "mean": float(chosen.rating.mean()),
                     "with_timestamp": int(np.isfinite(chosen.timestamp).sum())})

    console = Console()
    table = Table(title=f"codes no training entity has (seed {args.seed})")
    for column in ("scenario", "side", "field", "entities", "with an unseen code",
                   "codes unseen"):
        table.add_column(column)
    for r in rows:
        if "field" in r:
            table.add_row(r["scenario"], r["side"], r["field"], str(r["entities"]),
                          f"{r['share_with_unseen_code']:.2f}", f"{r['share_of_codes_unseen']:.2f}")
    console.print(table)
    years_table = Table(title="mean rating by film year (all ML-1M ratings)")
    for column in ("years", "ratings", "mean"):
        years_table.add_column(column)
    for r in rows:
        if r.get("metric") == "mean_rating_by_year":
            years_table.add_row(r["years"], str(r["ratings"]), f"{r['mean']:.3f}")
    console.print(years_table)
    means = Table(title=f"all ratings and the training ratings (seed {args.seed})")
    for column in ("ratings", "count", "mean", "with a timestamp"):
        means.add_column(column)
    for r in rows:
        if r.get("metric") == "mean_rating":
            means.add_row(r["ratings"], f"{r['count']:,}", f"{r['mean']:.4f}",
                          f"{r['with_timestamp']:,}")
    console.print(means)
    path = write_json(args.name, "movielens-1m+melu", config.split.protocol, [args.seed], rows,
                      config=config.to_dict()["split"])
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
