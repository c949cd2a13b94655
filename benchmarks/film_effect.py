"""How much of a trained predictor's error is an effect of the film, shared by the users
who rated it? A diagnostic for ML-1M's validation sets (benchmarks/movielens1m.md, "What
is left where films are new").

For every query rating of a validation set, the residual ``e = r - r_hat`` of a saved
run's predictor is corrected by the shrunk mean residual of the same film over the
*other* validation users who rated it (leave that user out):
``e - sum_{v != u} e_v(film) / (n_film - 1 + shrink)``. If the corrected error is lower,
part of the error is a per-film offset that every user of the film shares, which the
predictor could not read from the film's side features; if it is higher, what is left is
the users' own. This is an analysis, not a predictor: the offset reads other users'
held-out ratings.

    python benchmarks/movielens_melu.py --config benchmarks/configs/ml1m_ridge_neighbours.toml \\
        --learners ridge --baselines pretrain --seeds 0 --name trial_film_effect \\
        --out runs/film_effect
    python benchmarks/film_effect.py --run runs/film_effect

Prints the table and writes ``benchmarks/results/film_effect.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _common import load_ml1m, write_json
from rich.console import Console
from rich.table import Table

from metarec.config import load_config
from metarec.data.dataset import Interactions
from metarec.experiment import make_split, predictors_for
from metarec.learners.base import Learner

SHRINKS = (1.0, 3.0, 10.0, 30.0)


def film_offset_mae(query: Interactions, pred: np.ndarray, num_items: int,
                    shrink: float) -> float:
    """MAE of ``pred`` after adding each rating's leave-one-out shrunk mean residual of
    its film over the other rows of ``query`` (one row per user and film)."""
    residual = query.rating - pred
    total = np.bincount(query.item, residual, num_items)[query.item] - residual
    count = np.bincount(query.item, minlength=num_items)[query.item] - 1
    return float(np.mean(np.abs(residual - total / (count + shrink))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True,
                        help="a run folder written by movielens_melu.py --out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--predictors", default="ridge,foldin")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--name", default="film_effect", help="results/NAME.json")
    args = parser.parse_args()

    dataset = load_ml1m(args.data_dir)
    config = load_config(args.run / "config.toml")
    split = make_split(dataset, config, args.seed)
    features = split.features(dataset)
    names = [n for n in args.predictors.split(",") if n]
    trained = {}
    for name in {"pretrain" if n in ("foldin", "finetune") else n for n in names}:
        path = args.run / "checkpoints" / f"{name}-seed{args.seed}"
        if not path.is_dir():
            raise SystemExit(f"{path}: no checkpoint (train it with --out {args.run})")
        trained[name] = Learner.load(path, features=features)
        if trained[name].known_ is None:
            trained[name].known_ = split.train_ratings
    predictors = predictors_for(trained, split, config, names, dataset, seed=args.seed)

    sets = {"validation": split.validation,
            "validation_new_items": split.validation_new_items,
            "validation_trained_new_items": split.validation_trained_new_items}
    records = []
    table = Table(title=f"MAE, then with a leave-one-user-out per-film offset shrunk by s "
                        f"(seed {args.seed})")
    table.add_column("predictor")
    table.add_column("validation set")
    for column in ["films", "raters/film", "MAE", *[f"s={s:g}" for s in SHRINKS]]:
        table.add_column(column, justify="right")
    for name, predict in predictors.items():
        for set_name, tasks in sets.items():
            pred = predict(tasks)
            query = tasks.query
            films = np.unique(query.item)
            raters = np.bincount(query.item, minlength=dataset.num_items)[films]
            row = {"mae": float(np.mean(np.abs(query.rating - pred)))}
            for shrink in SHRINKS:
                row[f"mae_film_offset_shrink{shrink:g}"] = film_offset_mae(
                    query, pred, dataset.num_items, shrink)
            row["films"], row["median_raters_per_film"] = len(films), float(np.median(raters))
            records += [{"learner": name, "scenario": set_name, "metric": metric,
                         "mean": value, "sd": 0.0, "n_seeds": 1}
                        for metric, value in row.items()]
            table.add_row(name, set_name, str(len(films)), f"{np.median(raters):g}",
                          f"{row['mae']:.4f}",
                          *[f"{row[f'mae_film_offset_shrink{s:g}']:.4f}" for s in SHRINKS])
    Console().print(table)
    path = write_json(args.name, dataset.name, "melu-validation", [args.seed], records)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
