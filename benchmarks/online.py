"""Prequential benchmark: static model vs online SGD vs online meta-adaptation.

For each data set (MovieLens-100k from ``--data-dir``'s ``ml-100k/``, by default in
../shared/datasets beside the repository, unless ``--no-movielens``; and the generated
data set), events are taken in time order. A MAML-R learner is meta-trained on tasks built
from the first ``--warmup`` fraction of the stream only; the rest is streamed
prequentially (each block of events is predicted before it is learned from). Writes
benchmarks/results/online.json and online.png (error over time).

    python benchmarks/online.py --epochs 5 --block-size 20

Every mode runs again with per-item offsets learned from the stream
(``--item-shrinkage``, default 5; ``--no-item-offsets`` leaves them out).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import RESULTS, SHARED  # noqa: E402

from metarec.data.dataset import Dataset  # noqa: E402
from metarec.data.registry import load_dataset  # noqa: E402
from metarec.data.synthetic import SyntheticConfig, generate  # noqa: E402
from metarec.evaluation.prequential import (  # noqa: E402
    PrequentialConfig,
    run_prequential,
    time_order,
)
from metarec.evaluation.report import results_document  # noqa: E402
from metarec.learners.config import LearnerConfig  # noqa: E402
from metarec.learners.online import OnlineConfig, OnlineRecommender  # noqa: E402
from metarec.learners.registry import learner_class  # noqa: E402
from metarec.models import FeatureMLP  # noqa: E402
from metarec.tasks.taskset import TaskSet  # noqa: E402


def warmup_tasks(events, query_size: int = 5, min_events: int = 8,
                 support_cap: int = 50) -> TaskSet:
    """Meta-training tasks from the warm-up events: each user's latest ``query_size``
    events are the query, the ``support_cap`` before them the support (as online)."""
    frame = events.to_frame().reset_index(drop=True)
    rank_from_end = frame.groupby("user").cumcount(ascending=False).to_numpy()
    counts = frame.groupby("user")["user"].transform("size").to_numpy()
    keep = counts >= min_events
    query = keep & (rank_from_end < query_size)
    support = keep & ~query & (rank_from_end < query_size + support_cap)
    return TaskSet.from_rows(events.subset(support), events.subset(query))


def run_dataset(dataset: Dataset, args: argparse.Namespace) -> list[dict]:
    events = time_order(dataset.interactions)
    if args.max_events:
        events = events.subset(np.arange(min(args.max_events, len(events))))
    start = int(args.warmup * len(events))
    warmup = events.subset(np.arange(start))
    train = warmup_tasks(warmup)
    torch.manual_seed(args.seed)
    # Built on the warm-up ratings only: its starting mean never sees a scored rating.
    model = FeatureMLP.for_dataset(replace(dataset, interactions=warmup), embedding_dim=16,
                                   hidden=(32, 32))
    learner = learner_class("maml-r")(model, LearnerConfig(
        epochs=args.epochs, inner_steps=3, inner_lr=0.05, patience=None, seed=args.seed))
    began = time.perf_counter()
    learner.fit(train, dataset)
    train_seconds = time.perf_counter() - began
    config = PrequentialConfig(block_size=args.block_size, start=start, window=args.window)
    modes = {
        "static": OnlineConfig(mode="static"),
        "online-sgd": OnlineConfig(mode="sgd", sgd_lr=args.sgd_lr),
        "meta-adapt": OnlineConfig(mode="meta", update_every=0),
        "meta-adapt+updates": OnlineConfig(mode="meta", update_every=args.update_every,
                                           update_tasks=32, replay_tasks=32),
    }
    if args.item_shrinkage is not None:  # the same modes, each with item offsets
        modes.update({f"{name}+item-offsets": replace(online,
                                                      item_shrinkage=args.item_shrinkage)
                      for name, online in list(modes.items())})
    records = []
    for name, online in modes.items():
        recommender = OnlineRecommender(copy.deepcopy(learner), dataset, online)
        result = run_prequential(recommender, events, config)
        summary = result.summary()
        records.append({"dataset": dataset.name, "mode": name, **summary,
                        "train_tasks": len(train), "train_seconds": train_seconds,
                        "warmup_events": start, "block_size": args.block_size,
                        "meta_updates": recommender.meta_updates,
                        "adaptations": recommender.adaptations,
                        "curve": result.curve(args.window).to_dict("records")})
        print(f"{dataset.name:>10} {name:>20} events={summary['events']:>6} "
              f"MAE={summary['mae']:.4f} RMSE={summary['rmse']:.4f} "
              f"nDCG@10={summary['ndcg@10']:.4f} {summary['events_per_s']:.0f} ev/s",
              flush=True)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=0.5,
                        help="fraction of the stream used for meta-training (not scored)")
    parser.add_argument("--block-size", type=int, default=20)
    parser.add_argument("--window", type=int, default=2000)
    parser.add_argument("--update-every", type=int, default=1000)
    parser.add_argument("--sgd-lr", type=float, default=0.01)
    parser.add_argument("--max-events", type=int, default=None)
    parser.add_argument("--synthetic-ratings", type=int, default=60_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--item-shrinkage", type=float, default=5.0,
                        help="also run every mode with item offsets shrunk by this many "
                        "pseudo-events (OnlineConfig.item_shrinkage; a fixed choice, not "
                        "tuned on the stream)")
    parser.add_argument("--no-item-offsets", dest="item_shrinkage", action="store_const",
                        const=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--data-dir", type=Path, default=SHARED,
                        help="the folder holding ml-100k/")
    parser.add_argument("--no-movielens", dest="movielens", action="store_false",
                        help="the generated data set only")
    args = parser.parse_args()
    if args.movielens and not (args.data_dir / "ml-100k" / "u.data").is_file():
        parser.error(f"{args.data_dir}: no ml-100k/u.data (pass --data-dir, or "
                     "--no-movielens)")
    torch.set_num_threads(2)
    datasets = []
    if args.movielens:
        datasets.append(load_dataset(args.data_dir / "ml-100k"))
    datasets.append(generate(SyntheticConfig(num_users=1000, num_items=800,
                                             num_ratings=args.synthetic_ratings)))
    records = [r for d in datasets for r in run_dataset(d, args)]
    args.out.mkdir(parents=True, exist_ok=True)
    document = results_document(",".join(d.name for d in datasets), "prequential",
                                [args.seed], records)
    document["settings"] = {k: str(v) if isinstance(v, Path) else v
                            for k, v in vars(args).items() if k != "out"}
    (args.out / "online.json").write_text(json.dumps(document, indent=2, default=float))
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for record in (r for r in records if r["dataset"] == dataset.name):
            curve = record["curve"]
            ax.plot([c["end"] for c in curve], [c["mae"] for c in curve], label=record["mode"])
        ax.set_title(f"{dataset.name}: prequential MAE per {args.window} events")
        ax.set_xlabel("stream position")
        ax.set_ylabel("MAE")
        ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "online.png", dpi=110)
    print(f"wrote {args.out / 'online.json'} and online.png")


if __name__ == "__main__":
    main()
