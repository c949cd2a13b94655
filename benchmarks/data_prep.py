"""Data preparation on MovieLens-1M: read, split, build every task batch.

Stages, timed one after the other in one process:

* ``load``: :func:`~metarec.data.readers.ml1m.read_ml1m` on ``--data-dir`` (with MeLU's
  ``movies_extrainfos.dat`` when ``--extras`` is given or the folder has it);
* ``split``: :func:`~metarec.data.splits.split_dataset` (MeLU protocol by default);
* ``pad``: :func:`~metarec.tasks.batch.pad_tasks` over every task of the four scenarios,
  the meta-training and the validation tasks, in meta-batches of ``--meta-batch-size``.

Prints seconds and peak resident memory (``ru_maxrss``, never decreasing) after each
stage, and writes ``benchmarks/results/data_prep.json``. Targets: < 30 s and < 1.5 GB.

    python benchmarks/data_prep.py --data-dir ../shared/datasets/ml-1m
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

from metarec.data.readers.ml1m import read_ml1m
from metarec.data.splits import SplitConfig, split_dataset
from metarec.data.synthetic import generate
from metarec.evaluation.report import results_document
from metarec.tasks.batch import TaskBatcher, pad_tasks

RESULTS = Path(__file__).resolve().parent / "results" / "data_prep.json"
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "ml-1m"
TARGET_SECONDS, TARGET_MB = 30.0, 1536.0


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA,
                        help="MovieLens-1M folder (ratings.dat, users.dat, movies.dat)")
    parser.add_argument("--extras", type=Path, default=None,
                        help="MeLU's movies_extrainfos.dat (optional)")
    parser.add_argument("--protocol", choices=("melu", "time"), default="melu")
    parser.add_argument("--meta-batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)
    if not (args.data_dir / "ratings.dat").is_file():
        parser.error(f"{args.data_dir}: no ratings.dat (pass --data-dir)")

    results: list[dict] = []
    start = time.perf_counter()

    def record(stage: str, began: float, **extra: object) -> None:
        now = time.perf_counter()
        results.append({"stage": stage, "seconds": round(now - began, 3),
                        "cumulative_seconds": round(now - start, 3),
                        "peak_rss_mb": round(peak_rss_mb(), 1), **extra})

    began = time.perf_counter()
    dataset = read_ml1m(args.data_dir, extras=args.extras)
    record("load", began, ratings=len(dataset.interactions), users=dataset.num_users,
           items=dataset.num_items)

    began = time.perf_counter()
    split = split_dataset(dataset, SplitConfig(protocol=args.protocol, seed=args.seed))
    record("split", began, tasks=sum(len(t) for t in split.scenarios.values()))

    began = time.perf_counter()
    task_sets = {**split.scenarios, "train": split.train, "validation": split.validation}
    batches = tasks = padded_rows = 0
    for task_set in task_sets.values():
        for first in range(0, len(task_set), args.meta_batch_size):
            index = np.arange(first, min(first + args.meta_batch_size, len(task_set)))
            batch = pad_tasks(task_set, index, dataset.users, dataset.items)
            batches += 1
            tasks += len(batch)
            padded_rows += batch.support_mask.numel() + batch.query_mask.numel()
    record("pad", began, batches=batches, tasks=tasks, padded_rows=padded_rows)

    total = time.perf_counter() - start
    results.append({"stage": "total", "seconds": round(total, 3),
                    "cumulative_seconds": round(total, 3),
                    "peak_rss_mb": round(peak_rss_mb(), 1),
                    "target_seconds": TARGET_SECONDS, "target_peak_rss_mb": TARGET_MB,
                    "meets_targets": total < TARGET_SECONDS and peak_rss_mb() < TARGET_MB})

    print(f"{'stage':<8} {'seconds':>8} {'cumulative':>11} {'peak RSS MiB':>13}")
    for row in results:
        print(f"{row['stage']:<8} {row['seconds']:>8.2f} {row['cumulative_seconds']:>11.2f} "
              f"{row['peak_rss_mb']:>13.1f}")
    print(f"targets: < {TARGET_SECONDS:.0f} s, < {TARGET_MB:.0f} MiB -> "
          f"{'met' if results[-1]['meets_targets'] else 'NOT met'}")

    # Outside the timed pipeline: padding of the meta-training batches with and without
    # size-bucketed pools, and the time to generate the built-in data set.
    padding = {}
    for bucket in (1, 8):
        batcher = TaskBatcher(split.train, dataset.users, dataset.items, args.meta_batch_size,
                              seed=args.seed, bucket=bucket)
        cells = sum(len(b) * int(split.train.support_sizes[b].max())
                    for b in batcher.batches(0))
        padding[f"bucket={bucket}"] = round(cells / int(split.train.support_sizes.sum()), 3)
    began = time.perf_counter()
    generate()
    synthetic_seconds = round(time.perf_counter() - began, 3)
    print(f"padded / real support rows of meta-training batches: {padding}")
    print(f"generating the built-in synthetic data set: {synthetic_seconds:.2f} s")

    document = results_document("ml-1m", args.protocol, [args.seed], results,
                                padding_ratio=padding, synthetic_generate_seconds=synthetic_seconds,
                                meta_batch_size=args.meta_batch_size,
                                extras=None if args.extras is None else args.extras.name)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return document


if __name__ == "__main__":
    main()
