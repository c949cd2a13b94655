"""Users per cold-start scenario under the ``time`` split protocol, two new-item cutoffs
side by side: the ``new_item_quantile`` of the items' first-rating times (the rule since
2026-12-05, :func:`metarec.data.splits.new_item_mask`) against the same quantile of all
rating times (the rule before it, re-stated here), for the three MovieLens data sets in
``--data-dir`` (``ml-100k/``, ``ml-latest-small/``, ``ml-1m/``; by default
``../shared/datasets`` beside the repository), seed 0, default ``SplitConfig`` otherwise.

    python benchmarks/time_split_sizes.py [--data-dir DIR]

Prints the table and writes ``benchmarks/results/time_split_sizes.json``; a data set
missing from ``--data-dir`` stops it before anything is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from unittest import mock

import numpy as np
from _common import SHARED, write_json
from rich.console import Console
from rich.table import Table

from metarec.data import splits
from metarec.data.dataset import Dataset
from metarec.data.registry import load_dataset
from metarec.data.splits import SCENARIOS, SplitConfig, split_dataset

DATASETS = {"movielens-100k": "ml-100k", "movielens-latest-small": "ml-latest-small",
            "movielens-1m": "ml-1m"}


def all_ratings_cutoff(dataset: Dataset, config: SplitConfig) -> np.ndarray:
    """The rule before 2026-12-05: new if first rated after the quantile of *all*
    rating times."""
    inter = dataset.interactions
    cutoff = np.nanquantile(inter.timestamp, config.new_item_quantile)
    first = np.full(dataset.num_items, np.inf)
    np.minimum.at(first, inter.item, np.nan_to_num(inter.timestamp, nan=np.inf))
    return first > cutoff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=SHARED)
    args = parser.parse_args()
    missing = [folder for folder in DATASETS.values() if not (args.data_dir / folder).is_dir()]
    if missing:
        parser.error(f"{args.data_dir}: no {', '.join(f'{m}/' for m in missing)} "
                     "(pass --data-dir)")
    config = SplitConfig(protocol="time", seed=args.seed)
    table = Table(title=f"Users per scenario, time protocol, seed {args.seed}")
    for column in ("data set", "cutoff", "new items", *SCENARIOS):
        table.add_column(column, justify="left" if column in ("data set", "cutoff")
                         else "right")
    results = []
    for name, folder in DATASETS.items():
        dataset = load_dataset(name, data_dir=args.data_dir / folder)
        for rule in ("first ratings", "all ratings"):
            if rule == "first ratings":
                split = split_dataset(dataset, config)
            else:
                with mock.patch.object(splits, "new_item_mask", all_ratings_cutoff):
                    split = split_dataset(dataset, config)
            users = {s: len(split.scenarios[s]) for s in SCENARIOS}
            table.add_row(name, rule, str(len(split.new_items)),
                          *(str(users[s]) for s in SCENARIOS))
            results += [{"dataset": name, "cutoff": rule, "scenario": s, "metric": "users",
                         "mean": users[s], "sd": 0.0, "n_seeds": 1} for s in SCENARIOS]
            results.append({"dataset": name, "cutoff": rule, "scenario": "all",
                            "metric": "new_items", "mean": len(split.new_items), "sd": 0.0,
                            "n_seeds": 1})
    Console(width=120).print(table)
    path = write_json("time_split_sizes", ",".join(DATASETS), "time", [args.seed], results)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
