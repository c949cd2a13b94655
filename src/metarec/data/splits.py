"""Cold-start splits: warm, new users, new items, new users x new items.

Two protocols share one implementation:

* ``melu`` (as published for MovieLens-1M by MeLU): a seeded random
  ``new_user_fraction`` of all users are new users; items released after ``cutoff_year``
  are new items. (MeLU's published state files hold all 6,040 users, 4,832 existing and
  1,208 new; the ``min_ratings``..``max_ratings`` bound applies per scenario, below.)
* ``time``: for data without release years, an item is new if it was first rated after
  the ``new_item_quantile`` of the items' first-rating times: the ``1 - new_item_quantile``
  of items that appeared last are new. (An item with no timestamped rating has no place in
  time and is new, out of training.)

Each of the four scenarios groups a user's ratings in that scenario into one task: the
query set is ``query_size`` random ratings (or the latest, with ``query="latest"``), the
support set the rest; a user whose count in the scenario is outside the bounds is left out
of it, as MeLU does.

The warm scenario is honest: its query ratings are never trained on. Meta-training
tasks (``train``) are built from the warm support sets of existing users only, split again
into an inner support and query; a ``validation`` fraction of existing users is held out of
training altogether for tuning and early stopping. Their new-item support sets, split the
same way, are a second validation set where items are new
(:attr:`ColdStartSplit.validation_new_items`), so that choices which trade known films
against new ones can be judged without a test query. Validation users are never trained
on, so neither set can judge what a model remembers of a user it trained on (a user-id
embedding); a third set can where items are new
(:attr:`ColdStartSplit.validation_trained_new_items`): the new-film ratings of training
users that the bounds leave out of the ``new_items`` scenario.

MeLU drops every user whose count in a scenario is outside the bounds, so about half of
ML-1M's existing-user ratings (users with more than 100) are never used. With
``train_out_of_bounds=True`` the existing-item ratings of such existing (non-validation)
users are meta-training data too, cut at random into tasks of at most ``max_ratings``
ratings. No evaluated rating changes: these users are in no warm task, and new users and
new items stay unseen.

With ``support_history=True`` each evaluation task's support set holds everything known
about its user: every rating of theirs that is no scenario's query (their training
ratings, their support sets in the other scenarios, ratings outside the bounds;
:meth:`TaskSet.with_history`), as a service adapts to all it knows. Training and
validation tasks are the same as without it.

With ``unseen_codes_missing=True`` the side features that models see
(:meth:`ColdStartSplit.features`) read every categorical code that no training user or
item has (a new film's new director, a new user's zip code) as missing. With
``numeric_within_training=True`` they clamp every numeric value to the range the training
users or items span (a film from a year after every training film reads as the latest
training year).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from typing import Literal

import numpy as np

from metarec.data.dataset import Dataset, Interactions
from metarec.errors import ConfigError, DataError
from metarec.tasks.taskset import TaskSet

SCENARIOS = ("warm", "new_users", "new_items", "new_users_new_items")


@dataclass
class SplitConfig:
    """How to split a data set into cold-start scenarios (see the module docstring)."""

    protocol: Literal["melu", "time"] = "melu"
    min_ratings: int = 13
    max_ratings: int = 100
    new_user_fraction: float = 0.2
    cutoff_year: float = 1997
    new_item_quantile: float = 0.8
    query_size: int = 10
    query: Literal["random", "latest"] = "random"
    validation_fraction: float = 0.1
    train_out_of_bounds: bool = False
    unseen_codes_missing: bool = False
    numeric_within_training: bool = False
    support_history: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.protocol not in ("melu", "time"):
            raise ConfigError(f"split protocol must be 'melu' or 'time', got {self.protocol!r}")
        if self.query not in ("random", "latest"):
            raise ConfigError(f"split query must be 'random' or 'latest', got {self.query!r}")
        if self.min_ratings > self.max_ratings:
            raise ConfigError(f"split min_ratings ({self.min_ratings}) must not exceed "
                              f"max_ratings ({self.max_ratings}): every scenario would be "
                              "empty")
        if not 0 <= self.new_item_quantile <= 1:
            raise ConfigError("split new_item_quantile must be in [0, 1], got "
                              f"{self.new_item_quantile!r}")
        if not 0 <= self.new_user_fraction < 1 or not 0 <= self.validation_fraction < 1:
            raise ConfigError("new_user_fraction and validation_fraction must be in [0, 1)")
        if not math.isfinite(self.cutoff_year):
            raise ConfigError(f"split cutoff_year must be a year, got {self.cutoff_year!r}")
        if self.query_size < 1:
            raise ConfigError(f"split query_size must be >= 1, got {self.query_size!r}: "
                              "every task needs a query")
        if self.seed < 0:
            raise ConfigError(f"split seed must be >= 0, got {self.seed!r}")
        if self.min_ratings <= self.query_size:
            raise ConfigError(f"min_ratings ({self.min_ratings}) must exceed query_size "
                              f"({self.query_size}) so every task has a support set")


@dataclass
class ColdStartSplit:
    """The result of :func:`split_dataset`: evaluation tasks per scenario, plus the
    meta-training and validation tasks built from existing users' support sets."""

    config: SplitConfig
    scenarios: dict[str, TaskSet]
    train: TaskSet
    validation: TaskSet
    existing_users: np.ndarray
    new_users: np.ndarray
    validation_users: np.ndarray
    new_items: np.ndarray
    unbounded_new_items: Interactions | None = None
    """New-film ratings of existing, non-validation users with no ``new_items`` task
    (their count there is outside the bounds): no scenario evaluates them."""
    old_items_rated: int | None = None
    """How many items that are not new have a rating (for :meth:`empty_note`)."""

    @cached_property
    def validation_new_items(self) -> TaskSet:
        """Validation tasks where items are new: the validation users' new-item support
        ratings (of their ``new_items`` tasks; only new items, also with
        ``support_history``), each user's split again into an inner support and query
        (seeded by the split's seed). No rating here is the query of an evaluated task,
        and training never sees one: like :attr:`validation`, built from supports only."""
        tasks = self.scenarios["new_items"]
        support = tasks.select(np.isin(tasks.users, self.validation_users)).support
        support = support.subset(np.isin(support.item, self.new_items))
        return _resplit(support, self.config, np.random.default_rng([self.config.seed, 29]))

    @cached_property
    def validation_trained_new_items(self) -> TaskSet:
        """Validation tasks of users training knows, where items are new: the ratings of
        :attr:`unbounded_new_items` of every user with at least ``min_ratings`` of them,
        ``max_ratings`` drawn at random from those with more, grouped like a
        ``new_items`` task (``query_size`` random query ratings, the rest support;
        seeded by the split's seed). Like the ``new_items`` scenario's users, theirs
        trained the model; no rating here is evaluated or trained on."""
        rows = self.unbounded_new_items
        if rows is None or not len(rows):
            return self.validation.select(np.zeros(len(self.validation), dtype=bool))
        rng = np.random.default_rng([self.config.seed, 31])
        counts = np.bincount(rows.user)
        rows = rows.subset(counts[rows.user] >= self.config.min_ratings)
        order = np.lexsort((rng.random(len(rows)), rows.user))
        rows = rows.subset(order)
        rank = np.arange(len(rows)) - np.searchsorted(rows.user, rows.user, side="left")
        rows = rows.subset(rank < self.config.max_ratings)
        return _support_query(rows, self.config, rng, bounded=False)

    @property
    def train_ratings(self) -> Interactions:
        """Every rating training may see: the warm support sets of training users."""
        return self.train.all_ratings()

    def features(self, dataset: Dataset) -> Dataset:
        """The data set that models are built on and read features from: a view of
        ``dataset`` whose ratings are the training ratings only (a model's starting
        mean, its numeric statistics or anything else read from the ratings never sees an
        evaluation rating). Its side features are ``dataset``'s, or with
        ``unseen_codes_missing`` a view in which every categorical code that no training
        user or item has reads as missing (e.g. the director of a new film who directed
        nothing before), so that it adds nothing instead of the untrained random row it
        would look up; with ``numeric_within_training`` every numeric value clamped to
        the range of the training users or items."""
        if not (self.config.unseen_codes_missing or self.config.numeric_within_training):
            return replace(dataset, interactions=self.train_ratings)
        users, items = dataset.users, dataset.items
        trained_items = np.unique(self.train_ratings.item)
        if self.config.unseen_codes_missing:
            users = users.known_codes_only(self.train.users)
            items = items.known_codes_only(trained_items)
        if self.config.numeric_within_training:
            users = users.numeric_within(self.train.users)
            items = items.numeric_within(trained_items)
        return replace(dataset, interactions=self.train_ratings, users=users, items=items)

    def empty_note(self) -> str | None:
        """Why a scenario or the training set is empty, when one is: no new item, no
        item that is not new, no new user, or else the bounds on a user's ratings."""
        empty = [name for name, tasks in [*self.scenarios.items(), ("meta-train", self.train)]
                 if not len(tasks)]
        if not empty:
            return None
        config = self.config
        rule = (f"released after split.cutoff_year = {config.cutoff_year:g}"
                if config.protocol == "melu" else "first rated after the "
                f"split.new_item_quantile = {config.new_item_quantile:g} of first ratings")
        causes = []
        if not len(self.new_items):
            causes.append((f"no item is new (none {rule})", lambda n: "items" in n))
        if self.old_items_rated == 0:
            causes.append((f"every rated item is new ({rule})", lambda n: "items" not in n))
        if not len(self.new_users):
            causes.append((f"no user is new (split.new_user_fraction = "
                           f"{config.new_user_fraction:g})", lambda n: n.startswith("new_users")))
        causes.append((f"a user counts in a scenario with {config.min_ratings} to "
                       f"{config.max_ratings} ratings there (split.min_ratings, "
                       "split.max_ratings)", lambda n: True))
        notes = []
        for why, applies in causes:
            names = [n for n in empty if applies(n)]
            empty = [n for n in empty if n not in names]
            if names:
                notes.append(f"no user fits {', '.join(names)}: {why}")
        return "; ".join(notes)

    def require_training(self, dataset: str) -> None:
        """A :class:`DataError` when there is nothing to train on (too sparse a data set
        for the split's bounds), before anything trains on nothing."""
        if not len(self.train):
            advice = ("move the split's new-item cutoff" if self.old_items_rated == 0
                      else "lower split.min_ratings or use a denser data set")
            raise DataError(f"{dataset}: nothing to train on: {self.empty_note()}; {advice}")

    def summary(self) -> list[dict[str, object]]:
        """One row per scenario and per training set: users, support and query ratings."""
        rows = []
        for name, tasks in [*self.scenarios.items(), ("meta-train", self.train),
                            ("validation", self.validation),
                            ("validation_new_items", self.validation_new_items),
                            ("validation_trained_new_items",
                             self.validation_trained_new_items)]:
            rows.append({"scenario": name, "users": len(tasks),
                         "support_ratings": int(tasks.support_sizes.sum()),
                         "query_ratings": int(tasks.query_sizes.sum())})
        return rows

    def to_dict(self) -> dict[str, object]:
        return {"config": asdict(self.config), "summary": self.summary()}


def new_item_mask(dataset: Dataset, config: SplitConfig) -> np.ndarray:
    """Boolean mask over item indices: True for new (cold) items."""
    if config.protocol == "melu":
        if "year" not in dataset.items.names:
            raise ConfigError(f"data set {dataset.name!r} has no item release year: use the "
                              "'time' split protocol")
        year = dataset.items.values["year"].numpy()
        return np.nan_to_num(year, nan=-np.inf) > config.cutoff_year
    inter = dataset.interactions
    if not np.isfinite(inter.timestamp).any():
        raise ConfigError(f"data set {dataset.name!r} has neither release years nor "
                          "timestamps: no new-item scenario can be formed")
    first = np.full(dataset.num_items, np.inf)
    np.minimum.at(first, inter.item, np.nan_to_num(inter.timestamp, nan=np.inf))
    cutoff = np.quantile(first[np.isfinite(first)], config.new_item_quantile)
    return first > cutoff


def split_dataset(dataset: Dataset, config: SplitConfig | None = None) -> ColdStartSplit:
    """Split ``dataset`` into the four cold-start scenarios (see the module docstring)."""
    cfg = config or SplitConfig()
    rng = np.random.default_rng(cfg.seed)
    inter = dataset.interactions
    kept_users = np.unique(inter.user)
    shuffled = rng.permutation(kept_users)
    n_new = int(round(cfg.new_user_fraction * len(shuffled)))
    new_users = np.sort(shuffled[:n_new])
    existing = shuffled[n_new:]
    n_val = int(round(cfg.validation_fraction * len(existing)))
    validation_users = np.sort(existing[:n_val])
    existing_users = np.sort(existing)

    is_new_user = np.zeros(dataset.num_users, dtype=bool)
    is_new_user[new_users] = True
    new_items_mask = new_item_mask(dataset, cfg)
    rows = inter
    scenario_of_row = (is_new_user[rows.user].astype(int)
                       + 2 * new_items_mask[rows.item].astype(int))
    codes = {"warm": 0, "new_users": 1, "new_items": 2, "new_users_new_items": 3}

    scenarios = {}
    for name in SCENARIOS:
        part = rows.subset(scenario_of_row == codes[name])
        scenarios[name] = _support_query(part, cfg, rng, bounded=True)

    warm = scenarios["warm"]
    is_val = np.isin(warm.users, validation_users)
    train = _resplit(warm.select(~is_val).support, cfg, rng)
    validation = _resplit(warm.select(is_val).support, cfg, rng)
    if cfg.train_out_of_bounds:
        outside = ((scenario_of_row == codes["warm"]) & ~np.isin(rows.user, warm.users)
                   & ~np.isin(rows.user, validation_users))
        train = TaskSet.concat([train, *_chunked_tasks(rows.subset(outside), cfg, rng)])
    if cfg.support_history:
        queries = [tasks.query for tasks in scenarios.values()]
        in_query = np.isin(_pair_keys(rows, dataset.num_items),
                           np.concatenate([_pair_keys(q, dataset.num_items) for q in queries]))
        known = rows.subset(~in_query)
        scenarios = {name: tasks.with_history(known) for name, tasks in scenarios.items()}
    unbounded = rows.subset((scenario_of_row == codes["new_items"])
                            & ~np.isin(rows.user, scenarios["new_items"].users)
                            & ~np.isin(rows.user, validation_users))
    return ColdStartSplit(cfg, scenarios, train, validation, existing_users, new_users,
                          validation_users, np.flatnonzero(new_items_mask), unbounded,
                          len(np.unique(inter.item[~new_items_mask[inter.item]])))


def _support_query(rows: Interactions, cfg: SplitConfig, rng: np.random.Generator,
                   *, bounded: bool, query_size: int | None = None) -> TaskSet:
    """Group ``rows`` by user; the query is ``query_size`` rows per user, the rest support."""
    counts = np.bincount(rows.user, minlength=int(rows.user.max(initial=-1)) + 1)
    if bounded:
        ok = (counts >= cfg.min_ratings) & (counts <= cfg.max_ratings)
        rows = rows.subset(ok[rows.user])
    key = (rng.random(len(rows)) if cfg.query == "random"
           else -np.nan_to_num(rows.timestamp, nan=-np.inf))
    # Sort by user, then by the query key; the first q rows of each user are the query.
    order = np.lexsort((key, rows.user))
    rows = rows.subset(order)
    starts = np.searchsorted(rows.user, rows.user, side="left")
    rank = np.arange(len(rows)) - starts
    size = cfg.query_size if query_size is None else query_size
    if query_size is None:
        is_query = rank < size
    else:
        per_user = np.bincount(rows.user, minlength=len(counts))[rows.user]
        is_query = rank < np.minimum(size, per_user // 2)
    support, query = rows.subset(~is_query), rows.subset(is_query)
    tasks = TaskSet.from_rows(_time_order(support), _time_order(query))
    return tasks


def _resplit(support: Interactions, cfg: SplitConfig, rng: np.random.Generator) -> TaskSet:
    """Meta-training tasks from support rows only: each user's rows split again into an
    inner support and an inner query of ``min(query_size, n // 2)`` rows."""
    counts = np.bincount(support.user, minlength=int(support.user.max(initial=-1)) + 1)
    support = support.subset(counts[support.user] >= 2)
    return _support_query(support, cfg, rng, bounded=False, query_size=cfg.query_size)


def _chunked_tasks(rows: Interactions, cfg: SplitConfig, rng: np.random.Generator
                   ) -> list[TaskSet]:
    """Tasks from ``rows``: each user's rows cut at random into ``ceil(n / max_ratings)``
    chunks of near-equal size, each chunk split like :func:`_resplit`. One task set per
    chunk position (a task set holds one task per user)."""
    counts = np.bincount(rows.user, minlength=int(rows.user.max(initial=-1)) + 1)
    n_chunks = -(-counts // cfg.max_ratings)
    order = np.lexsort((rng.random(len(rows)), rows.user))
    rows = rows.subset(order)
    rank = np.arange(len(rows)) - np.searchsorted(rows.user, rows.user, side="left")
    chunk = rank % np.maximum(n_chunks[rows.user], 1)
    return [_resplit(rows.subset(chunk == c), cfg, rng)
            for c in range(int(n_chunks.max(initial=0)))]


def _pair_keys(rows: Interactions, num_items: int) -> np.ndarray:
    """One integer per (user, item) pair of ``rows``."""
    return rows.user.astype(np.int64) * num_items + rows.item


def _time_order(rows: Interactions) -> Interactions:
    order = np.lexsort((np.nan_to_num(rows.timestamp, nan=np.inf), rows.user))
    return rows.subset(order)
