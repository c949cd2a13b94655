"""What an idempotency key costs the service's store: ``EventStore.add_events`` on SQLite
(WAL, ``synchronous=FULL``, as ``metarec serve`` runs it), with and without keys, side by
side in one run: the three kinds of commit below alternate, so the machine's moment
falls on each.

The database is first filled with 5,000 users, 3,000 items and ``--stored`` keyed events
(the unique index a new key is looked up in), then each round commits a batch of every
``--sizes`` without keys, the same batch with keys, and that keyed batch again (a retry:
looked up, nothing stored).
Reports the p50 and p95 of each, in ms, and writes ``benchmarks/results/NAME.json``
(``--name``, default ``event_store``).

    python benchmarks/event_store.py --stored 100000 --sizes 1,100 --rounds 200
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import write_json

from metarec.serve.store import EventStore, NewEvent

USERS, ITEMS = 5000, 3000


def _batch(start: int, size: int, keyed: bool) -> list[NewEvent]:
    return [NewEvent(f"u{(start + i) % USERS}", str((start + i) % ITEMS), float(1 + i % 5),
                     float(start + i), f"k{start + i}" if keyed else None)
            for i in range(size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stored", type=int, default=100_000,
                        help="keyed events stored before timing")
    parser.add_argument("--sizes", default="1,100", help="events per commit, comma-separated")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--name", default="event_store")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        store = EventStore(f"sqlite:///{Path(folder) / 'events.db'}")
        # Every user and item exists before: the timed commits only add events.
        store.bulk_insert([(f"u{u}", {}) for u in range(USERS)],
                          [(str(i), {}) for i in range(ITEMS)])
        for start in range(0, args.stored, 1000):
            store.add_events(_batch(start, min(1000, args.stored - start), keyed=True))
        next_id = args.stored
        times: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for size in sizes:
                for kind in ("no key", "key", "retry"):
                    events = _batch(next_id, size, keyed=kind != "no key")
                    began = time.perf_counter()
                    stored, _ = store.add_events(events)
                    times.setdefault(f"{size}|{kind}", []).append(time.perf_counter() - began)
                    assert len(stored) == (0 if kind == "retry" else size)
                next_id += size
        store.close()
    rows = []
    for name, values in times.items():
        size, kind = name.split("|")
        ms = np.array(values) * 1000
        rows.append({"events_per_commit": int(size), "kind": kind, "count": len(ms),
                     "p50_ms": round(float(np.percentile(ms, 50)), 3),
                     "p95_ms": round(float(np.percentile(ms, 95)), 3)})
    print(f"{'events':>6}  {'kind':<7} {'p50 ms':>8} {'p95 ms':>8}")
    for row in rows:
        print(f"{row['events_per_commit']:>6}  {row['kind']:<7} {row['p50_ms']:>8.3f} "
              f"{row['p95_ms']:>8.3f}")
    path = write_json(args.name, "generated events", "sqlite", [], rows,
                      stored=args.stored, rounds=args.rounds)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
