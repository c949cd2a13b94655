"""The MeLU benchmark: MovieLens-1M with MeLU's side features, MeLU's cold-start protocol
(honest warm scenario), every learner and baseline, several seeds.

    python benchmarks/movielens_melu.py                       # full: all learners, 3 seeds
    python benchmarks/movielens_melu.py --learners maml-r --seeds 0 --epochs 5
    python benchmarks/movielens_melu.py ... --set learner.device=cuda     # on a GPU

Needs ``ml-1m/`` and ``melu-ml1m/movies_extrainfos.dat`` under ``--data-dir`` (default
``../shared/datasets``). Writes ``benchmarks/results/movielens1m.json`` and prints the
table (mean ± sd over seeds) with the published MeLU-5 numbers beside it.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch
from _common import RESULTS, load_ml1m
from rich.console import Console
from rich.table import Table

from metarec.config import load_config
from metarec.data.splits import SCENARIOS
from metarec.evaluation.protocol import aggregate_seeds
from metarec.evaluation.report import results_document
from metarec.experiment import run_experiment

MELU5 = {"warm": (0.757, 0.892), "new_users": (0.785, 0.881), "new_items": (0.928, 0.801),
         "new_users_new_items": (0.924, 0.801)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--learners", default="maml-r,maml,fomaml,reptile,metasgd,anil")
    parser.add_argument("--baselines",
                        default="global-mean,biases,popularity,biased-mf,pretrain,finetune,foldin")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--config", type=Path, default=None, help="TOML run config")
    parser.add_argument("--set", action="append", default=[], help="section.field=value")
    parser.add_argument("--out", type=Path, default=None, help="also write a run folder")
    parser.add_argument("--name", default="movielens1m", help="results/NAME.json")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--merge", nargs="+", type=Path, default=None,
                        help="only merge the per-seed records of earlier result files "
                             "(e.g. runs of different seeds) into --name; a predictor's "
                             "records of a seed come from the last file that has them; "
                             "results/X.json is read from benchmarks/results/ as written")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.merge:
        merge(args.merge, args.name)
        return

    console = Console()
    dataset = load_ml1m(args.data_dir)
    overrides = [f"learners={[x for x in args.learners.split(',') if x]!r}",
                 f"baselines={[x for x in args.baselines.split(',') if x]!r}",
                 f"seeds={[int(x) for x in args.seeds.split(',')]!r}",
                 "data.dataset='movielens-1m'", *args.set]
    if args.epochs is not None:
        overrides.append(f"learner.epochs={args.epochs}")
    config = load_config(args.config, overrides)

    def events(kind: str, payload: dict) -> None:
        if kind == "stage":
            console.log(payload["message"])
        elif kind == "epoch":
            console.log(f"  {payload['learner']} seed {payload['seed']} epoch "
                        f"{payload['epoch']}: train {payload['train_loss']:.4f} "
                        f"val mse {payload.get('val_mse', float('nan')):.4f} "
                        f"mae {payload.get('val_mae', float('nan')):.4f}")

    start = time.perf_counter()
    result = run_experiment(config, args.out, events, dataset=dataset)
    per_seed = result.records
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu = ({"peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20}
           if torch.cuda.is_available() else {})

    console.print(table_of(result.aggregated, config.seeds))
    console.print(table_of(result.aggregated, config.seeds, "mae_rounded"))
    console.print(f"total {seconds:.0f} s, peak RSS {peak_mb:.0f} MB")

    RESULTS.mkdir(parents=True, exist_ok=True)
    document = results_document("movielens-1m+melu", "melu-honest-warm", config.seeds,
                                result.aggregated, config=config.to_dict(),
                                split=result.split_summary, timings=result.timings,
                                peak_rss_mb=peak_mb, **gpu, published_melu5=MELU5,
                                histories=result.histories,
                                per_seed=per_seed)
    path = RESULTS / f"{args.name}.json"
    path.write_text(json.dumps(document, indent=2))
    console.print(f"wrote {path}")


def table_of(aggregated: list[dict], seeds: list[int], metric: str = "mae") -> Table:
    """Learners x scenarios, ``MAE ± sd / nDCG@3`` cells (``metric``: ``mae`` or
    ``mae_rounded``, the MAE of whole-star predictions), MeLU-5 as the last row."""
    index = {(r["learner"], r["scenario"], r["metric"]): r for r in aggregated}
    learners = list(dict.fromkeys(r["learner"] for r in aggregated
                                  if r["metric"] == metric))
    what = "MAE" if metric == "mae" else "MAE of whole-star predictions"
    table = Table(title=f"ML-1M, MeLU protocol, honest warm; mean ± sd over seeds {seeds} "
                        f"({what} / nDCG@3; n = seeds)")
    table.add_column("learner")
    table.add_column("n")
    for scenario in SCENARIOS:
        table.add_column(scenario, justify="right")
    for learner in learners:
        cells = []
        for scenario in SCENARIOS:
            mae = index.get((learner, scenario, metric))
            ndcg = index.get((learner, scenario, "ndcg@3"))
            cells.append("-" if mae is None else
                         f"{mae['mean']:.4f}±{mae['sd']:.3f} / {ndcg['mean']:.4f}")
        n = index.get((learner, "warm", metric), {}).get("n_seeds", "-")
        table.add_row(learner, str(n), *cells)
    table.add_row("MeLU-5 (paper)", "", *[f"{MELU5[s][0]:.3f} / {MELU5[s][1]:.3f}"
                                          for s in SCENARIOS])
    return table


def _result_file(path: Path) -> Path:
    """``path`` as given, else (a ``results/X.json`` of the docs, run from the repository
    root) the file of that name in :data:`RESULTS`, where ``--name`` writes."""
    if path.exists() or path.is_absolute():
        return path
    return RESULTS / path.name if (RESULTS / path.name).exists() else path


def merge(paths: list[Path], name: str) -> None:
    """Pool the per-seed records of several result files and aggregate them again. A
    predictor's records for a seed come from the last file that has them, so a predictor
    run again replaces its earlier rows (``--merge old.json rerun.json``)."""
    documents = [json.loads(_result_file(Path(p)).read_text()) for p in paths]
    latest: dict[tuple[str, int], int] = {}
    for index, document in enumerate(documents):
        for r in document["per_seed"]:
            latest[(r["learner"], r["seed"])] = index
    records = [r for index, d in enumerate(documents) for r in d["per_seed"]
               if latest[(r["learner"], r["seed"])] == index]
    seeds = sorted({r["seed"] for r in records})
    aggregated = aggregate_seeds(records)
    Console().print(table_of(aggregated, seeds))
    if any(r["metric"] == "mae_rounded" for r in aggregated):
        Console().print(table_of(aggregated, seeds, "mae_rounded"))
    first = documents[0]
    # Where the parts ran (not where they are merged) when they all ran on one kind of
    # machine; each part keeps its own record either way.
    same = {json.dumps(d.get("machine"), sort_keys=True) for d in documents}
    ran_on = {"machine": first["machine"], "versions": first["versions"]} if len(same) == 1 \
        else {}
    document = results_document(first["dataset"], first["protocol"], seeds, aggregated,
                                merged_from=[str(Path(p).name) for p in paths], **ran_on,
                                parts=[{k: d.get(k) for k in (
                                    "seeds", "timings", "peak_rss_mb", "peak_gpu_mb",
                                    "config", "machine", "versions")} for d in documents],
                                published_melu5=MELU5, per_seed=records)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(document, indent=2))
    Console().print(f"wrote {path}")


if __name__ == "__main__":
    main()
