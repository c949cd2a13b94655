"""Transfer learning: data-efficiency curves of target-only training vs transfer vs
transfer + meta-adaptation.

Settings (each pretrains once per seed, then fits every method at every fraction of the
target's training users and scores the target's cold-start scenarios, MAE and nDCG@3):

* ``same``: one generated data set, its training users split in halves, source half ->
  target half (a non-meta control: both halves share everything);
* ``domains``: :func:`metarec.data.domains.generate_domains` with ``--shared-share``;
* ``ml-1m->ml-100k`` (``--movielens``, from ``--data-dir``'s ``ml-1m/`` and ``ml-100k/``,
  by default in ../shared/datasets beside the repository): shared
  fields gender, age (ML-100k ages mapped to ML-1M's groups), occupation (ML-100k words
  read as ML-1M codes), genres, year; zip and the id embeddings excluded (the two
  catalogues number users and movies differently).

    python benchmarks/transfer.py --fractions 0.01 0.05 0.2 1 --epochs 5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SHARED, write_json  # noqa: E402

from metarec.cli.transfer import TransferRun, summarise, transfer_experiment  # noqa: E402
from metarec.config import config_from_dict  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.05, 0.2, 1.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--users", type=int, default=1500, help="generated users")
    parser.add_argument("--shared-share", type=float, default=0.75)
    parser.add_argument("--freeze", default="none")
    parser.add_argument("--settings", nargs="+", default=["same", "domains"],
                        choices=["same", "domains"])
    parser.add_argument("--movielens", action="store_true",
                        help="add ML-1M -> ML-100k (from --data-dir)")
    parser.add_argument("--data-dir", type=Path, default=SHARED)
    parser.add_argument("--scenarios", nargs="+",
                        default=["warm", "new_users", "new_items", "new_users_new_items"])
    args = parser.parse_args()

    options = {"num_users": args.users, "num_items": args.users // 3,
               "num_ratings": args.users * 40}
    base = {"seeds": args.seeds, "learner": {"epochs": args.epochs, "patience": 2},
            "model": {"embedding_dim": 16, "hidden": [32, 32]}}
    runs = [(s, {**base, "data": {"dataset": "synthetic", "options": options}},
             {"source": s, "shared_share": args.shared_share}) for s in args.settings]
    ml1m, ml100k = args.data_dir / "ml-1m", args.data_dir / "ml-100k"
    if args.movielens and not ((ml1m / "ratings.dat").is_file() and (ml100k / "u.data").is_file()):
        parser.error(f"--movielens needs ml-1m/ratings.dat and ml-100k/u.data in "
                     f"{args.data_dir} (pass --data-dir)")
    if args.movielens:
        runs.append(("ml-1m->ml-100k", {**base, "data": {"dataset": str(ml100k), "options": {
            "occupations": "ml-1m"}}},
                     {"source": str(ml1m), "exclude_fields": ["zip", "id"]}))
    records, reports = [], {}
    for name, values, extra in runs:
        run = config_from_dict(values)
        settings = TransferRun(fractions=args.fractions, freeze=args.freeze,
                               scenarios=args.scenarios, **extra)
        started = time.perf_counter()
        result = transfer_experiment(run, settings, lambda m, n=name: print(f"[{n}] {m}",
                                                                           flush=True))
        print(f"[{name}] {time.perf_counter() - started:.0f}s")
        for row in result["records"]:
            row["setting"] = name
        records += result["records"]
        reports[name] = result["report"]
    rows = summarise(records, ("setting", "scenario", "fraction", "method"))
    print(f"\n{'setting':<16}{'scenario':<21}{'fraction':>9}  {'method':<15}{'MAE':>8}"
          f"{'nDCG@3':>8}")
    for row in rows:
        print(f"{row['setting']:<16}{row['scenario']:<21}{row['fraction']:>9.2f}  "
              f"{row['method']:<15}{row['mae']:>8.4f}{row['ndcg@3']:>8.4f}")
    path = write_json("transfer", "synthetic (+ ml-1m->ml-100k)", "new users of the target "
                      "(melu split); fractions of the target's training users", args.seeds,
                      records, summary=rows, transfer_reports=reports,
                      settings={"epochs": args.epochs, "users": args.users,
                                "shared_share": args.shared_share, "freeze": args.freeze,
                                "model": base["model"], "scenarios": args.scenarios})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
