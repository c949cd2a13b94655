"""An option on or off, side by side on the built-in generated data: the same learners,
baselines and seeds run twice, once as configured and once with ``--with`` overrides, and
the MAE of every predictor, scenario and seed printed for both, with the difference.

    python benchmarks/generated_options.py --learners ridge --baselines biases \\
        --seeds 0,1,2 --with per_learner.ridge.rank_weight=1 --name generated_rank_weight

Writes ``benchmarks/results/NAME.json``: the flat result document, each record's
``learner`` suffixed `` (with)`` for the run with the overrides.
"""

from __future__ import annotations

import argparse
import time

from _common import write_json
from rich.console import Console
from rich.table import Table

from metarec.config import load_config
from metarec.data.splits import SCENARIOS
from metarec.evaluation.protocol import aggregate_seeds
from metarec.experiment import run_experiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", default="ridge")
    parser.add_argument("--baselines", default="biases")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--config", default=None, help="TOML run config")
    parser.add_argument("--set", action="append", default=[],
                        help="section.field=value, for both runs")
    parser.add_argument("--with", dest="with_", action="append", required=True,
                        help="section.field=value, for the second run only")
    parser.add_argument("--name", required=True, help="results/NAME.json")
    args = parser.parse_args()

    seeds = [int(x) for x in args.seeds.split(",")]
    common = [f"learners={[x for x in args.learners.split(',') if x]!r}",
              f"baselines={[x for x in args.baselines.split(',') if x]!r}",
              f"seeds={seeds!r}", *args.set]
    console = Console()
    start = time.perf_counter()
    records = []
    for suffix, extra in (("", []), (" (with)", args.with_)):
        config = load_config(args.config, [*common, *extra])
        result = run_experiment(config)
        records += [{**r, "learner": r["learner"] + suffix} for r in result.records]
    seconds = time.perf_counter() - start

    console.print(mae_table(records, seeds))
    console.print(f"total {seconds:.0f} s")
    path = write_json(args.name, "synthetic", "melu", seeds, aggregate_seeds(records),
                      options={"set": args.set, "with": args.with_}, per_seed=records)
    console.print(f"wrote {path}")


def mae_table(records: list[dict], seeds: list[int]) -> Table:
    """Predictor x seed rows: MAE per scenario, as configured -> with the overrides."""
    value = {(r["learner"], r["scenario"], r["seed"]): r["value"] for r in records
             if r["metric"] == "mae"}
    names = [n for n in dict.fromkeys(r["learner"] for r in records)
             if not n.endswith(" (with)")]
    table = Table(title="generated data: MAE as configured -> with the overrides "
                        "(difference)")
    table.add_column("predictor")
    table.add_column("seed")
    for scenario in SCENARIOS:
        table.add_column(scenario, justify="right")
    for name in names:
        for seed in seeds:
            cells = []
            for scenario in SCENARIOS:
                base = value[(name, scenario, seed)]
                other = value[(f"{name} (with)", scenario, seed)]
                cells.append(f"{base:.3f} -> {other:.3f} ({other - base:+.3f})")
            table.add_row(name, str(seed), *cells)
    return table


if __name__ == "__main__":
    main()
