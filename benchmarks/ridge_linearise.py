"""``ridge``'s design matrix written out by the model (``Forward.linearised``, one forward
pass) against forward-mode AD (``torch.func.jacfwd``, what every other head falls back
to), side by side in one run: meta-training tasks/s, adapting one new user, and a
service's new-user adaptation + top-10.

    python benchmarks/ridge_linearise.py                 # ML-1M + MeLU features if present
    python benchmarks/ridge_linearise.py --dataset synthetic

The model is the ML-1M benchmark's ``FeatureMF`` (``ml1m_ridge_neighbours.toml``: 32
factors, item tower 64, zip and actors left out; untrained, which does not change the
time). Writes ``benchmarks/results/ridge_linearise.json``.
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

WAYS = ("written", "jacfwd")


@contextmanager
def linearise_with(way: str) -> Iterator[None]:
    """Inside, ``ridge`` builds its design matrix the ``way`` named: ``"written"`` (the
    library's default) or ``"jacfwd"`` (the model's written-out form switched off)."""
    original = Forward.linearised
    if way == "jacfwd":
        Forward.linearised = lambda *args: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        Forward.linearised = original  # type: ignore[method-assign]


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
    parser.add_argument("--dataset", choices=["auto", "ml1m", "synthetic"], default="auto")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--meta-batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=10, help="meta-batches timed")
    parser.add_argument("--repeats", type=int, default=300, help="one-user timings")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", default="ridge_linearise", help="results/NAME.json")
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

    rows: list[dict] = []
    for adapt_loss in ("mse", "mae"):
        learner = ridge(dataset, adapt_loss)
        learner.features_ = dataset
        for way in WAYS:
            with linearise_with(way):
                per_batch = samples_ms(lambda r=learner: [r.meta_gradients(b) for b in batches],
                                       1)[0] / len(batches)
                adapt = samples_ms(lambda r=learner: r.adapt(one_batch), args.repeats)
            rows.append({"learner": f"ridge, adapt_loss={adapt_loss}", "way": way,
                         "metric": "meta_training_tasks_per_s",
                         "value": args.meta_batch / (per_batch / 1e3)})
            rows.append({"learner": f"ridge, adapt_loss={adapt_loss}", "way": way,
                         "metric": "adapt_one_user_20_ratings_p50_ms",
                         "value": statistics.median(adapt)})

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

    for way in WAYS:
        with linearise_with(way):
            served = samples_ms(new_user, args.repeats)
        rows.append({"learner": "ridge, adapt_loss=mae", "way": way,
                     "metric": "online_new_user_learn_and_top10_p50_ms",
                     "value": statistics.median(served)})

    table = Table(title=f"ridge's design matrix on {name}: written out vs jacfwd "
                        f"({torch.get_num_threads()} thread(s))")
    for column in ("learner", "metric", *WAYS, "jacfwd / written"):
        table.add_column(column, justify="right")
    pairs: dict[tuple[str, str], dict[str, float]] = {}
    for row in rows:
        pairs.setdefault((row["learner"], row["metric"]), {})[row["way"]] = row["value"]
    for (learner_name, metric), values in pairs.items():
        faster = (values["written"] / values["jacfwd"] if metric.endswith("per_s")
                  else values["jacfwd"] / values["written"])
        table.add_row(learner_name, metric, f"{values['written']:.2f}",
                      f"{values['jacfwd']:.2f}", f"{faster:.2f}x")
        rows.append({"learner": learner_name, "metric": f"{metric}_speedup", "value": faster})
    Console(width=120).print(table)
    path = write_json(args.name, name, "melu", [0], rows,
                      settings={"meta_batch": args.meta_batch, "batches": args.batches,
                                "repeats": args.repeats, "threads": torch.get_num_threads()})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
