"""The surface every learner shares: ``fit``, ``adapt``, ``predict``, ``predict_tasks``,
``score_items``, ``recommend``, ``save`` / ``load``.

A learner wraps a :class:`~metarec.models.RatingModel`. Hyper-parameters live in a
:class:`LearnerConfig`; learned state ends in ``_``. Data is a :class:`TaskSet` plus the
side-feature tables of a :class:`~metarec.data.Dataset` (anything with ``users`` and
``items`` :class:`FeatureTable` attributes).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load as load_numpy
from safetensors.numpy import save as save_numpy
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch.func import vmap
from torch.optim.swa_utils import get_ema_multi_avg_fn
from torch.utils._pytree import tree_map

from metarec.data.dataset import FeatureTable, Fields, Interactions
from metarec.errors import CheckpointError, ConfigError, first_line
from metarec.files import replacing
from metarec.learners.config import LearnerConfig
from metarec.learners.inner_loop import Forward, Params, StepSizes, adapt
from metarec.learners.ranking import check_items, check_ratings, check_request, top_k
from metarec.models.base import RatingModel, model_from_config
from metarec.tasks.batch import TaskBatch, pad_tasks
from metarec.tasks.id_dropout import hidden_ids, hide_ids
from metarec.tasks.local_rows import gather, localise, scatter
from metarec.tasks.taskset import TaskSet

log = logging.getLogger(__name__)

MEMORY_FIELDS = ("user", "item", "rating", "timestamp")
"""The columns of the training ratings a learner with a memory saves beside its weights."""

Progress = Callable[[dict[str, Any]], None]
"""Called after every epoch with ``{"epoch", "train_loss", "val_loss"}``."""


class HasFeatures(Protocol):
    users: FeatureTable
    items: FeatureTable


def check_fits(model: torch.nn.Module, features: HasFeatures, what: str) -> None:
    """Raise :class:`CheckpointError` unless ``model`` was built for the fields of
    ``features`` (names, kinds, category values) and, where it has id embeddings, for as
    many users and items; ``what`` names the checkpoint in the message."""
    model_config = model.config()  # type: ignore[operator]
    name = getattr(features, "name", "")
    data = f"the data set {name}" if name else "the data set"
    for side, table in (("user", features.users), ("item", features.items)):
        saved = {s["name"]: (s["kind"], tuple(s.get("vocab", ())))
                 for s in model_config.get(f"{side}_specs", [])}
        have = {s.name: (s.kind, tuple(s.vocab)) for s in table.specs}
        differ = [n for n, spec in saved.items() if have.get(n) != spec]
        if differ:  # a field the model left out (exclude_fields) may be in the data
            raise CheckpointError(f"the {what}'s {side} fields {differ} differ from those "
                                  f"of {data} ({list(saved)} vs {list(have)}): use the "
                                  "data set it was trained on")
        ids = int(model_config.get(f"num_{side}s", 0) or 0)
        if ids and ids != table.num_rows:
            raise CheckpointError(f"the {what}'s model has {ids} {side} ids but {data} "
                                  f"has {table.num_rows} {side}s: use the data set it was "
                                  "trained on")


@dataclass
class Adapted:
    """Per-user parameters after adaptation: ``params`` have a leading task dimension and
    replace the model's parameters of the same name (``head.``-relative when
    ``head_only``)."""

    params: Params
    head_only: bool


class Learner(ABC):
    """Base of every learner. Subclasses define :meth:`fit_batches` (training) and the
    adaptation scope (which parameters a user's support set adapts, and how)."""

    name: ClassVar[str] = "learner"
    scope: ClassVar[str] = "all"
    """Parameters adapted per user: ``all`` (every parameter but id-embedding tables, see
    :meth:`RatingModel.memory_names`), ``head`` or ``output``."""
    first_order: ClassVar[bool] = False
    closed_form_adaptation: ClassVar[bool] = False
    """Whether adaptation is a closed-form solve, which alone supports ``adapt_loss =
    "mae"`` (a robust solve), ``size_exponent`` (a prior scaled by the support size),
    ``memory_precision`` (a trained user's training ratings in the solve),
    ``neighbours`` (a neighbourhood term on the solve's residuals) and ``rank_weight`` (a
    listwise term in the query loss)."""

    def __init__(self, model: RatingModel, config: LearnerConfig | None = None) -> None:
        self.model = model
        self.config = config or LearnerConfig()
        self.history_: list[dict[str, Any]] = []
        self.features_: HasFeatures | None = None
        self.known_: Interactions | None = None
        self.average_: list[torch.Tensor] | None = None
        self.dtype = getattr(torch, self.config.dtype)
        self.device = self.config.torch_device()
        self.model.to(device=self.device, dtype=self.dtype)
        if self.config.adapt_loss != "mse" and not self.closed_form_adaptation:
            raise ConfigError(f"{self.name} adapts by gradient steps on squared error; "
                              f"adapt_loss={self.config.adapt_loss!r} is for ridge (set it "
                              "in [per_learner.ridge])")
        if self.config.size_exponent and not self.closed_form_adaptation:
            raise ConfigError(f"{self.name} has no prior precision to scale: size_exponent "
                              "is for ridge (set it in [per_learner.ridge])")
        if self.config.memory_precision is not None and not self.closed_form_adaptation:
            raise ConfigError(f"{self.name} keeps no memory of trained users: "
                              "memory_precision is for ridge (set it in [per_learner.ridge])")
        if self.config.neighbours and not self.closed_form_adaptation:
            raise ConfigError(f"{self.name} takes no neighbourhood term: neighbours is for "
                              "ridge (set it in [per_learner.ridge])")
        if self.config.rank_weight > 0 and not self.closed_form_adaptation:
            raise ConfigError(f"{self.name} takes no ranking term: rank_weight is for ridge "
                              "(set it in [per_learner.ridge])")
        if self.config.item_id_dropout > 0 and not model.has_item_id_embedding():
            raise ConfigError(f"learner.item_id_dropout = {self.config.item_id_dropout} "
                              f"needs a model with an item-id embedding ({type(model).__name__}"
                              " has none): set model.item_id_embedding = true (FeatureMLP, "
                              "FeatureMF) or item_id_dropout = 0")

    # ---- training -------------------------------------------------------------------
    def fit(self, train: TaskSet, features: HasFeatures, val: TaskSet | None = None, *,
            progress: Progress | None = None) -> Learner:
        """Train on ``train`` tasks; early-stop on ``val`` (:meth:`validation_loss`)."""
        known = train.all_ratings()
        check_ratings(known, features, "training rating")
        if val is not None:
            check_ratings(val.all_ratings(), features, "validation rating")
        torch.manual_seed(self.config.seed)
        self.history_ = []
        self.features_ = features
        self.known_ = known
        self.average_ = None
        with self.while_training():
            self._train_epochs(train, features, val, progress)
        self.model.eval()
        self.after_training(val)
        return self

    def _train_epochs(self, train: TaskSet, features: HasFeatures, val: TaskSet | None,
                      progress: Progress | None) -> None:
        """:meth:`fit`'s epochs, early stopping and restore of the best state."""
        best, best_state, waited = float("inf"), None, 0
        for epoch in range(self.config.epochs):
            self.model.train()
            train_loss = self.fit_epoch(train, features, epoch)
            record: dict[str, Any] = {"epoch": epoch + 1, "train_loss": train_loss,
                                      **self.scalar_parameters()}
            if val is not None and len(val):
                with self.averaged():
                    record.update(validation_record(self.validation_errors(val),
                                                    self.config.loss))
                    if record["val_loss"] < best - 1e-6:
                        best, waited = record["val_loss"], 0
                        best_state = self.state_dict()  # already a copy
                    else:
                        waited += 1
            self.history_.append(record)
            if progress is not None:
                progress(record)
            if self.config.patience is not None and waited >= self.config.patience:
                break
        self.load_fitted_state(best_state)

    @contextmanager
    def while_training(self) -> Iterator[None]:
        """Inside, the learner predicts as training validates it: without what is fitted
        after training (``ridge``'s neighbourhood term); nothing changes by default."""
        yield

    def after_training(self, val: TaskSet | None) -> None:  # noqa: B027 (a hook, no-op)
        """Fit, on the validation tasks ``val``, what is fitted after training (``ridge``'s
        neighbourhood term); nothing by default."""

    def load_fitted_state(self, best_state: dict[str, torch.Tensor] | None) -> None:
        """End a fit: load ``best_state`` (the best validated weights), else the moving
        average of the weights when there is one, else keep the weights training left."""
        if best_state is None and self.average_ is not None:
            with self.averaged():
                best_state = self.state_dict()
        if best_state is not None:
            self.load_state_dict(best_state)

    # ---- weight averaging (``average_decay``) ----------------------------------------
    def averaged_parameters(self) -> dict[str, torch.Tensor]:
        """The tensors the optimiser trains, by name: what ``average_decay`` averages."""
        return dict(self.model.named_parameters())

    def update_average(self) -> None:
        """Fold the trained tensors into their moving average (training loops call it
        after every optimiser step; nothing when ``average_decay`` is 0). The first call
        starts the average at the weights of that step."""
        if self.config.average_decay == 0:
            return
        current = [p.detach() for p in self.averaged_parameters().values()]
        if self.average_ is None:
            self.average_ = [p.clone() for p in current]
        else:
            get_ema_multi_avg_fn(self.config.average_decay)(self.average_, current, None)

    @contextmanager
    def averaged(self) -> Iterator[None]:
        """Inside, the trained tensors hold their moving average (unchanged without one);
        the weights training left are restored on exit."""
        if self.average_ is None:
            yield
            return
        params = list(self.averaged_parameters().values())
        trained = [p.detach().clone() for p in params]
        with torch.no_grad():
            for param, average in zip(params, self.average_, strict=True):
                param.copy_(average)
        try:
            yield
        finally:
            with torch.no_grad():
                for param, weights in zip(params, trained, strict=True):
                    param.copy_(weights)

    def scalar_parameters(self) -> dict[str, float]:
        """The learner's own scalar meta-parameters by name (e.g. ``ridge``'s learned size
        exponent), which every epoch's record carries; none by default."""
        return {}

    @abstractmethod
    def fit_epoch(self, train: TaskSet, features: HasFeatures, epoch: int) -> float:
        """One pass over the training tasks; returns the mean training loss."""

    def validation_errors(self, tasks: TaskSet) -> dict[str, float]:
        """Mean squared (``mse``) and absolute (``mae``) error on the query sets of
        ``tasks`` after adaptation."""
        error = self.predict_tasks(tasks) - tasks.query.rating
        return {"mse": float(np.mean(error ** 2)), "mae": float(np.mean(np.abs(error)))}

    def validation_loss(self, tasks: TaskSet) -> float:
        """The :meth:`validation_errors` entry named by ``config.loss``."""
        return self.validation_errors(tasks)[self.config.loss]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every learned tensor (model parameters and learner-owned ones)."""
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)

    def hidden_item_ids(self, features: HasFeatures, key: Sequence[int]
                        ) -> torch.Tensor | None:
        """The item ids that training step ``key`` hides (``item_id_dropout``; seeded by
        the learner's seed and ``key``), or None when nothing is hidden."""
        if self.config.item_id_dropout == 0:
            return None
        return hidden_ids(features.items.num_rows, self.config.item_id_dropout,
                          (self.config.seed, *key))

    def training_items(self, items: Fields, features: HasFeatures, key: Sequence[int]
                       ) -> Fields:
        """``items`` (the item fields of training step ``key``) with the ids that
        ``item_id_dropout`` hides there hidden; unchanged when it is off."""
        hidden = self.hidden_item_ids(features, key)
        return items if hidden is None else hide_ids(items, hidden)

    def on_device(self, batch: TaskBatch) -> TaskBatch:
        """``batch`` on the learner's device, its floats in the learner's dtype."""
        return batch.to(device=self.device, dtype=self.dtype)

    # ---- adaptation -----------------------------------------------------------------
    def adapted_names(self) -> list[str]:
        """Names of the parameters a user's support set adapts."""
        cached = self.__dict__.get("_adapted_names")
        if cached is None:
            cached = self.__dict__["_adapted_names"] = self._scope_names()
        return list(cached)

    def _scope_names(self) -> list[str]:
        if self.scope == "head":
            return self.model.head_names()
        if self.scope == "output":
            return self.model.output_names()
        memory = set(self.model.memory_names())
        return [n for n, _ in self.model.named_parameters() if n not in memory]

    def head_only(self) -> bool:
        """Whether adaptation can run on precomputed body embeddings."""
        return self.model.splits_head and all(
            n.startswith("head.") for n in self.adapted_names())

    def forward_fn(self) -> Forward:
        return Forward(self.model, head_only=self.head_only())

    def split_params(self) -> tuple[Params, Params]:
        """(adapted, fixed) parameter dicts, ``head.``-relative when head-only."""
        params = dict(self.model.named_parameters())
        names = set(self.adapted_names())
        if self.head_only():
            head = {n[len("head."):]: p for n, p in params.items() if n.startswith("head.")}
            adapted = {n: p for n, p in head.items() if f"head.{n}" in names}
            fixed = {n: p for n, p in head.items() if f"head.{n}" not in names}
            return adapted, fixed
        return ({n: p for n, p in params.items() if n in names},
                {n: p for n, p in params.items() if n not in names})

    def step_sizes(self) -> StepSizes:
        """The inner learning rate(s); Meta-SGD overrides with learned tensors."""
        return self.config.inner_lr

    def adapt_one(self, forward: Forward, start: Params, fixed: Params, task: tuple, *,
                  steps: int, eager: bool = False) -> Params:
        """One task's parameters adapted to its support set ``task`` (the first four
        entries of :meth:`task_inputs`, no batch dimension), from ``start``: ``steps`` of
        first-order SGD with :meth:`step_sizes` (no outer gradient is taken through it).
        ``eager``: outside any ``torch.func`` transform (serving one user)."""
        lr = self.step_sizes()
        if eager and isinstance(lr, dict):
            lr = {k: v.detach() for k, v in lr.items()}
        return adapt(forward, start, fixed, *task[:4], steps=steps, lr=lr, first_order=True,
                     eager=eager)

    def task_inputs(self, batch: TaskBatch, *, query: bool = True) -> tuple:
        """The per-task tuple the inner loop maps over (body embeddings if head-only);
        without ``query`` only its first four entries (user and support set)."""
        if self.head_only():
            body = self.model.body
            support = ({}, body(batch.user_fields, batch.support_fields),
                       batch.support_ratings, batch.support_mask)
            if not query:
                return support
            return (*support, body(batch.user_fields, batch.query_fields),
                    batch.query_ratings, batch.query_mask)
        support = (batch.user_fields, batch.support_fields, batch.support_ratings,
                   batch.support_mask)
        if not query:
            return support
        return (*support, batch.query_fields, batch.query_ratings, batch.query_mask)

    def localise(self, batch: TaskBatch) -> tuple[TaskBatch, dict[str, torch.Tensor]]:
        """``batch`` with task-local codes for the adapted embedding tables, and each task's
        rows of them (:func:`~metarec.tasks.local_rows.localise`); unchanged and ``{}``
        when no table is adapted (head-only learners, models without field tables)."""
        if self.head_only():
            return batch, {}
        adapted = set(self.adapted_names())
        tables = {n: v for n, v in self.model.embedding_tables().items() if n in adapted}
        return localise(batch, tables)

    def adapt(self, batch: TaskBatch, steps: int | None = None) -> Adapted:
        """Adapt to each task's support set (``config.inner_steps`` steps by default)."""
        batch = self.on_device(batch)
        local_batch, rows = self.localise(batch)
        params = self._adapt_tasks(local_batch, rows, steps)
        if rows:
            params.update(scatter(dict(self.model.named_parameters()), params, rows))
        return Adapted(params, self.head_only())

    def _adapt_tasks(self, batch: TaskBatch, rows: dict[str, torch.Tensor],
                     steps: int | None) -> Params:
        """Adapted parameters of the tasks of ``batch`` (already cast to the learner's dtype
        and localised): the tables of ``rows`` come back as per-task row subsets
        ``[B, U, dim]``."""
        steps = self.config.inner_steps if steps is None else steps
        forward = self.forward_fn()
        adapted, fixed = self.split_params()
        with torch.no_grad():
            inputs = self.task_inputs(batch, query=False)
            local = gather(adapted, rows)

        def one(start: Params, task: tuple, eager: bool = False) -> Params:
            return self.adapt_one(forward, start, fixed, task, steps=steps, eager=eager)

        with torch.enable_grad():
            if len(batch) == 1:
                # One task (serving a user): the same inner loop without vmap's wrapping,
                # from detached parameters (no graph back to the model is needed here).
                start = {k: v.detach() for k, v in adapted.items()}
                start.update({k: v[0] for k, v in local.items()})
                params = one(start, tree_map(lambda t: t[0], inputs), eager=True)
                params = {k: v.unsqueeze(0) for k, v in params.items()}
            else:
                dims = {k: 0 if k in local else None for k in adapted}
                params = vmap(one, in_dims=(dims, 0))({**adapted, **local}, inputs)
        return {k: v.detach() for k, v in params.items()}

    @torch.no_grad()
    def predict(self, adapted: Adapted, user: Fields, item: Fields) -> torch.Tensor:
        """Ratings ``[B, N]`` of items ``item`` (``[B, N]`` fields) for the adapted users."""
        forward = self.forward_fn()
        _, fixed = self.split_params()
        item_inputs: Fields | torch.Tensor = item
        user_inputs: Fields | None = user
        if adapted.head_only:
            item_inputs, user_inputs = self.model.body(user, item), {}

        def one(params: Params, u: Fields | None, i: Fields | torch.Tensor) -> torch.Tensor:
            return forward({**fixed, **params}, u, i)

        return vmap(one)(adapted.params, user_inputs, item_inputs)

    def predict_tasks(self, tasks: TaskSet, steps: int | None = None) -> np.ndarray:
        """A prediction for every query row of ``tasks`` (aligned with ``tasks.query``),
        after adapting each task to its support set."""
        def adapt_chunk(batch: TaskBatch, rows: dict[str, torch.Tensor], index: np.ndarray
                        ) -> Adapted:
            return Adapted(self._adapt_tasks(batch, rows, steps), self.head_only())

        return self._predict_chunks(tasks, adapt_chunk)

    def _predict_chunks(self, tasks: TaskSet,
                        adapt_chunk: Callable[[TaskBatch, dict[str, torch.Tensor],
                                               np.ndarray], Adapted],
                        widest: int = 1) -> np.ndarray:
        """:meth:`predict_tasks` in chunks of tasks: ``adapt_chunk(batch, rows, index)``
        adapts the localised batch of tasks ``index``; ``widest``: the most rows any other
        input of a chunk pads to (it bounds the chunk size too)."""
        features = self._features()
        out = np.empty(len(tasks.query), dtype=np.float64)
        # Similar sizes share a chunk (less padding); results go back to their rows.
        order = np.argsort(tasks.support_sizes + tasks.query_sizes, kind="stable")
        # Bound the padded rows of a chunk (ranking a whole catalogue has long queries).
        widest = int(max(tasks.query_sizes.max(initial=1), tasks.support_sizes.max(initial=1),
                         widest))
        chunk = max(1, min(self.config.eval_batch_size, 50_000 // widest))
        for start in range(0, len(tasks), chunk):
            index = order[start:start + chunk]
            batch = self.on_device(pad_tasks(tasks, index, features.users, features.items))
            # Task-local tables (their rows cover the query's codes too): no full copies.
            batch, rows = self.localise(batch)
            adapted = adapt_chunk(batch, rows, index)
            pred = self.correct_predictions(
                batch, adapted, self.predict(adapted, batch.user_fields, batch.query_fields))
            sizes = tasks.query_sizes[index]
            rows = np.repeat(tasks.query_offsets[index] - np.cumsum(sizes) + sizes, sizes)
            out[rows + np.arange(sizes.sum())] = pred[batch.query_mask].double().cpu().numpy()
        return out

    def correct_predictions(self, batch: TaskBatch, adapted: Adapted, pred: torch.Tensor
                            ) -> torch.Tensor:
        """The query predictions ``pred`` of ``batch`` after adaptation (``adapted``), with
        any term the learner adds beyond its model (``ridge``'s neighbours); as they are by
        default."""
        return pred

    def corrects_with_residuals(self) -> bool:
        """Whether predictions take a term from the support residuals after adaptation
        (``ridge``'s neighbours), which :meth:`correct_scores` adds; False by default."""
        return False

    def correct_scores(self, pred: torch.Tensor, items: torch.Tensor,
                       support_items: torch.Tensor, support_residuals: torch.Tensor
                       ) -> torch.Tensor:
        """One user's scores ``pred`` of ``items`` with the term of
        :meth:`correct_predictions`, from their support ``support_items`` and its
        residuals after adaptation (for online scoring); as they are by default."""
        return pred

    def score_items(self, user: int, support: Interactions, items: np.ndarray) -> np.ndarray:
        """Scores of ``items`` for ``user`` after adapting to ``support`` (their ratings)."""
        features = self._features()
        user = check_request(user, 0, features.users.num_rows)
        check_ratings(support, features, "support rating")
        check_items(items, features.items.num_rows)
        return self._score_items(user, support, items)

    def _score_items(self, user: int, support: Interactions, items: np.ndarray
                     ) -> np.ndarray:
        """:meth:`score_items` of a user already checked."""
        items = np.asarray(items, dtype=np.int64)
        query = Interactions(np.full(len(items), user), items, np.zeros(len(items), np.float32),
                             np.full(len(items), np.nan))
        task = TaskSet(np.array([user]), support, np.array([0, len(support)]), query,
                       np.array([0, len(items)]))
        return self.predict_tasks(task)

    def recommend(self, user: int, k: int = 10, exclude_seen: bool = True,
                  support: Interactions | None = None) -> list[tuple[int, float]]:
        """Top-``k`` (item index, score) for ``user``, adapted to ``support`` (default: the
        user's ratings seen in training)."""
        features = self._features()
        user = check_request(user, k, features.users.num_rows)
        if support is None:
            known = self.known_
            support = known.subset(known.user == user) if known is not None else _empty()
        else:
            check_ratings(support, features, "support rating")
        items = np.arange(features.items.num_rows)
        scores = self._score_items(user, support, items)
        if exclude_seen and len(support):
            scores[np.unique(support.item)] = -np.inf
        top = top_k(scores, k)
        return [(int(i), float(scores[i])) for i in top if np.isfinite(scores[i])]

    def _features(self) -> HasFeatures:
        if self.features_ is None:
            raise CheckpointError("this learner has no feature tables: call fit() first, or "
                                  "pass features= to load()")
        return self.features_

    # ---- persistence ----------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``weights.safetensors``, ``learner.json`` and, for a fitted learner, the
        ratings it was trained on (``memory.safetensors``: :meth:`recommend`'s default
        support and exclusions, ``ridge``'s memory and neighbours) into folder ``path``."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.contiguous().cpu() for k, v in self.state_dict().items()}
        digests = {"weights.safetensors": _write_file(folder / "weights.safetensors",
                                                      save_tensors(state))}
        memory = folder / "memory.safetensors"
        if self.known_ is not None:
            # The training ratings: recommend()'s default support and exclusions, and
            # ridge's memory and its neighbours' similarities.
            digests[memory.name] = _write_file(memory, save_numpy(_compact(self.known_)))
        else:  # an unfitted learner: no memory of an earlier save may stay beside it
            memory.unlink(missing_ok=True)
        meta = {"learner": self.name, "config": self.config.to_dict(),
                "model": self.model.config(), "history": self.history_, "sha256": digests}
        with replacing(folder / "learner.json") as temporary:
            temporary.write_text(json.dumps(meta, indent=2))
        return folder

    @staticmethod
    def load(path: str | Path, features: HasFeatures | None = None,
             device: str | None = None) -> Learner:
        """Load a learner written by :meth:`save` (any learner kind), on ``device``
        (``"cpu"``, ``"cuda"``, ``"auto"``); ``features`` (the data set it is to run on)
        must have the fields it was trained with, and as many users and items where the
        model has id embeddings (:func:`check_fits`; the service attaches its growing
        catalogue after loading instead). By default on the device it was trained on,
        or on the CPU when this machine has no such device (a GPU-trained checkpoint
        served on a CPU host); an explicit ``device`` that is missing is an error."""
        from metarec.learners.registry import learner_class

        folder = Path(path)
        meta_path, weights_path = folder / "learner.json", folder / "weights.safetensors"
        if not meta_path.is_file() or not weights_path.is_file():
            raise CheckpointError(f"{folder}: not a saved learner (expected learner.json and "
                                  "weights.safetensors)")
        try:
            meta = json.loads(meta_path.read_text())
            model = model_from_config(meta["model"])
            config = LearnerConfig.from_dict(meta["config"])
            kind = learner_class(meta["learner"])
            digests = meta.get("sha256", {})
            if not isinstance(digests, dict):
                raise TypeError(f"sha256 is {type(digests).__name__}, not an object")
        except (OSError, ValueError, KeyError, TypeError, ConfigError, CheckpointError) as error:
            raise CheckpointError(f"{meta_path}: not a learner this version can read "
                                  f"({first_line(error)})") from error
        if device is not None:
            config = replace(config, device=device)
        else:
            try:
                config.torch_device()
            except ConfigError:
                log.info("%s was trained on %s, which this machine lacks: loading it on "
                         "the CPU", folder, config.device)
                config = replace(config, device="cpu")
        learner = kind(model, config)
        try:
            state = load_tensors(_read_file(weights_path, digests))
            learner.load_state_dict({k: v.to(learner.dtype) if v.is_floating_point() else v
                                     for k, v in state.items()})
        except (OSError, RuntimeError, KeyError, ValueError, SafetensorError) as error:
            raise CheckpointError(f"{weights_path}: does not fit the {meta['learner']} "
                                  f"learner and model of {meta_path.name} "
                                  f"({first_line(error)})") from error
        learner.history_ = meta.get("history", [])
        if features is not None:
            check_fits(learner.model, features, f"checkpoint {folder}")
        learner.features_ = features
        memory_path = folder / "memory.safetensors"
        if memory_path.is_file() or memory_path.name in digests:  # recorded: must be there
            try:
                memory = load_numpy(_read_file(memory_path, digests))
                learner.known_ = Interactions(memory["user"].astype(np.int64),
                                              memory["item"].astype(np.int64),
                                              memory["rating"], memory["timestamp"])
            except (OSError, KeyError, ValueError, SafetensorError) as error:
                raise CheckpointError(f"{memory_path}: unreadable training ratings "
                                      f"({first_line(error)})") from error
        learner.model.eval()
        return learner


def _write_file(path: Path, data: bytes) -> str:
    """Write ``data`` to ``path`` in one step (:func:`replacing`); its SHA-256, for
    ``learner.json``."""
    with replacing(path) as temporary:
        temporary.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _read_file(path: Path, digests: dict[str, str]) -> bytes:
    """The bytes of ``path``, checked against the SHA-256 that ``learner.json`` records
    for it (a checkpoint written before the digests were recorded has none to check)."""
    data = path.read_bytes()
    expected = digests.get(path.name)
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise CheckpointError(f"{path}: not the file learner.json was saved with (its "
                              "SHA-256 differs): damaged, half-saved, or saved over while "
                              "being loaded")
    return data


def _compact(ratings: Interactions) -> dict[str, np.ndarray]:
    """The columns of ``ratings`` to save: user and item indices as int32 where they fit
    (20 bytes a rating instead of 28; :meth:`Learner.load` reads them back as int64)."""
    out = {f: np.ascontiguousarray(getattr(ratings, f)) for f in MEMORY_FIELDS}
    for f in ("user", "item"):
        if not len(out[f]) or int(out[f].max()) < np.iinfo(np.int32).max:
            out[f] = out[f].astype(np.int32)
    return out


def find_saved_learner(folder: str | Path, learner: str | None = None) -> Path:
    """The saved learner folder to load: ``folder`` itself when it holds
    ``learner.json``, else the one in ``folder/checkpoints/`` that ``learner`` names -- a
    checkpoint folder (``maml-r-seed3``) or a learner (``maml-r``: its lowest seed). With
    no ``learner``, the only learner there (its lowest seed). A :class:`CheckpointError`
    lists the saved ones when none fits or several learners do."""
    folder = Path(folder)
    if (folder / "learner.json").is_file():
        return folder
    saved = sorted(p.parent for p in (folder / "checkpoints").glob("*/learner.json"))
    have = ", ".join(p.name for p in saved) or "none"
    names = {re.sub(r"-seed\d+$", "", p.name) for p in saved}
    if learner is None and len(names) > 1:
        raise CheckpointError(f"{folder}: several learners saved ({have}); choose one with "
                              "--learner NAME")
    chosen = [p for p in saved if p.name == learner]
    if not chosen:
        name = learner if learner is not None else next(iter(names), "")
        seeded = [p for p in saved if re.fullmatch(rf"{re.escape(name)}-seed\d+", p.name)]
        chosen = sorted(seeded, key=lambda p: int(p.name.rsplit("-seed", 1)[1])) or (
            saved if learner is None else [])
    if not chosen:
        what = "no saved learner" + (f" {learner!r}" if learner else "")
        raise CheckpointError(f"{folder}: {what} (learner.json) here or in "
                              f"checkpoints/<name>/; saved there: {have}")
    return chosen[0]


def _empty() -> Interactions:
    return Interactions(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32),
                        np.zeros(0))


def validation_record(errors: dict[str, float], loss: str) -> dict[str, float]:
    """An epoch record's validation entries: ``val_mse``, ``val_mae`` and ``val_loss``, the
    one of them named by ``loss`` (what early stopping watches)."""
    return {"val_loss": errors[loss], **{f"val_{name}": v for name, v in errors.items()}}
