"""Saved predictions: one ``.npz`` per benchmark run and seed, holding every scored query
row (user, item, rating, whether training knows the item) and every predictor's
predictions for it, so that predictors trained by different runs (different configs,
different models) can be blended afterwards without training again
(``seed_ensemble.py --save-predictions``, ``blend_saved.py``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metarec.tasks.taskset import TaskSet


@dataclass(frozen=True)
class Scenario:
    """The query rows of one scenario, in the order predictions follow."""

    user: np.ndarray
    item: np.ndarray
    true: np.ndarray
    known: np.ndarray  # bool: the item has a training rating
    trained: np.ndarray | None = None  # bool: training saw the user (None: not saved)

    def same_rows(self, other: Scenario) -> bool:
        """Whether ``other`` holds the same query rows in the same order."""
        return (np.array_equal(self.user, other.user) and np.array_equal(self.item, other.item)
                and np.array_equal(self.true, other.true))


@dataclass(frozen=True)
class SavedSeed:
    """One run's predictions on one seed's split."""

    path: Path
    seed: int
    levels: np.ndarray | None
    scenarios: dict[str, Scenario]
    predictions: dict[str, dict[str, np.ndarray]]  # predictor -> scenario -> [rows]
    only_known: frozenset[str]  # predictors that score only items training knows

    def first_member(self, predictor: str) -> str:
        """The name of ``predictor``'s member with the lowest number (``NAME#K``)."""
        numbers = [int(n.rpartition("#")[2]) for n in self.predictions
                   if n.rpartition("#")[0] == predictor]
        if not numbers:
            raise ValueError(f"{self.path}: no member of {predictor!r}; it has "
                             f"{sorted(self.predictions)}")
        return f"{predictor}#{min(numbers)}"


def seed_file(directory: Path, name: str, seed: int) -> Path:
    """Where the run ``name`` saves the predictions of ``seed``."""
    return Path(directory) / f"{name}.seed{seed}.npz"


def save_seed(path: Path, seed: int, sets: dict[str, TaskSet], known: np.ndarray,
              levels: np.ndarray | None,
              predictions: dict[str, dict[str, np.ndarray]],
              only_known: Iterable[str] = (),
              trained_users: np.ndarray | None = None) -> Path:
    """Write one seed's query rows and ``predictions[predictor][scenario]`` to ``path``;
    ``only_known`` names the predictors that know only training items; with
    ``trained_users`` each row also records whether its user is one of them."""
    arrays: dict[str, np.ndarray] = {"seed": np.array(seed),
                                     "only_known": np.array(sorted(only_known), dtype=str)}
    if levels is not None:
        arrays["levels"] = np.asarray(levels, np.float64)
    for scenario, tasks in sets.items():
        query = tasks.query
        arrays[f"rows/{scenario}/user"] = np.asarray(query.user, np.int64)
        arrays[f"rows/{scenario}/item"] = np.asarray(query.item, np.int64)
        arrays[f"rows/{scenario}/true"] = np.asarray(query.rating, np.float64)
        arrays[f"rows/{scenario}/known"] = known[query.item]
        if trained_users is not None:
            arrays[f"rows/{scenario}/trained"] = np.isin(query.user, trained_users)
    for name, by_scenario in predictions.items():
        for scenario, pred in by_scenario.items():
            if len(pred) != len(sets[scenario].query):
                raise ValueError(f"{name} has {len(pred)} predictions on {scenario}, which "
                                 f"has {len(sets[scenario].query)} query rows")
            arrays[f"pred/{name}/{scenario}"] = np.asarray(pred, np.float64)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.npz")
    np.savez_compressed(partial, **arrays)
    partial.replace(path)  # a crash mid-write never leaves a half file under the name
    return path


def load_seed(path: Path) -> SavedSeed:
    """Read a file written by :func:`save_seed`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no saved predictions there")
    with np.load(path) as data:
        keys = list(data.keys())
        if "seed" not in keys:
            raise ValueError(f"{path}: not a saved-predictions file (no 'seed' array)")
        rows: dict[str, dict[str, np.ndarray]] = {}
        predictions: dict[str, dict[str, np.ndarray]] = {}
        for key in keys:
            kind, *rest = key.split("/")
            if kind == "rows":
                rows.setdefault(rest[0], {})[rest[1]] = data[key]
            elif kind == "pred":
                predictions.setdefault(rest[0], {})[rest[1]] = data[key]
        levels = data["levels"] if "levels" in keys else None
        seed = int(data["seed"])
        only_known = frozenset(str(x) for x in data["only_known"])
    scenarios = {s: Scenario(r["user"], r["item"], r["true"], r["known"].astype(bool),
                             r["trained"].astype(bool) if "trained" in r else None)
                 for s, r in rows.items()}
    return SavedSeed(path, seed, levels, scenarios, predictions, only_known)


def merged(parts: Sequence[SavedSeed]) -> SavedSeed:
    """One run from a run and its extensions (``seed_ensemble.py --first-member``): every
    member of each, and each ensemble again as the mean of all its members. The parts must
    score the same rows and number their members apart."""
    first = parts[0]
    predictions: dict[str, dict[str, np.ndarray]] = {}
    for part in parts:
        for scenario, rows in first.scenarios.items():
            if scenario not in part.scenarios or not rows.same_rows(part.scenarios[scenario]):
                raise ValueError(f"{part.path}: its {scenario} query rows differ from those "
                                 f"of {first.path}")
        for name, by_scenario in part.predictions.items():
            if "#" in name and name in predictions:
                raise ValueError(f"{part.path}: member {name} is in an earlier file too")
            if "#" in name or len(parts) == 1:  # ensembles of several parts: made again
                predictions[name] = by_scenario
    if len(parts) > 1:  # each ensemble again, over the members of every part
        for base in dict.fromkeys(n.rpartition("#")[0] for n in predictions):
            members = [v for n, v in predictions.items() if n.rpartition("#")[0] == base]
            predictions[base] = {s: np.mean([m[s] for m in members], axis=0)
                                 for s in first.scenarios}
    return SavedSeed(first.path, first.seed, first.levels, first.scenarios, predictions,
                     frozenset().union(*(part.only_known for part in parts)))
