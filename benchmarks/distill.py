"""Knowledge distillation: teacher vs distilled student vs the same student trained
without a teacher.

On the generated data set (and ML-1M new users with ``--ml1m``, from ``--data-dir``'s
``ml-1m/``, by default in ../shared/datasets beside the repository): a large FeatureMLP
teacher (plain training), a small FeatureMLP student trained with ``alpha * MSE(student,
teacher) + (1 - alpha) * MSE(student, rating)`` plus uniformly drawn distillation pairs,
and the same student without the teacher. Two label regimes: every training user labelled,
and only ``--few`` of them (the teacher saw all; the distillation pairs cover all).
Reports MAE, nDCG@3 on new users, parameters, weight-file bytes, global predictions/s and
median per-user adaptation latency (ms).

    python benchmarks/distill.py --epochs 8
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SHARED, write_json  # noqa: E402

from metarec.cli.transfer import DistillRun, distill_experiment, summarise_distill  # noqa: E402
from metarec.config import config_from_dict  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--users", type=int, default=1500, help="generated users")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--pairs", type=int, default=60000, help="distillation pairs")
    parser.add_argument("--few", type=float, default=0.1, help="labelled user fraction")
    parser.add_argument("--meta", action="store_true", help="add a maml-r meta-distilled "
                        "student (slower)")
    parser.add_argument("--ml1m", action="store_true", help="add ML-1M new users")
    parser.add_argument("--student-dim", type=int, default=16, help="student embedding dim")
    parser.add_argument("--student-hidden", default="64,32", help="student hidden sizes")
    parser.add_argument("--teacher-dim", type=int, default=32, help="teacher embedding dim")
    parser.add_argument("--teacher-hidden", default="256,256,128",
                        help="teacher hidden sizes")
    parser.add_argument("--name", default="distill", help="results/NAME.json")
    parser.add_argument("--teacher-seeds", type=int, nargs="+", default=[0],
                        help="teacher training seeds (several: an ensemble teacher)")
    parser.add_argument("--data-dir", type=Path, default=SHARED)
    args = parser.parse_args()

    teacher_model = {"embedding_dim": args.teacher_dim,
                     "hidden": [int(h) for h in args.teacher_hidden.split(",")]}
    student = {"student_embedding_dim": args.student_dim,
               "student_hidden": [int(h) for h in args.student_hidden.split(",")]}
    datasets = [("synthetic", {"dataset": "synthetic", "options": {
        "num_users": args.users, "num_items": args.users // 3,
        "num_ratings": args.users * 40}})]
    if args.ml1m and not (args.data_dir / "ml-1m" / "ratings.dat").is_file():
        parser.error(f"--ml1m: {args.data_dir} has no ml-1m/ratings.dat (pass --data-dir)")
    if args.ml1m:
        datasets.append(("ml-1m", {"dataset": str(args.data_dir / "ml-1m"),
                                   "options": {}}))
    regimes = [("all labels", 1.0, "pretrain"), (f"{args.few:.0%} labels", args.few,
                                                 "pretrain")]
    if args.meta:
        regimes.append(("meta (maml-r)", 1.0, "maml-r"))
    records = []
    for name, data in datasets:
        run = config_from_dict({"seeds": args.seeds, "data": data, "model": teacher_model,
                                "learner": {"epochs": args.epochs, "patience": 2}})
        for regime, fraction, learner in regimes:
            settings = DistillRun(alpha=args.alpha, distill_pairs=args.pairs,
                                  label_fraction=fraction, student_learner=learner,
                                  teacher_learner=learner, teacher_seeds=args.teacher_seeds,
                                  **student)
            started = time.perf_counter()
            tag = f"[{name} {regime}]"
            rows = distill_experiment(run, settings, lambda m, tag=tag: print(
                f"{tag} {m}", flush=True))
            print(f"[{name} {regime}] {time.perf_counter() - started:.0f}s")
            records += [{"dataset": name, "regime": regime, **row} for row in rows]
    table = []
    for (name, regime) in dict.fromkeys((r["dataset"], r["regime"]) for r in records):
        part = [{k: v for k, v in r.items() if k not in ("dataset", "regime")}
                for r in records if r["dataset"] == name and r["regime"] == regime]
        table += [{"dataset": name, "regime": regime, **row} for row in summarise_distill(part)]
    print(f"\n{'dataset':<10}{'regime':<16}{'model':<17}{'MAE':>7}{'nDCG@3':>8}{'params':>9}"
          f"{'bytes':>9}{'pred/s':>11}{'adapt ms':>10}")
    for row in table:
        print(f"{row['dataset']:<10}{row['regime']:<16}{row['model']:<17}{row['mae']:>7.4f}"
              f"{row['ndcg@3']:>8.4f}{row['parameters']:>9}{row['file_bytes']:>9}"
              f"{row['predictions_per_s']:>11.0f}{row['adapt_ms']:>10.2f}")
    path = write_json(args.name, "synthetic (+ ml-1m)", "new users (melu split)", args.seeds,
                      records, summary=table,
                      settings={"epochs": args.epochs, "alpha": args.alpha,
                                "pairs": args.pairs, "few": args.few,
                                "teacher": teacher_model, "student": student,
                                "teacher_seeds": args.teacher_seeds})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
