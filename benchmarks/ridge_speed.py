"""Two speed-ups of ``ridge``, each against the way before it, side by side in one run:
its design matrix written out by the model (``Forward.linearised``, one forward pass)
against forward-mode AD (``torch.func.jacfwd``, what any other head falls back to); and,
in a service, every item scored from cached item vectors (``FactorHead.score_items``)
against the head run over every item.

    python benchmarks/ridge_speed.py                 # ML-1M + MeLU features (--data-dir)
    python benchmarks/ridge_speed.py --dataset synthetic

The model is the ML-1M benchmark's ``FeatureMF`` (``ml1m_ridge_neighbours.toml``: 32
factors, item tower 64, zip and actors left out; untrained, which does not change the
time). Writes ``benchmarks/results/ridge_speed.json`` (``ridge_speed_synthetic.json``
on the generated set).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from _common import speed_dataset, write_json
from rich.console import Console
from rich.table import Table

from metarec.data.dataset import Dataset, Interactions
from metarec.data.splits import SplitConfig, split_dataset
from metarec.learners import LearnerConfig, Ridge
from metarec.learners.inner_loop import Forward
from metarec.learners.online import OnlineRecommender
from metarec.models import FeatureMF
from metarec.tasks.batch import TaskBatcher, pad_tasks


@contextmanager
def switched(design: str = "written", item_vectors: str = "cached") -> Iterator[None]:
    """Inside, ``ridge`` builds its design matrix the way ``design`` names
    (``"written"``, the library's, or ``"jacfwd"``) and a recommender scores every item
    the way ``item_vectors`` names (``"cached"``, the library's, or ``"per item"``: the
    head's forward over every item)."""
    linearised, every_item = Forward.linearised, OnlineRecommender._score_every_item
    if design == "jacfwd":
        Forward.linearised = lambda *args: None  # type: ignore[method-assign]
    if item_vectors == "per item":
        OnlineRecommender._score_every_item = lambda *args: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        Forward.linearised = linearised  # type: ignore[method-assign]
        OnlineRecommender._score_every_item = every_item  # type: ignore[method-assign]


def samples_ms(run: Callable[[], object], repeats: int) -> list[float]:
    """Milliseconds of each of ``repeats`` calls of ``run`` after two warm-up calls."""
    run(), run()
    out = []
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        out.append(1e3 * (time.perf_counter() - began))
    return out


def ridge(dataset: Dataset, adapt_loss: str, neighbours: int = 0) -> Ridge:
    torch.manual_seed(0)
    model = FeatureMF.for_dataset(dataset, hidden=(64,), factors=32,
                                  exclude_fields=["zip", "actors"])
    return Ridge(model, LearnerConfig(adapt_loss=adapt_loss, neighbours=neighbours))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["ml1m", "synthetic"], default="ml1m")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--meta-batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=10, help="meta-batches timed")
    parser.add_argument("--repeats", type=int, default=300, help="one-user timings")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", default=None,
                        help="results/NAME.json (default ridge_speed, or ridge_speed_synthetic "
                        "on the generated set)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    name, dataset = speed_dataset(args.dataset, args.data_dir)
    split = split_dataset(dataset, SplitConfig(seed=0))
    batcher = TaskBatcher(split.train, dataset.users, dataset.items, args.meta_batch, seed=0)
    batches = [pad_tasks(split.train, i, dataset.users, dataset.items)
               for i in list(batcher.batch_indices())[:args.batches]]
    new_users = split.scenarios["new_users"]
    one = new_users.select(np.flatnonzero(new_users.support_sizes >= 20)[:1]).cap_support(20, 0)
    one_batch = pad_tasks(one, np.array([0]), dataset.users, dataset.items)

    comparisons: list[tuple[str, str, float, float]] = []  # what, unit, new, old
    for adapt_loss in ("mse", "mae"):
        learner = ridge(dataset, adapt_loss)
        learner.features_ = dataset
        solve = "plain" if adapt_loss == "mse" else "robust"
        times = {}
        for design in ("written", "jacfwd"):
            with switched(design=design):
                per_batch = samples_ms(lambda r=learner: [r.meta_gradients(b) for b in batches],
                                       1)[0] / len(batches)
                adapt = samples_ms(lambda r=learner: r.adapt(one_batch), args.repeats)
            times[design] = (args.meta_batch / (per_batch / 1e3), statistics.median(adapt))
        comparisons.append((f"meta-training, {solve} solve: design written vs jacfwd",
                            "tasks/s", times["written"][0], times["jacfwd"][0]))
        comparisons.append((f"one user's adaptation (20 ratings), {solve} solve: design "
                            "written vs jacfwd", "ms p50", times["written"][1],
                            times["jacfwd"][1]))

    # A service's path: a new user's 5 events, then adaptation + top-10 over every item
    # (OnlineRecommender, as `metarec serve` runs it; the robust solve, no term).
    learner = ridge(dataset, "mae")
    learner.features_ = dataset
    online = OnlineRecommender(learner, dataset)
    rng = np.random.default_rng(0)
    counter = iter(range(10**9))

    def new_user() -> None:
        user = next(counter) % dataset.num_users
        online.users.pop(user, None)  # a user with no events, adapted afresh
        online.forget_adaptation(user)
        items = rng.choice(dataset.num_items, 5, replace=False)
        online.learn(Interactions(np.full(5, user), items,
                                  rng.integers(1, 6, 5).astype(np.float32), np.zeros(5)))
        online.recommend(user, 10)

    served = {}
    for ways in (("written", "cached"), ("written", "per item"), ("jacfwd", "per item")):
        with switched(*ways):
            served[ways] = statistics.median(samples_ms(new_user, args.repeats))
    what = f"a service's new user: 5 events, adaptation + top-10 of {dataset.num_items} items"
    comparisons.append((f"{what}: item vectors cached vs the head per item", "ms p50",
                        served["written", "cached"], served["written", "per item"]))
    comparisons.append((f"{what}: both speed-ups vs neither", "ms p50",
                        served["written", "cached"], served["jacfwd", "per item"]))

    table = Table(title=f"ridge on {name}: each speed-up against the way before it "
                        f"({torch.get_num_threads()} thread(s))")
    for column in ("comparison", "unit", "new", "old", "speed-up"):
        table.add_column(column, justify="left" if column == "comparison" else "right")
    rows = []
    for what, unit, new, old in comparisons:
        speedup = new / old if unit == "tasks/s" else old / new
        table.add_row(what, unit, f"{new:.2f}", f"{old:.2f}", f"{speedup:.2f}x")
        rows.append({"learner": "ridge", "metric": what, "unit": unit, "new": new,
                     "old": old, "speedup": speedup})
    Console(width=140).print(table)
    default = "ridge_speed" if args.dataset == "ml1m" else "ridge_speed_synthetic"
    path = write_json(args.name or default, name, "melu", [0], rows,
                      settings={"meta_batch": args.meta_batch, "batches": args.batches,
                                "repeats": args.repeats, "threads": torch.get_num_threads()})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
