"""Knowledge distillation: a small student learns from a trained teacher.

The teacher is any fitted metarec learner, or several (an ensemble: their predictions
are averaged). The student is a smaller model trained by a student learner:

* ``pretrain`` student (plain distillation): minibatches (``batch_size`` rows) of the
  training ratings plus ``distill_pairs`` (user, item) pairs of training users drawn
  uniformly (the teacher labels them; a pair may happen to be rated too), one pass over
  both per epoch; the loss is ``alpha * MSE(student, teacher)`` over every row plus
  ``(1 - alpha) * MSE(student, rating)`` over the rated rows, plus
  ``hint_weight * MSE(P(student body), teacher body)`` where ``P`` is a learned linear
  map from the student's concatenated embeddings to the teacher's (the teacher's
  predictions are its global, unadapted ones).
* meta-learner student (meta-distillation, e.g. ``maml-r``): each meta-batch's query
  loss after adaptation becomes ``(1 - alpha) * MSE(pred, rating) + alpha * MSE(pred,
  teacher)`` where the teacher's targets are its ADAPTED predictions (its own ``adapt`` on
  the same support set, then ``predict`` on the query items), so the student also learns
  to adapt like the teacher.

With ``loss = "mae"`` in the learner config, absolute error replaces MSE in the rating and
teacher terms (the hint stays squared).

After ``fit`` the :class:`Distill` learner is the student: ``adapt`` / ``predict`` /
``predict_tasks`` / ``save`` go to it, and the teacher is not needed any more.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metarec.data.dataset import Fields
from metarec.errors import CheckpointError, ConfigError
from metarec.learners.base import Adapted, HasFeatures, Learner, Progress
from metarec.learners.config import LearnerConfig
from metarec.learners.inner_loop import masked_loss
from metarec.learners.meta_learner import MetaLearner
from metarec.learners.pretrain import Pretrain
from metarec.learners.registry import learner_class
from metarec.learners.reptile import Reptile
from metarec.models.base import RatingModel
from metarec.models.feature_mlp import FeatureMLP
from metarec.tasks.batch import TaskBatch, pad_tasks
from metarec.tasks.taskset import TaskSet


@dataclass
class DistillConfig:
    """Distillation settings: ``alpha`` weighs the teacher term against the ratings;
    ``hint_weight`` > 0 adds the embedding-layer hint loss (FeatureMLP teacher and student);
    ``distill_pairs`` (user, item) pairs of training users are drawn uniformly (once, with
    ``seed``; a pair may happen to be rated too) as extra teacher-only rows;
    ``student_learner`` trains the student (``pretrain`` = plain distillation, a
    meta-learner = meta-distillation)."""

    alpha: float = 0.5
    hint_weight: float = 0.0
    distill_pairs: int = 0
    student_learner: str = "pretrain"
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"distill.alpha must be in [0, 1], got {self.alpha}")
        if self.hint_weight < 0 or self.distill_pairs < 0:
            raise ConfigError("distill.hint_weight and distill.distill_pairs must be >= 0")
        cls = learner_class(self.student_learner)
        if issubclass(cls, Reptile):
            raise ConfigError("meta-distillation needs a query loss: use maml, fomaml, "
                              "maml-r, anil, metasgd or ridge as distill.student_learner, "
                              "not reptile")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DistillConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown [distill] setting(s) {unknown}; known: {sorted(known)}")
        return cls(**values)


def parameter_count(model: torch.nn.Module) -> int:
    """Number of learned scalars of ``model``."""
    return sum(p.numel() for p in model.parameters())


def check_student(student: RatingModel, teachers: Sequence[Learner]) -> None:
    """Raise :class:`ConfigError` unless the student is smaller than every teacher."""
    size = parameter_count(student)
    for teacher in teachers:
        if size >= parameter_count(teacher.model):
            raise ConfigError(f"the student has {size:,} parameters, not fewer than the "
                              f"teacher's {parameter_count(teacher.model):,}: shrink "
                              "embedding_dim / hidden")


@torch.no_grad()
def teacher_pairs(teachers: Sequence[Learner], user: Fields, item: Fields) -> torch.Tensor:
    """The teachers' mean global (unadapted) prediction for (user, item) pairs."""
    device = user["id"].device

    def one(t: Learner) -> torch.Tensor:
        u = {k: v.to(t.device) for k, v in user.items()}
        i = {k: v.to(t.device) for k, v in item.items()}
        return t.model(u, i).float().to(device)

    return torch.stack([one(t) for t in teachers]).mean(0)


@torch.no_grad()
def teacher_adapted(teachers: Sequence[Learner], batch: TaskBatch) -> torch.Tensor:
    """The teachers' mean prediction ``[B, Q]`` on each task's query items after each
    adapts to the task's support set."""
    preds = []
    for teacher in teachers:
        on = teacher.on_device(batch)
        adapted = teacher.adapt(on)
        preds.append(teacher.predict(adapted, on.user_fields, on.query_fields).float().cpu())
    return torch.stack(preds).mean(0)


class Distill(Learner):
    """A student learner trained from ``teacher`` (one learner or a list: an ensemble).

    ``student`` is the (smaller) model; ``config`` its learner settings; ``distill`` the
    :class:`DistillConfig`. See the module docstring for the losses.
    """

    name = "distill"

    def __init__(self, student: RatingModel, teacher: Learner | Sequence[Learner] | None,
                 config: LearnerConfig | None = None, distill: DistillConfig | None = None,
                 *, check_size: bool = True) -> None:
        super().__init__(student, config)
        if self.config.average_decay > 0:
            raise ConfigError("distill does not average the student's weights: set "
                              "learner.average_decay = 0 for it")
        self.teachers: list[Learner] = ([] if teacher is None else
                                        [teacher] if isinstance(teacher, Learner)
                                        else list(teacher))
        self.distill = distill or DistillConfig()
        if check_size and self.teachers:
            check_student(student, self.teachers)
        if self.distill.hint_weight > 0 and self.teachers:  # no teacher: plain training
            if not isinstance(student, FeatureMLP) or len(self.teachers) != 1 or not (
                    isinstance(self.teachers[0].model, FeatureMLP)):
                raise ConfigError("the hint loss needs one FeatureMLP teacher and a "
                                  "FeatureMLP student; set distill.hint_weight = 0")
            self.hint_ = torch.nn.Linear(student.body.width,
                                         self.teachers[0].model.body.width
                                         ).to(self.device, self.dtype)
        self.student_ = learner_class(self.distill.student_learner)(student, self.config)
        if hasattr(self, "hint_") and not isinstance(self.student_, Pretrain):
            raise ConfigError("the hint loss is for plain distillation: set "
                              "distill.student_learner = 'pretrain' or hint_weight = 0")

    # ---- training -------------------------------------------------------------------
    def fit(self, train: TaskSet, features: HasFeatures, val: TaskSet | None = None, *,
            progress: Progress | None = None, pair_users: np.ndarray | None = None
            ) -> Distill:
        """Train the student on ``train`` with the teacher (no teacher: plain training).
        Distillation pairs are drawn over ``pair_users`` (default: ``train``'s users),
        e.g. every training user when only some of them have labelled ratings."""
        users = train.users if pair_users is None else np.asarray(pair_users)
        self._pairs = (self._sample_pairs(users, features) if self.distill.distill_pairs
                       else None)
        super().fit(train, features, val, progress=progress)
        self.student_.features_, self.student_.known_ = self.features_, self.known_
        self.student_.history_ = self.history_
        return self

    def _sample_pairs(self, users: np.ndarray, features: HasFeatures
                      ) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.distill.seed, 17])
        users = rng.choice(np.unique(users), self.distill.distill_pairs)
        items = rng.integers(0, features.items.num_rows, self.distill.distill_pairs)
        return users, items

    def fit_epoch(self, train: TaskSet, features: HasFeatures, epoch: int) -> float:
        if isinstance(self.student_, MetaLearner):
            return self._meta_epoch(train, features, epoch)
        return self._plain_epoch(train, features, epoch)

    def _plain_epoch(self, train: TaskSet, features: HasFeatures, epoch: int) -> float:
        cfg, alpha = self.config, self.distill.alpha if self.teachers else 0.0
        if not hasattr(self, "optimizer_"):
            params = list(self.model.parameters())
            if hasattr(self, "hint_"):
                params += list(self.hint_.parameters())
            self.optimizer_ = torch.optim.Adam(params, lr=cfg.meta_lr,
                                               weight_decay=cfg.weight_decay)
        ratings = self.known_ if self.known_ is not None else train.all_ratings()
        users, items = ratings.user, ratings.item
        labels = ratings.rating.astype(np.float32)
        rated = np.ones(len(ratings), dtype=bool)
        if self._pairs is not None and self.teachers:
            users = np.concatenate([users, self._pairs[0]])
            items = np.concatenate([items, self._pairs[1]])
            labels = np.concatenate([labels, np.zeros(len(self._pairs[0]), np.float32)])
            rated = np.concatenate([rated, np.zeros(len(self._pairs[0]), dtype=bool)])
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(users))
        losses = []
        for start in range(0, len(order), cfg.batch_size):
            rows = order[start:start + cfg.batch_size]
            user = features.users.take(torch.from_numpy(users[rows]), self.device)
            item = features.items.take(torch.from_numpy(items[rows]), self.device)
            target = torch.from_numpy(labels[rows]).to(self.device, self.dtype)
            mask = torch.from_numpy(rated[rows]).to(self.device)
            pred = self.model(user, self.training_items(item, features, (epoch, start)))
            loss = (1 - alpha) * masked_loss(pred, target, mask, cfg.loss)
            if alpha > 0:
                soft = teacher_pairs(self.teachers, user, item).to(self.dtype)
                loss = loss + alpha * masked_loss(pred, soft, torch.ones_like(mask), cfg.loss)
            if hasattr(self, "hint_"):
                with torch.no_grad():
                    teacher = self.teachers[0]
                    teacher_body = teacher.model.body(
                        {k: v.to(teacher.device) for k, v in user.items()},
                        {k: v.to(teacher.device) for k, v in item.items()},
                    ).to(self.device, self.dtype)
                hint = ((self.hint_(self.model.body(user, item)) - teacher_body) ** 2).mean()
                loss = loss + self.distill.hint_weight * hint
            self.optimizer_.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.optimizer_.step()
            losses.append(float(loss.detach()))
        return float(np.mean(losses)) if losses else float("nan")

    def _meta_epoch(self, train: TaskSet, features: HasFeatures, epoch: int) -> float:
        student = self.student_
        assert isinstance(student, MetaLearner)
        student.start(train, features)
        assert student.batcher_ is not None
        losses = []
        for index in student.batcher_.batch_indices():
            batch = pad_tasks(train, index, features.users, features.items)
            # The student alone may have item ids hidden (item_id_dropout); teachers see all.
            seen = student.hide_training_ids(batch, index, features, epoch)
            if self.teachers and self.distill.alpha > 0:
                loss, grads = student.meta_gradients(
                    seen, soft_targets=teacher_adapted(self.teachers, batch),
                    alpha=self.distill.alpha)
            else:
                loss, grads = student.meta_gradients(seen)
            student.apply_gradients(grads)
            losses.append(loss)
        return float(np.mean(losses)) if losses else float("nan")

    # ---- the student's surface ------------------------------------------------------
    def adapt(self, batch: TaskBatch, steps: int | None = None) -> Adapted:
        return self.student_.adapt(batch, steps)

    def predict(self, adapted: Adapted, user: Fields, item: Fields) -> torch.Tensor:
        return self.student_.predict(adapted, user, item)

    def predict_tasks(self, tasks: TaskSet, steps: int | None = None) -> np.ndarray:
        self.student_.features_ = self.features_
        return self.student_.predict_tasks(tasks, steps)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.student_.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.student_.load_state_dict(state)

    def save(self, path: str | Path) -> Path:
        """Save the student (loadable by ``Learner.load`` as its own kind) plus
        ``distill.json``; the teacher and the hint projection are not saved."""
        self.student_.history_ = self.history_
        folder = self.student_.save(path)
        meta = {"distill": asdict(self.distill), "teachers": [t.name for t in self.teachers],
                "teacher_parameters": [parameter_count(t.model) for t in self.teachers],
                "student_parameters": parameter_count(self.model)}
        (folder / "distill.json").write_text(json.dumps(meta, indent=2))
        return folder

    @staticmethod
    def load(path: str | Path, features: HasFeatures | None = None) -> Distill:
        """Load a folder written by :meth:`save` (the student, without its teacher)."""
        folder = Path(path)
        if not (folder / "distill.json").is_file():
            raise CheckpointError(f"{folder}: not a saved distilled learner (no distill.json)")
        meta = json.loads((folder / "distill.json").read_text())
        student = Learner.load(folder, features)
        learner = Distill(student.model, None, student.config,
                          DistillConfig.from_dict({**meta["distill"], "hint_weight": 0.0}))
        learner.student_ = student
        learner.features_, learner.history_ = features, student.history_
        return learner
