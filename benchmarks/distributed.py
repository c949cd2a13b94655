"""Meta-training throughput (tasks/s) on 1 and 2 processes.

Compares, side by side in one run, for each learner:

* 1 rank x 1 torch thread (the baseline),
* 1 rank x N threads (intra-op parallelism only),
* N ranks x 1 thread each (data-parallel over tasks with
  :class:`~metarec.learners.distributed.DistributedMetaTrainer`, gloo on 127.0.0.1).

Every configuration runs in fresh processes, does ``--warmup`` meta-steps, then times
``--steps`` meta-steps of the global meta-batch; the all-reduce time is measured
separately so the scaling ratio can be split into compute and communication. Prints a
table and writes ``benchmarks/results/distributed.json``.

    python benchmarks/distributed.py --steps 20 --learners maml-r reptile
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from metarec.data.splits import SplitConfig, split_dataset
from metarec.data.synthetic import SyntheticConfig, generate
from metarec.evaluation.report import results_document
from metarec.learners import LearnerConfig, learner_class
from metarec.learners.distributed import DistributedMetaTrainer, init_distributed
from metarec.models import build_model

RESULTS = Path(__file__).resolve().parent / "results" / "distributed.json"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank(rank: int, world_size: int, threads: int, port: int, args: argparse.Namespace,
          out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(threads)
    context = init_distributed("gloo", timeout_s=300)
    try:
        dataset = generate(SyntheticConfig(num_users=args.users, num_items=args.items,
                                           num_ratings=args.ratings))
        split = split_dataset(dataset, SplitConfig(seed=0))
        torch.manual_seed(0)
        model = build_model("FeatureMLP", dataset, embedding_dim=args.embedding_dim,
                            hidden=tuple(args.hidden))
        learner = learner_class(args.learner)(model, LearnerConfig(
            meta_batch_size=args.meta_batch_size, inner_steps=args.inner_steps,
            epochs=1000, patience=None))
        trainer = DistributedMetaTrainer(learner, split.train, dataset, context=context)
        trainer._start()
        comm = [0.0]
        reduce = trainer._all_reduce

        def timed_reduce(buffer: torch.Tensor) -> torch.Tensor:
            start = time.perf_counter()
            result = reduce(buffer)
            comm[0] += time.perf_counter() - start
            return result

        trainer._all_reduce = timed_reduce  # type: ignore[method-assign]
        batcher = learner.batcher_
        assert batcher is not None

        def batches():
            while True:
                yield from batcher.batch_indices()

        stream = batches()
        for _ in range(args.warmup):
            trainer.step(next(stream))
        if world_size > 1:
            dist.barrier()
        comm[0], tasks = 0.0, 0
        start = time.perf_counter()
        for _ in range(args.steps):
            index = next(stream)
            trainer.step(index)
            tasks += len(index)
        seconds = time.perf_counter() - start
        if rank == 0:
            Path(out).write_text(json.dumps({"seconds": seconds, "tasks": tasks,
                                             "allreduce_seconds": comm[0]}))
    finally:
        context.close()


def measure(args: argparse.Namespace, world_size: int, threads: int) -> dict:
    """Best of ``--repeats`` runs of one configuration, each in fresh processes."""
    best = None
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as folder:
            out = str(Path(folder) / "rank0.json")
            mp.spawn(_rank, args=(world_size, threads, _free_port(), args, out),
                     nprocs=world_size, join=True)
            run = json.loads(Path(out).read_text())
        if best is None or run["seconds"] < best["seconds"]:
            best = run
    assert best is not None
    return {"learner": args.learner, "ranks": world_size, "threads_per_rank": threads,
            "steps": args.steps, "meta_batch_size": args.meta_batch_size,
            "seconds": round(best["seconds"], 3),
            "tasks_per_s": round(best["tasks"] / best["seconds"], 1),
            "allreduce_share": round(best["allreduce_seconds"] / best["seconds"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learners", nargs="+", default=["maml-r", "reptile"])
    parser.add_argument("--ranks", type=int, default=2, help="N: processes / threads")
    parser.add_argument("--steps", type=int, default=20, help="timed meta-steps")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    parser.add_argument("--meta-batch-size", type=int, default=32)
    parser.add_argument("--inner-steps", type=int, default=5)
    parser.add_argument("--embedding-dim", type=int, default=32)
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=1500)
    parser.add_argument("--ratings", type=int, default=150_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    n = args.ranks
    load_before = [round(x, 2) for x in os.getloadavg()]
    results = []
    for name in args.learners:
        args.learner = name
        rows = [measure(args, 1, 1), measure(args, 1, n), measure(args, n, 1)]
        base = rows[0]["tasks_per_s"]
        for row in rows:
            row["speedup_vs_1x1"] = round(row["tasks_per_s"] / base, 2)
        results.extend(rows)

    header = f"{'learner':8} {'ranks':>5} {'threads':>7} {'tasks/s':>8} {'speedup':>7} " \
             f"{'allreduce':>9}"
    print(header)
    for row in results:
        print(f"{row['learner']:8} {row['ranks']:5d} {row['threads_per_rank']:7d} "
              f"{row['tasks_per_s']:8.1f} {row['speedup_vs_1x1']:7.2f} "
              f"{row['allreduce_share']:9.1%}")
    document = results_document(
        f"synthetic(num_users={args.users}, num_items={args.items}, "
        f"num_ratings={args.ratings})",
        f"meta-training throughput: {args.steps} timed meta-steps after {args.warmup} "
        f"warm-up, global meta-batch {args.meta_batch_size}, inner_steps "
        f"{args.inner_steps}, FeatureMLP(embedding_dim={args.embedding_dim}, "
        f"hidden={tuple(args.hidden)}), float32, gloo on 127.0.0.1, best of {args.repeats}",
        [0], results, load_average_before=load_before,
        load_average_after=[round(x, 2) for x in os.getloadavg()])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
