"""Online learning: a recommender that follows a time-ordered stream of events.

:class:`OnlineRecommender` wraps a trained learner. Per user it keeps a small state (the
most recent ``support_cap`` ratings); when a user's events change, their parameters are
re-adapted from the meta-learned initialisation on that support set (lazily, at the next
prediction), so a new user is personalised after their first events. Every
``update_every`` events it takes incremental meta-steps on tasks built from recent users'
events (support = older, query = the latest ``query_size``) mixed with tasks replayed
from a reservoir of older users, so the initialisation keeps improving without
forgetting them.

Three modes share the class, so they are compared on equal terms:

* ``meta``: per-user adaptation + periodic meta-updates with replay (above);
* ``sgd``: no per-user adaptation; one SGD step of the global model on every learned
  batch of events (online fine-tuning);
* ``static``: the trained model as is (no adaptation, no update).

With ``item_shrinkage`` set, any mode also keeps an offset per item, learned from the
stream: a film nobody had rated when the model was trained gets the level its first
raters give it, which its side features do not say (see :class:`OnlineConfig`).
"""

from __future__ import annotations

import copy
import math
import time
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch
from torch.func import vmap

from metarec.data.dataset import Interactions
from metarec.errors import ConfigError
from metarec.learners.base import HasFeatures, Learner
from metarec.learners.inner_loop import Params, masked_loss
from metarec.learners.meta_learner import MetaLearner
from metarec.learners.ranking import check_items, check_ratings, check_request, top_k
from metarec.tasks.batch import pad_tasks
from metarec.tasks.taskset import TaskSet

OnlineMode = Literal["meta", "sgd", "static"]


@dataclass
class OnlineConfig:
    """Settings of :class:`OnlineRecommender`.

    ``support_cap``: most recent ratings kept per user (their support set; an item's
    latest rating only);
    ``adapt_steps``: inner steps per adaptation (None = the learner's ``inner_steps``);
    ``update_every``: events between incremental meta-updates (0 = never);
    ``update_steps``: meta-steps per update; ``update_tasks``: recent users' tasks per
    meta-step; ``replay_tasks``: older tasks replayed per meta-step, drawn from a
    reservoir of ``replay_capacity`` tasks; ``query_size``: latest events of a user that
    form a task's query (a user needs ``query_size + 1`` kept items to make a task);
    ``sgd_lr``: step size of the ``sgd`` mode; ``seed``: the reservoir's random draws.

    ``item_shrinkage`` (None = off): keep an offset per item, added to every prediction.
    Each learned event's residual against the trained model's prediction (the model as
    it was when the recommender was made, a copy kept for this; no adaptation), less its
    user's mean such residual before the event, is summed per item; the offset is that
    sum over (the item's events + ``item_shrinkage``), the user's mean over (their events
    + ``item_shrinkage``). Event by event against a fixed model, so learning a stream in
    any chunks gives the same offsets, in every mode.
    """

    mode: OnlineMode = "meta"
    support_cap: int = 50
    adapt_steps: int | None = None
    update_every: int = 0
    update_steps: int = 1
    update_tasks: int = 16
    replay_tasks: int = 16
    replay_capacity: int = 500
    query_size: int = 2
    sgd_lr: float = 0.01
    seed: int = 0
    item_shrinkage: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("meta", "sgd", "static"):
            raise ConfigError(f"online mode must be 'meta', 'sgd' or 'static', got "
                              f"{self.mode!r}")
        if self.support_cap < 1 or self.query_size < 1:
            raise ConfigError("support_cap and query_size must be >= 1")
        if self.update_every < 0 or self.replay_capacity < 0:
            raise ConfigError("update_every and replay_capacity must be >= 0")
        if self.item_shrinkage is not None and not self.item_shrinkage >= 0:
            raise ConfigError(f"item_shrinkage must be >= 0 (or None, off), got "
                              f"{self.item_shrinkage!r}")


@dataclass
class UserState:
    """What the recommender keeps of one user: their recent ratings (oldest first, at
    most ``support_cap``, an item once: a re-rating replaces the earlier rating and counts
    as the latest), how many events they have had, the latest event time, and
    every item they have rated (``seen``, one entry per event, 8 bytes each: what
    :meth:`OnlineRecommender.recommend` leaves out, however old)."""

    items: deque = field(default_factory=deque)
    ratings: deque = field(default_factory=deque)
    num_events: int = 0
    last_time: float = float("nan")
    seen: array = field(default_factory=lambda: array("q"))

    def seen_items(self) -> np.ndarray:
        """Every item the user has rated (with repeats), as int64 indices."""
        return np.frombuffer(self.seen, dtype=np.int64) if len(self.seen) else np.zeros(
            0, dtype=np.int64)

    def support(self, user: int) -> Interactions:
        """The support set as :class:`Interactions` of ``user``."""
        n = len(self.items)
        return Interactions(np.full(n, user, dtype=np.int64),
                            np.fromiter(self.items, dtype=np.int64, count=n),
                            np.fromiter(self.ratings, dtype=np.float32, count=n),
                            np.full(n, np.nan))

    def snapshot(self) -> dict[str, object]:
        """A plain, comparable copy (used to check replay from storage)."""
        return {"items": list(self.items), "ratings": [float(r) for r in self.ratings],
                "num_events": self.num_events, "last_time": self.last_time,
                "seen": sorted(set(self.seen))}


@dataclass
class _Task:
    user: int
    items: np.ndarray
    ratings: np.ndarray


class OnlineRecommender:
    """A learner following a stream of (user, item, rating, time) events.

    ``features`` are the side-feature tables indexed by user/item index; a service whose
    catalogue grows assigns a larger table to :attr:`features` (rows are never
    renumbered). The learner's model is updated in place (``sgd`` and ``meta`` with
    ``update_every``): pass a copy if the original must stay as it was.
    """

    def __init__(self, learner: Learner, features: HasFeatures,
                 config: OnlineConfig | None = None,
                 users: dict[int, UserState] | None = None) -> None:
        self.learner = learner
        self.features = features
        self.config = config or OnlineConfig()
        self.users: dict[int, UserState] = {} if users is None else users
        self.events_seen = 0
        self.adaptations = 0
        self.meta_updates = 0
        self.model_version = 0
        self.last_adapted: dict[int, float] = {}
        self._cache: dict[int, tuple[tuple[int, int, int], Params]] = {}
        self._recent: dict[int, None] = {}
        self._reservoir: list[_Task] = []
        self._offered = 0
        self._rng = np.random.default_rng(self.config.seed)
        self._sgd: torch.optim.Optimizer | None = None
        self._split: tuple[Params, Params] | None = None
        self._item_cache: dict[str, tuple[tuple[int, int, int], torch.Tensor]] = {}
        self._item_versions: dict[int, int] = {}
        self.items_version = 0
        """Bump when item features change in place (the cached item embeddings)."""
        self.offsets = ItemOffsets(self.config.item_shrinkage or 0.0)
        """Per-item offsets learned from the stream (used when ``item_shrinkage`` is set)."""
        self._offsets_stale = False
        self._trained = (copy.deepcopy(learner.model).eval()
                         if self.config.item_shrinkage is not None else None)
        """The model as trained: what the offsets' residuals are taken against."""
        learner.model.eval()

    def warm_up(self) -> None:
        """Adapt a throwaway one-rating user and score every item, so that what torch
        and the learner load on first use (``torch.func``'s forward-mode decompositions,
        ``ridge``'s similarity table) is not loaded inside a request. A scratch
        recommender does it: this one's state does not change."""
        if not self.features.items.num_rows or not self.features.users.num_rows:
            return
        scratch = OnlineRecommender(self.learner, self.features,
                                    replace(self.config, item_shrinkage=None))
        scratch.users[0] = UserState(deque([0]), deque([3.0]), num_events=1)
        scratch.score(0)

    # ---- learning from events -------------------------------------------------------
    def learn(self, events: Interactions) -> None:
        """Take in events (in time order): update the users' states, and in ``sgd`` mode
        step the model; every ``update_every`` events run the meta-updates."""
        cap = self.config.support_cap
        check_ratings(events, self.features)
        if self.config.item_shrinkage is not None:
            self.offsets.learn(events, self._trained_predict(events))
        rows = zip(events.user.tolist(), events.item.tolist(), events.rating.tolist(),
                   events.timestamp.tolist(), strict=True)
        for user, item, rating, when in rows:
            state = self.users.get(user)
            if state is None:
                state = self.users[user] = UserState(deque(maxlen=cap), deque(maxlen=cap))
            if item in state.items:  # a re-rating replaces the earlier one
                at = state.items.index(item)
                del state.items[at]
                del state.ratings[at]
            state.items.append(item)
            state.ratings.append(rating)
            state.seen.append(item)
            state.num_events += 1
            last = state.last_time  # the latest time, whatever order events arrive in
            state.last_time = when if math.isnan(last) else max(last, when)
            self._recent.pop(user, None)  # re-insert: insertion order is recency
            self._recent[user] = None
            before = self.events_seen
            self.events_seen += 1
            every = self.config.update_every
            if (self.config.mode == "meta" and every
                    and self.events_seen // every > before // every):
                self.meta_update()
        if self.config.mode == "sgd" and len(events):
            self._sgd_step(events)

    def carry_offsets(self, offsets: ItemOffsets) -> None:
        """Take another recommender's offsets (a service swapping its checkpoint): they
        are learned again from its log against this one's model at the next prediction."""
        self.offsets, self._offsets_stale = offsets, True

    def refit_offsets(self) -> None:
        """Learn the item offsets again from the events learned so far, against the
        trained model and the features as they are now: what learning those events afresh
        would give. Called (at the next prediction) when a user's or item's features
        change. The offsets are replaced only once the pass is complete."""
        if self.config.item_shrinkage is None:
            return
        events = self.offsets.logged()
        fresh = ItemOffsets(self.config.item_shrinkage)  # kept only once complete
        step = 65_536
        for start in range(0, len(events), step):
            chunk = events.subset(np.arange(start, min(start + step, len(events))))
            fresh.learn(chunk, self._trained_predict(chunk))
        self.offsets, self._offsets_stale = fresh, False

    @torch.no_grad()
    def _trained_predict(self, events: Interactions) -> np.ndarray:
        """The trained model's predictions of ``events`` (the copy kept for the
        offsets), without adaptation or offsets."""
        if not len(events) or self._trained is None:
            return np.zeros(len(events))
        device = self.learner.device
        users = self.features.users.take(torch.from_numpy(events.user.astype(np.int64)),
                                         device)
        items = self.features.items.take(torch.from_numpy(events.item.astype(np.int64)),
                                         device)
        return self._trained(users, items).double().cpu().numpy()

    def _sgd_step(self, events: Interactions) -> None:
        model = self.learner.model
        if self._sgd is None:
            self._sgd = torch.optim.SGD(model.parameters(), lr=self.config.sgd_lr)
        users = torch.from_numpy(np.asarray(events.user, dtype=np.int64))
        items = torch.from_numpy(np.asarray(events.item, dtype=np.int64))
        target = torch.from_numpy(np.asarray(events.rating)).to(self.learner.device,
                                                                 self.learner.dtype)
        with torch.enable_grad():
            device = self.learner.device
            pred = model(self.features.users.take(users, device),
                         self.features.items.take(items, device))
            loss = masked_loss(pred, target, torch.ones_like(target, dtype=torch.bool),
                               self.learner.config.loss)
            self._sgd.zero_grad(set_to_none=True)
            loss.backward()
        self._sgd.step()
        self._model_changed()

    def _model_changed(self) -> None:
        self.model_version += 1
        self._cache.clear()
        self._item_cache.clear()

    def _params(self) -> tuple[Params, Params]:
        """The learner's (adapted, fixed) parameter dicts; the same tensors until the
        model is replaced, so they are looked up once."""
        if self._split is None:
            self._split = self.learner.split_params()
        return self._split

    # ---- incremental meta-updates ---------------------------------------------------
    def recent_tasks(self, limit: int) -> list[_Task]:
        """Tasks of the ``limit`` most recently active users with enough events: the
        support is all but the latest ``query_size`` of their kept events."""
        tasks: list[_Task] = []
        if limit <= 0:
            return tasks
        for user in reversed(self._recent):
            state = self.users[user]
            if len(state.items) > self.config.query_size:
                tasks.append(_Task(user, np.array(state.items, dtype=np.int64),
                                   np.array(state.ratings, dtype=np.float32)))
                if len(tasks) == limit:
                    break
        return tasks

    def meta_update(self) -> float:
        """``update_steps`` meta-steps on recent tasks plus replayed ones; returns the mean
        meta-loss (NaN when there was no task). Recent tasks then enter the reservoir."""
        cfg = self.config
        recent = self.recent_tasks(cfg.update_tasks)
        losses = []
        for _ in range(cfg.update_steps):
            replay = self._replay_sample(cfg.replay_tasks)
            tasks = recent + replay
            if not tasks:
                break
            losses.append(self._meta_step(tasks))
        for task in recent:
            self._offer(task)
        self._recent.clear()
        if losses:
            self.meta_updates += 1
            self._model_changed()
        return float(np.mean(losses)) if losses else float("nan")

    def _meta_step(self, tasks: list[_Task]) -> float:
        q = self.config.query_size
        taskset = _taskset([t.user for t in tasks], [t.items[:-q] for t in tasks],
                           [t.ratings[:-q] for t in tasks], [t.items[-q:] for t in tasks],
                           [t.ratings[-q:] for t in tasks])
        learner = self.learner
        if isinstance(learner, MetaLearner):
            if learner.optimizer_ is None:
                learner.optimizer_ = learner.make_optimizer()
            batch = pad_tasks(taskset, np.arange(len(taskset)), self.features.users,
                              self.features.items)
            with torch.enable_grad():
                loss, grads = learner.meta_gradients(batch)
            learner.apply_gradients(grads)
            return loss
        # Plain learners have no meta-gradient: fine-tune on the tasks' ratings instead.
        rows = taskset.all_ratings()
        self._sgd_step(rows)
        return float("nan")

    def _replay_sample(self, count: int) -> list[_Task]:
        if not self._reservoir or count == 0:
            return []
        pick = self._rng.choice(len(self._reservoir), size=min(count, len(self._reservoir)),
                                replace=False)
        return [self._reservoir[i] for i in pick]

    def _offer(self, task: _Task) -> None:
        """Reservoir sampling (Vitter's algorithm R): every task offered so far is in the
        reservoir with equal probability."""
        capacity = self.config.replay_capacity
        self._offered += 1
        if len(self._reservoir) < capacity:
            self._reservoir.append(task)
        elif capacity:
            slot = int(self._rng.integers(self._offered))
            if slot < capacity:
                self._reservoir[slot] = task

    # ---- adaptation -----------------------------------------------------------------
    def _adapts(self) -> bool:
        return self.config.mode == "meta"

    def _steps(self) -> int:
        steps = self.config.adapt_steps
        return self.learner.config.inner_steps if steps is None else steps

    def _key(self, user: int) -> tuple[int, int, int]:
        """What a cached adaptation of ``user`` depends on: their events, the model and
        the versions of their support items' features (which only grow, so the sum
        changes whenever one of them does)."""
        state = self.users.get(user)
        if state is None:
            return (0, self.model_version, 0)
        versions = self._item_versions
        changed = sum(versions.get(i, 0) for i in state.items) if versions else 0
        return (state.num_events, self.model_version, changed)

    def user_params(self, users: np.ndarray) -> Params:
        """Adapted parameters of ``users`` stacked on a leading dimension (re-adapting
        those whose events changed since their last adaptation)."""
        users = np.asarray(users, dtype=np.int64)
        stale = [u for u in dict.fromkeys(users.tolist())
                 if u not in self._cache or self._cache[u][0] != self._key(u)]
        if stale:
            self._adapt(stale)
        per_user = [self._cache[u][1] for u in users.tolist()]
        return {name: torch.stack([p[name] for p in per_user]) for name in per_user[0]}

    def _adapt(self, users: list[int]) -> None:
        learner = self.learner
        supports = [self._support(u) for u in users]
        if len(users) == 1 or not any(len(s) for s in supports):
            per_user = [self._adapt_one(u) for u in users]
            params = {k: torch.stack([p[k] for p in per_user]) for k in per_user[0]}
        else:
            empty = np.zeros(1, np.int64)
            taskset = _taskset(users, [s.item for s in supports],
                               [s.rating for s in supports], [empty] * len(users),
                               [np.zeros(1, np.float32)] * len(users))
            batch = pad_tasks(taskset, np.arange(len(users)), self.features.users,
                              self.features.items)
            params = learner.adapt(batch, self._steps()).params
        now = time.time()
        for j, user in enumerate(users):
            self._cache[user] = (self._key(user), {k: v[j] for k, v in params.items()})
            self.last_adapted[user] = now
            if self.users.get(user) is not None and len(self.users[user].items):
                self.adaptations += 1

    def _support(self, user: int) -> Interactions:
        state = self.users.get(user)
        if state is None or not self._adapts():
            return Interactions(np.zeros(0, np.int64), np.zeros(0, np.int64),
                                np.zeros(0, np.float32), np.zeros(0))
        return state.support(user)

    def _adapt_one(self, user: int) -> Params:
        """One user's adaptation without padding or ``torch.func`` (the service's hot
        path): :meth:`Learner.adapt_one` outside any transform."""
        learner = self.learner
        adapted, fixed = self._params()
        adapted = {k: v.detach() for k, v in adapted.items()}
        support = self._support(user)
        if not len(support) or self._steps() == 0:
            return adapted
        forward = learner.forward_fn()
        user_fields = self.features.users.take(torch.tensor(user), learner.device)
        item_fields = self.features.items.take(torch.from_numpy(support.item), learner.device)
        ratings = torch.from_numpy(support.rating).to(learner.device, learner.dtype)
        mask = torch.ones(len(support), dtype=torch.bool, device=learner.device)
        with torch.no_grad():
            inputs = (learner.model.body(user_fields, item_fields) if forward.head_only
                      else item_fields)
        with torch.enable_grad():
            task = ({} if forward.head_only else user_fields, inputs, ratings, mask)
            params = learner.adapt_one(forward, adapted,
                                       {k: v.detach() for k, v in fixed.items()}, task,
                                       steps=self._steps(), eager=True)
        return {k: v.detach() for k, v in params.items()}

    # ---- prediction -----------------------------------------------------------------
    @torch.no_grad()
    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted ratings of the (user, item) pairs, each user adapted to their
        current support set (with the learner's term from the support residuals, if it
        has one: ``ridge``'s neighbours)."""
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        out = self._predict_adapted(users, items)
        if self._corrects():
            for user in np.unique(users).tolist():
                rows = np.flatnonzero(users == user)
                out[rows] = self._corrected(user, items[rows], torch.from_numpy(out[rows])
                                            ).double().numpy()
        if self.config.item_shrinkage is not None:
            out = out + self._offsets_of(items)
        return out

    def _offsets_of(self, items: np.ndarray) -> np.ndarray:
        if self._offsets_stale:
            self.refit_offsets()
        return self.offsets.of(items)

    def _predict_adapted(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """:meth:`predict` without the term from the support residuals."""
        if not len(users):
            return np.zeros(0)
        user_fields = self.features.users.take(torch.from_numpy(users), self.learner.device)
        item_fields = self.features.items.take(torch.from_numpy(items), self.learner.device)
        model = self.learner.model
        if not self._adapts():
            return model(user_fields, item_fields).double().cpu().numpy()
        forward = self.learner.forward_fn()
        _, fixed = self._params()
        params = self.user_params(users)
        if forward.head_only:
            inputs = model.body(user_fields, item_fields)
            out = vmap(lambda p, x: forward({**fixed, **p}, None, x))(params, inputs)
        else:
            out = vmap(lambda p, u, i: forward({**fixed, **p}, u, i))(
                params, user_fields, item_fields)
        return out.double().cpu().numpy()

    @torch.no_grad()
    def score(self, user: int, items: np.ndarray | None = None) -> np.ndarray:
        """Scores of ``items`` (default: every item) for ``user`` (with the learner's
        term from the support residuals, if it has one: ``ridge``'s neighbours)."""
        user = check_request(user, 0, self.features.users.num_rows)
        return self._score(user, items)

    def _score(self, user: int, items: np.ndarray | None = None) -> np.ndarray:
        """:meth:`score` of a user already checked."""
        scores = self._score_adapted(user, items)
        corrects, offsets = self._corrects(), self.config.item_shrinkage is not None
        if not (corrects or offsets):  # the service's plain path: nothing to add
            return scores
        index = (np.arange(self.features.items.num_rows) if items is None
                 else np.asarray(items, dtype=np.int64))
        if corrects:
            scores = self._corrected(user, index, torch.from_numpy(scores)).double().numpy()
        if offsets:
            scores = scores + self._offsets_of(index)
        return scores

    def _corrects(self) -> bool:
        return self._adapts() and self.learner.corrects_with_residuals()

    def _corrected(self, user: int, items: np.ndarray, scores: torch.Tensor) -> torch.Tensor:
        """One user's ``scores`` of ``items`` with the learner's term from their support
        residuals after adaptation (:meth:`Learner.correct_scores`)."""
        support = self._support(user)
        if not len(support):
            return scores
        residual = support.rating - self._score_adapted(user, support.item)
        return self.learner.correct_scores(
            scores.to(self.learner.dtype), torch.from_numpy(items),
            torch.from_numpy(support.item.astype(np.int64)),
            torch.from_numpy(residual)).cpu()

    @torch.no_grad()
    def _score_adapted(self, user: int, items: np.ndarray | None = None) -> np.ndarray:
        """:meth:`score` without the term from the support residuals."""
        table = self.features.items
        user_fields = self.features.users.take(torch.tensor(user), self.learner.device)
        model = self.learner.model
        index = (torch.arange(table.num_rows) if items is None
                 else torch.from_numpy(np.asarray(items, dtype=np.int64)))
        if not self._adapts():
            return model(user_fields, table.take(index, self.learner.device)
                         ).double().cpu().numpy()
        forward = self.learner.forward_fn()
        _, fixed = self._params()
        params = {**fixed, **{k: v[0] for k, v in self.user_params(np.array([user])).items()}}
        if items is None and forward.head_only:
            # The hot path of a service: the item half of the body is cached, and so are
            # the item vectors of a two-tower head.
            scores = self._score_every_item(user_fields, params)
            if scores is not None:
                return scores.double().cpu().numpy()
            inputs = self._body_all_items(user_fields)
        else:
            item_fields = table.take(index, self.learner.device)
            inputs = (model.body(user_fields, item_fields) if forward.head_only
                      else item_fields)
        user_inputs = None if forward.head_only else user_fields
        return forward(params, user_inputs, inputs).double().cpu().numpy()

    def _body_all_items(self, user_fields: dict[str, torch.Tensor]) -> torch.Tensor:
        """``model.body(user, every item)``, reusing the items' embeddings while the
        model and the catalogue are unchanged (FeatureMLP's body is user part ++ item
        part)."""
        body = self.learner.model.body
        table = self.features.items
        if not self._body_splits():
            return body(user_fields,
                        table.take(torch.arange(table.num_rows), self.learner.device))
        item_part = self._cached("item_part", self._embed_every_item)
        if not len(body.user_fields):
            return item_part
        user_part = body._embed(body.user_fields, user_fields)
        return torch.cat([user_part.expand(item_part.shape[0], -1), item_part], dim=-1)

    def _body_splits(self) -> bool:
        body = self.learner.model.body
        return hasattr(body, "user_fields") and hasattr(body, "item_fields")

    def _embed_every_item(self) -> torch.Tensor:
        body, table = self.learner.model.body, self.features.items
        if not len(body.item_fields):
            return torch.zeros(table.num_rows, 0, device=self.learner.device)
        return body._embed(body.item_fields,
                           table.take(torch.arange(table.num_rows), self.learner.device))

    def _cached(self, name: str, build: Callable[[], torch.Tensor]) -> torch.Tensor:
        """``build()``, kept while the model and the catalogue are unchanged."""
        key = (self.model_version, self.features.items.num_rows, self.items_version)
        kept = self._item_cache.get(name)
        if kept is None or kept[0] != key:
            kept = self._item_cache[name] = (key, build())
        return kept[1]

    def _score_every_item(self, user_fields: dict[str, torch.Tensor], params: Params
                          ) -> torch.Tensor | None:
        """One user's scores of every item through a two-tower head's cached item
        vectors (a separable ``FactorHead``'s ``score_items``), the same as the head's
        forward over every item; None for any other head, or when the item tower is
        adapted per user."""
        head = self.learner.model.head
        if (not getattr(head, "separable", False) or not self._body_splits()
                or any(n.startswith("item.") for n in self._params()[0])):
            return None
        body = self.learner.model.body
        vectors = self._cached("item_vectors", lambda: head.item_vectors(
            params, self._cached("item_part", self._embed_every_item)))
        user_part = (body._embed(body.user_fields, user_fields) if len(body.user_fields)
                     else torch.zeros(0, device=self.learner.device))
        return head.score_items(params, user_part, vectors)

    def recommend(self, user: int, k: int = 10, exclude_seen: bool = True,
                  candidates: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top-``k`` (item index, score) for ``user`` among ``candidates`` (default: all
        items), leaving out every item the user has rated when ``exclude_seen``."""
        user = check_request(user, k, self.features.users.num_rows)
        if candidates is not None:
            check_items(candidates, self.features.items.num_rows, "candidate")
        items = (np.arange(self.features.items.num_rows) if candidates is None
                 else np.asarray(candidates, dtype=np.int64))
        scores = self._score(user, None if candidates is None else items)
        state = self.users.get(user)
        if exclude_seen and state is not None and len(state.seen):
            seen = state.seen_items()
            if candidates is None:  # items[i] == i: index the scores directly
                scores[seen[seen < len(scores)]] = -np.inf
            else:
                scores[np.isin(items, seen)] = -np.inf
        top = top_k(scores, k)
        return [(int(items[i]), float(scores[i])) for i in top if np.isfinite(scores[i])]

    def forget_adaptation(self, user: int) -> None:
        """Drop ``user``'s cached adaptation (their features changed); the item offsets
        are learned again at the next prediction."""
        self._cache.pop(user, None)
        self._offsets_stale = True

    def item_changed(self, item: int) -> None:
        """``item``'s features changed in place: rebuild the cached item vectors, and
        re-adapt (at their next prediction) the users whose kept support holds it (their
        adaptation key sums their support items' versions, :meth:`_key`)."""
        self.items_version += 1
        self._item_versions[item] = self._item_versions.get(item, 0) + 1
        self._offsets_stale = True

    def state_of(self, user: int) -> UserState | None:
        """The kept state of ``user`` (None if they have no events)."""
        return self.users.get(user)


class ItemOffsets:
    """Per-item offsets learned from a stream of residuals (see
    :attr:`OnlineConfig.item_shrinkage`): the item's sum of residuals, each less its
    user's shrunk mean residual before it, over (its count + ``shrinkage``). The events
    themselves are logged (user, item, rating: 20 bytes each), so that the offsets can be
    learned again when the model or a user's or item's features change."""

    def __init__(self, shrinkage: float) -> None:
        self.shrinkage = shrinkage
        self.item_sum = np.zeros(0)
        self.item_count = np.zeros(0, dtype=np.int64)
        self.user_sum: dict[int, float] = {}
        self.user_count: dict[int, int] = {}
        self.log_users, self.log_items = array("q"), array("q")
        self.log_ratings = array("f")

    def logged(self) -> Interactions:
        """Every event learned so far, in order."""
        return Interactions(_copied(self.log_users, np.int64),
                            _copied(self.log_items, np.int64),
                            _copied(self.log_ratings, np.float32),
                            np.full(len(self.log_users), np.nan))

    def learn(self, events: Interactions, predictions: np.ndarray) -> None:
        """Take ``events`` in order, with the model's ``predictions`` of them."""
        self.log_users.extend(events.user.tolist())
        self.log_items.extend(events.item.tolist())
        self.log_ratings.extend(events.rating.tolist())
        if len(events) and int(events.item.max()) >= len(self.item_sum):
            grow = max(int(events.item.max()) + 1, 2 * len(self.item_sum))
            self.item_sum = np.concatenate([self.item_sum, np.zeros(grow - len(self.item_sum))])
            self.item_count = np.concatenate(
                [self.item_count, np.zeros(grow - len(self.item_count), dtype=np.int64)])
        residuals = events.rating.astype(np.float64) - predictions
        for user, item, residual in zip(events.user.tolist(), events.item.tolist(),
                                        residuals.tolist(), strict=True):
            n = self.user_count.get(user, 0)
            total = self.user_sum.get(user, 0.0)
            self.item_sum[item] += residual - total / (n + self.shrinkage) if n else residual
            self.item_count[item] += 1
            self.user_sum[user] = total + residual
            self.user_count[user] = n + 1

    def of(self, items: np.ndarray) -> np.ndarray:
        """The offsets of ``items`` (0 for an item with no event)."""
        items = np.asarray(items, dtype=np.int64)
        out = np.zeros(len(items))
        known = items < len(self.item_sum)
        index = items[known]
        out[known] = self.item_sum[index] / (self.item_count[index] + self.shrinkage
                                             ).clip(min=1e-12)
        return out


def _copied(values: array, dtype: type) -> np.ndarray:
    """An :class:`array.array` as a numpy array of its own."""
    return np.frombuffer(values, dtype=dtype).copy() if len(values) else np.zeros(0, dtype)


def _taskset(users: list[int], support_items: list[np.ndarray],
             support_ratings: list[np.ndarray], query_items: list[np.ndarray],
             query_ratings: list[np.ndarray]) -> TaskSet:
    """A :class:`TaskSet` from per-task arrays (a user may appear in several tasks)."""

    def rows(items: list[np.ndarray], ratings: list[np.ndarray]
             ) -> tuple[Interactions, np.ndarray]:
        sizes = np.array([len(i) for i in items], dtype=np.int64)
        owner = np.repeat(np.asarray(users, dtype=np.int64), sizes)
        flat = Interactions(owner, np.concatenate(items).astype(np.int64),
                            np.concatenate(ratings).astype(np.float32),
                            np.full(int(sizes.sum()), np.nan))
        return flat, np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    support, support_offsets = rows(support_items, support_ratings)
    query, query_offsets = rows(query_items, query_ratings)
    return TaskSet(np.asarray(users, dtype=np.int64), support, support_offsets, query,
                   query_offsets)
