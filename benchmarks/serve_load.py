"""Load test of ``metarec serve`` on 127.0.0.1: bounded, open-loop, mixed reads/writes.

Starts the real server (uvicorn, SQLite WAL) in a subprocess with a freshly trained tiny
MAML-R checkpoint (``--learner ridge``: a ``FeatureMF`` ``ridge`` with the neighbourhood
term; or ``--run-dir``), pre-loads events for ``--warm-users`` users, then
sends requests at each rate of ``--rates`` (per second) for ``--duration`` seconds:

* ``recommend``: GET recommendations of a warm user (re-adapted when their events
  changed since their last request, cached otherwise);
* ``event``: POST one event of a warm user (which makes their next request re-adapt);
* ``new_user``: POST 5 events of a brand-new user, then GET their recommendations (the
  adaptation happens inside that request; timed as ``new_user_recommend``).

Reports throughput and p50/p95/p99 per kind, plus the in-process time of one new-user
adaptation + scoring (no HTTP). Client and server share the machine's cores.
Writes benchmarks/results/serve_load.json (``serve_load_ridge.json`` with ``--learner
ridge``).

    python benchmarks/serve_load.py --rates 50,100,200 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"


def train_run(folder: Path, epochs: int, name: str) -> Path:
    """A run folder with learner ``name`` trained on the synthetic catalogue: ``maml-r``
    over a ``FeatureMLP``, or ``ridge`` over a ``FeatureMF`` with the neighbourhood term
    (20 neighbours, its scale and damping chosen on the validation users)."""
    from metarec.data.splits import SplitConfig, split_dataset
    from metarec.data.synthetic import SyntheticConfig, generate
    from metarec.learners.config import LearnerConfig
    from metarec.learners.registry import learner_class
    from metarec.models import FeatureMF, FeatureMLP

    dataset = generate(SyntheticConfig(num_users=600, num_items=1500, num_ratings=30_000))
    split = split_dataset(dataset, SplitConfig(seed=0))
    if name == "ridge":
        model = FeatureMF.for_dataset(dataset, embedding_dim=16, hidden=(32,), factors=16,
                                      item_id_embedding=True)
        settings = LearnerConfig(epochs=epochs, patience=None, neighbours=20)
    else:
        model = FeatureMLP.for_dataset(dataset, embedding_dim=16, hidden=(32, 32))
        settings = LearnerConfig(epochs=epochs, inner_steps=3, patience=None)
    learner = learner_class(name)(model, settings)
    learner.fit(split.train, dataset, split.validation if name == "ridge" else None)
    (folder / "config.toml").write_text('[data]\ndataset = "synthetic"\n\n[data.options]\n'
                                        'num_users = 600\nnum_items = 1500\n'
                                        'num_ratings = 30000\n')
    learner.save(folder / "checkpoints" / name)
    return folder


def in_process_adaptation(run: Path, repeats: int = 200) -> dict[str, float]:
    """Time of one new-user adaptation (5 events) + scoring every item, no HTTP."""
    import torch

    from metarec.data.dataset import Interactions
    from metarec.data.registry import load_dataset
    from metarec.learners.base import Learner, find_saved_learner
    from metarec.learners.online import OnlineRecommender

    torch.set_num_threads(1)
    dataset = load_dataset("synthetic", num_users=600, num_items=1500, num_ratings=30_000)
    learner = Learner.load(find_saved_learner(run), features=dataset)
    online = OnlineRecommender(learner, dataset)
    rng = np.random.default_rng(0)
    adapt, full = [], []
    for r in range(repeats):
        user = r % dataset.num_users
        online.users.pop(user, None)
        items = rng.choice(dataset.num_items, 5, replace=False)
        online.learn(Interactions(np.full(5, user), items, rng.integers(1, 6, 5).astype(
            np.float32), np.zeros(5)))
        began = time.perf_counter()
        online.user_params(np.array([user]))
        middle = time.perf_counter()
        online.recommend(user, 10)
        adapt.append(middle - began)
        full.append(time.perf_counter() - began)
    return {"adapt_p50_ms": 1e3 * float(np.percentile(adapt, 50)),
            "adapt_p99_ms": 1e3 * float(np.percentile(adapt, 99)),
            "adapt_and_recommend_p50_ms": 1e3 * float(np.percentile(full, 50)),
            "adapt_and_recommend_p99_ms": 1e3 * float(np.percentile(full, 99))}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run_load(url: str, rate: float, duration: float, warm_users: int, num_items: int,
                   mix: tuple[float, float, float], seed: int) -> dict[str, list[float]]:
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    latencies: dict[str, list[float]] = {k: [] for k in (
        "recommend", "event", "new_user_events", "new_user_recommend")}
    errors = {"count": 0}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:
        async def timed(kind: str, method: str, path: str, **kw) -> None:
            began = time.perf_counter()
            try:
                response = await client.request(method, path, **kw)
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies[kind].append(time.perf_counter() - began)
            else:
                errors["count"] += 1

        async def new_user(n: int) -> None:
            user = f"new-{seed}-{n}"
            events = [{"user": user, "item": str(rng.randint(1, num_items)),
                       "rating": float(rng.randint(1, 5))} for _ in range(5)]
            await timed("new_user_events", "POST", "/events", json={"events": events},
                        headers=headers)
            await timed("new_user_recommend", "GET", f"/users/{user}/recommendations")

        tasks = []
        start = time.perf_counter()
        n = 0
        while (now := time.perf_counter() - start) < duration:
            due = n / rate
            if due > now:
                await asyncio.sleep(due - now)
            n += 1
            draw = rng.random()
            user = f"warm-{rng.randrange(warm_users)}"
            if draw < mix[0]:
                coro = timed("recommend", "GET", f"/users/{user}/recommendations")
            elif draw < mix[0] + mix[1]:
                coro = timed("event", "POST", "/events", headers=headers, json={
                    "user": user, "item": str(rng.randint(1, num_items)),
                    "rating": float(rng.randint(1, 5))})
            else:
                coro = new_user(n)
            tasks.append(asyncio.create_task(coro))
        await asyncio.gather(*tasks)
        latencies["_elapsed"] = [time.perf_counter() - start]
        latencies["_errors"] = [errors["count"]]
        latencies["_sent"] = [n]
    return latencies


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    ms = np.array(values) * 1e3
    return {"count": len(values), "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="50,100,200",
                        help="comma-separated request rates (per second), run in turn")
    parser.add_argument("--duration", type=float, default=30.0,
                        help="seconds of load per rate")
    parser.add_argument("--warm-users", type=int, default=300)
    parser.add_argument("--events-per-user", type=int, default=20)
    parser.add_argument("--mix", default="0.7,0.2,0.1",
                        help="fractions recommend,event,new_user")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="serve this run folder instead of training a tiny one")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--learner", choices=("maml-r", "ridge"), default="maml-r",
                        help="the checkpoint trained when no --run-dir is given")
    parser.add_argument("--server-cpus", default=None,
                        help="pin the server to these CPUs (taskset list, e.g. 0,1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    mix = tuple(float(x) for x in args.mix.split(","))

    work = Path(tempfile.mkdtemp(prefix="metarec-load-"))
    try:
        if args.run_dir is None:
            run = train_run(work, args.epochs, args.learner)
        else:
            run = work / "run"
            shutil.copytree(args.run_dir, run)
        adaptation = in_process_adaptation(run)
        port = free_port()
        command = [sys.executable, "-m", "metarec", "serve", str(run), "--port", str(port)]
        if args.server_cpus:
            command = ["taskset", "-c", args.server_cpus, *command]
        server = subprocess.Popen(command, env={**os.environ, "METAREC_TOKEN": TOKEN},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            health = httpx.get(f"{url}/health").json()
            num_items = int(health["items"])
            rng = random.Random(args.seed)
            headers = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.Client(base_url=url, timeout=30) as client:
                for u in range(args.warm_users):
                    events = [{"user": f"warm-{u}", "item": str(rng.randint(1, num_items)),
                               "rating": float(rng.randint(1, 5))}
                              for _ in range(args.events_per_user)]
                    client.post("/events", json={"events": events}, headers=headers)
            runs = []
            for i, rate in enumerate(float(r) for r in args.rates.split(",")):
                runs.append((rate, asyncio.run(run_load(url, rate, args.duration,
                                                        args.warm_users, num_items, mix,
                                                        args.seed + i))))
            metrics_text = httpx.get(f"{url}/metrics").text
        finally:
            server.terminate()
            server.wait(timeout=20)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    results = []
    print(f"{'rate':>6} {'kind':>20} {'count':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for rate, latencies in runs:
        elapsed = latencies.pop("_elapsed")[0]
        errors = int(latencies.pop("_errors")[0])
        sent = int(latencies.pop("_sent")[0])
        for kind, values in latencies.items():
            record = {"target_rate": rate, "kind": kind, **percentiles(values)}
            results.append(record)
            if record["count"]:
                print(f"{rate:>6.0f} {kind:>20} {record['count']:>7} {record['p50_ms']:>8.2f} "
                      f"{record['p95_ms']:>8.2f} {record['p99_ms']:>8.2f}")
        completed = sum(len(v) for v in latencies.values())
        results.append({"target_rate": rate, "kind": "all", "duration_s": args.duration,
                        "scheduled": sent, "completed_http_requests": completed,
                        "errors": errors, "throughput_req_s": completed / elapsed,
                        "mix": args.mix,
                        "server_cpus": args.server_cpus or "shared with client"})
        print(f"{rate:>6.0f} throughput {completed / elapsed:.1f} req/s, errors {errors}")
    results.append({"kind": "in_process_new_user", **adaptation})
    print(f"in-process new-user adaptation (5 events) p50 {adaptation['adapt_p50_ms']:.2f} "
          f"ms, adapt + top-10 of all items p50 "
          f"{adaptation['adapt_and_recommend_p50_ms']:.2f} ms")
    from metarec.evaluation.report import results_document

    document = results_document("synthetic (600 users, 1500 items)", "serve_load",
                                [args.seed], results)
    document["adapt_metric_lines"] = [line for line in metrics_text.splitlines()
                                      if line.startswith("metarec_recommend_adapt_seconds")]
    args.out.mkdir(parents=True, exist_ok=True)
    name = "serve_load.json" if args.learner == "maml-r" else f"serve_load_{args.learner}.json"
    (args.out / name).write_text(json.dumps(document, indent=2))
    print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
