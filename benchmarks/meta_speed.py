"""Meta-training throughput: vectorised (vmap) vs a per-task reference loop vs a
MeLU-style loop (one task at a time, the model copied per task), side by side in one run,
plus the latency of adapting one new user.

    python benchmarks/meta_speed.py                 # ML-1M + MeLU features (--data-dir)
    python benchmarks/meta_speed.py --dataset synthetic --batches 3
    python benchmarks/meta_speed.py --learners maml-r --full-epochs 30 --name meta_speed_full
    python benchmarks/meta_speed.py --device cuda --name meta_speed_gpu   # on a GPU

Writes ``benchmarks/results/meta_speed.json`` (``meta_speed_synthetic.json`` on the
generated set).
"""

from __future__ import annotations

import argparse
import copy
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from _common import speed_dataset, write_json
from rich.console import Console
from rich.table import Table

from metarec.data.splits import SplitConfig, split_dataset
from metarec.learners import LearnerConfig, learner_class
from metarec.learners.inner_loop import masked_mse
from metarec.learners.reference import reference_meta_gradients
from metarec.models import FeatureMLP
from metarec.tasks.batch import TaskBatcher, pad_tasks


def melu_style_step(learner, batch) -> float:  # noqa: ANN001 - benchmark foil
    """MeLU's way: per task, copy the model, take SGD steps on the adapted parameters with
    autograd, compute the query loss and accumulate its gradient into the original."""
    model = learner.model
    names = set(learner.adapted_names())
    lr, steps = learner.config.inner_lr, learner.config.inner_steps
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    total = 0.0
    for t in range(len(batch)):
        task = batch.select(slice(t, t + 1))
        local = copy.deepcopy(model)
        adapted = [p for n, p in local.named_parameters() if n in names]
        for _ in range(steps):
            loss = masked_mse(local(task.user_fields, task.support_fields),
                              task.support_ratings, task.support_mask)
            grads = torch.autograd.grad(loss, adapted)
            with torch.no_grad():
                for p, g in zip(adapted, grads, strict=True):
                    p -= lr * g
        query = masked_mse(local(task.user_fields, task.query_fields), task.query_ratings,
                           task.query_mask) / len(batch)
        query.backward()
        for p, q in zip(model.parameters(), local.parameters(), strict=True):
            if q.grad is not None:
                p.grad += q.grad
        total += float(query.detach())
    return total


def step(learner, method: str, batch) -> None:  # noqa: ANN001
    """One meta-gradient computation the way ``method`` does it."""
    if method == "vmap":
        learner.meta_gradients(batch)
    elif method == "loop":
        reference_meta_gradients(learner, batch)
    else:
        melu_style_step(learner, batch)


def synchronise(device: torch.device) -> None:
    """Wait for the GPU's queued work, so that wall-clock times cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(learner, method: str, batches: list) -> float:  # noqa: ANN001
    """Mean seconds per meta-batch over ``batches`` (after one warm-up step)."""
    step(learner, method, batches[0])
    synchronise(learner.device)
    start = time.perf_counter()
    for batch in batches:
        step(learner, method, batch)
    synchronise(learner.device)
    return (time.perf_counter() - start) / len(batches)


def full_training(dataset, split, epochs: int, meta_batch: int,  # noqa: ANN001
                  inner_steps: int, device: str) -> dict:
    """Wall time of a whole maml-r ``fit`` (every epoch, validation included) and the peak
    resident memory of this process so far (data, model and training together)."""
    torch.manual_seed(0)
    cfg = LearnerConfig(inner_steps=inner_steps, meta_batch_size=meta_batch, epochs=epochs,
                        patience=None, device=device)
    learner = learner_class("maml-r")(FeatureMLP.for_dataset(dataset), cfg)
    start = time.perf_counter()
    learner.fit(split.train, dataset, split.validation)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)
    gpu = ({"peak_gpu_mb": torch.cuda.max_memory_allocated(learner.device) / 2**20}
           if learner.device.type == "cuda" else {})
    return {"learner": "maml-r", "metric": "full_training", "epochs": epochs,
            "seconds": seconds, "peak_rss_mb": peak, **gpu,
            "final_val_loss": learner.history_[-1].get("val_loss")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["ml1m", "synthetic"], default="ml1m")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--learners", default="maml-r,maml,fomaml,reptile,metasgd,anil")
    parser.add_argument("--adapt-learners", default="maml-r",
                        help="learners whose one-user adaptation latency is timed")
    parser.add_argument("--meta-batch", type=int, default=32)
    parser.add_argument("--inner-steps", type=int, default=5)
    parser.add_argument("--batches", type=int, default=3, help="meta-batches timed per method")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--name", default=None,
                        help="results/NAME.json (default meta_speed, or meta_speed_synthetic "
                        "on the generated set)")
    parser.add_argument("--full-epochs", type=int, default=0,
                        help="also time a whole maml-r training of this many epochs (no "
                             "early stopping) and report the process's peak RSS")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    name, dataset = speed_dataset(args.dataset, args.data_dir)
    split = split_dataset(dataset, SplitConfig(seed=0))
    batcher = TaskBatcher(split.train, dataset.users, dataset.items, args.meta_batch, seed=0)
    index = list(batcher.batch_indices())[: args.batches]
    cfg = LearnerConfig(inner_steps=args.inner_steps, device=args.device)
    device = cfg.torch_device()
    # Padded and moved once: every method times the same tensors already on the device.
    batches = [pad_tasks(split.train, i, dataset.users, dataset.items).to(device)
               for i in index]

    console = Console()
    rows = []
    if args.full_epochs:  # first, so that the peak RSS is the training's
        rows.append(full_training(dataset, split, args.full_epochs, args.meta_batch,
                                  args.inner_steps, args.device))
        console.print(f"maml-r, {args.full_epochs} epochs on {len(split.train)} training "
                      f"tasks: {rows[-1]['seconds']:.0f} s, peak RSS "
                      f"{rows[-1]['peak_rss_mb']:.0f} MB")
    for learner_name in args.learners.split(","):
        torch.manual_seed(0)
        learner = learner_class(learner_name)(FeatureMLP.for_dataset(dataset), cfg)
        times = {}
        for method in ("vmap", "loop", "melu"):
            if method == "melu" and learner_name not in ("maml-r", "fomaml", "anil"):
                continue  # MeLU's loop is first-order head adaptation; compare like for like
            times[method] = timed(learner, method, batches)
        row = {"learner": learner_name, "metric": "tasks_per_s",
               **{f"{m}": args.meta_batch / t for m, t in times.items()}}
        row["vmap_over_loop"] = times["loop"] / times["vmap"]
        if "melu" in times:
            row["vmap_over_melu"] = times["melu"] / times["vmap"]
        rows.append(row)

    # Adapting one new user: 20 support ratings, inner_steps steps (ridge: one solve).
    new_users = split.scenarios["new_users"]
    one = new_users.select(np.flatnonzero(new_users.support_sizes >= 20)[:1]).cap_support(20, 0)
    batch = pad_tasks(one, np.array([0]), dataset.users, dataset.items).to(device)
    latencies = []
    for learner_name in args.adapt_learners.split(","):
        torch.manual_seed(0)
        learner = learner_class(learner_name)(FeatureMLP.for_dataset(dataset), cfg)
        learner.features_ = dataset
        samples = []
        for _ in range(200):
            start = time.perf_counter()
            learner.adapt(batch)
            synchronise(device)
            samples.append((time.perf_counter() - start) * 1000)
        latencies.append({"learner": learner_name, "metric": "adapt_ms_20_ratings",
                          "p50": statistics.median(samples),
                          "p95": float(np.percentile(samples, 95))})
    rows.extend(latencies)

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    table = Table(title=f"meta-training throughput on {name}, {where} (tasks/s, meta-batch "
                        f"{args.meta_batch}, {args.inner_steps} inner steps)")
    for col in ("learner", "vmap", "loop", "melu", "vmap/loop", "vmap/melu"):
        table.add_column(col, justify="right")
    for r in rows:
        if r["metric"] != "tasks_per_s":
            continue
        table.add_row(r["learner"], f"{r['vmap']:.0f}", f"{r['loop']:.0f}",
                      f"{r['melu']:.0f}" if "melu" in r else "-",
                      f"{r['vmap_over_loop']:.1f}x",
                      f"{r['vmap_over_melu']:.1f}x" if "vmap_over_melu" in r else "-")
    console.print(table)
    for latency in latencies:
        console.print(f"{latency['learner']}: adapt one new user (20 ratings, "
                      f"{args.inner_steps} steps): p50 {latency['p50']:.2f} ms, p95 "
                      f"{latency['p95']:.2f} ms")
    default = "meta_speed" if args.dataset == "ml1m" else "meta_speed_synthetic"
    path = write_json(args.name or default, name, "melu", [0], rows,
                      settings={"meta_batch": args.meta_batch, "inner_steps": args.inner_steps,
                                "batches": args.batches, "threads": torch.get_num_threads(),
                                "device": str(device), "device_name": where})
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
