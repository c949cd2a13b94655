"""Hyper-parameters of a learner, as one dataclass (defaults tuned on the generated data
and ML-1M; see README)."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from metarec.errors import ConfigError
from metarec.learners.inner_loop import LOSSES


@dataclass
class LearnerConfig:
    """Training and adaptation settings shared by every learner.

    ``inner_steps`` / ``inner_lr``: the per-user adaptation (SGD on the support set);
    ``meta_lr``: Adam's step size for the outer (meta) update; ``meta_batch_size``: tasks
    per meta-step; ``epochs``: passes over the training tasks; ``grad_clip``: max global
    norm of the meta-gradient (None = off); ``patience``: epochs without validation
    improvement before early stopping (None = off); ``batch_size``: rating pairs per step
    for plain (``pretrain``) training; ``bucket``: meta-batches per size-sorted pool (1 =
    plain shuffling; see :class:`~metarec.tasks.TaskBatcher`); ``redraw_query``: draw
    each training task's inner query again every epoch (meta-learners), so that every
    training rating serves as a query target over the epochs; ``prior_precision``: the
    ``ridge`` learner's starting prior precision (learned per parameter); ``loss``: what
    training minimises and early stopping watches, ``"mse"`` (squared error: predicts
    the mean rating) or ``"mae"`` (absolute error: the median), on the query ratings
    (meta-learners) or on every rating (``pretrain``) -- adaptation to a user's support
    set descends (or solves) squared error, unless ``adapt_loss = "mae"`` (``ridge``
    only: a robust solve of the absolute error, Huber below ``robust_floor`` rating
    units, see :func:`~metarec.learners.ridge.ridge_solve`); ``size_exponent``
    (``ridge`` only): scale each task's prior precision by ``n ** gamma`` for its ``n``
    support ratings, ``gamma`` learned from 0; ``rank_weight`` (``ridge`` only): weight
    of a listwise ranking term added to each task's query loss
    (:func:`~metarec.learners.inner_loop.masked_listnet`; 0 = off);
    ``memory_precision`` (``ridge`` only; None = off): when predicting for a user that
    training saw, solve from their training ratings too, which are predicted with the
    adapted parameters plus a shift of their own whose prior precision is
    ``memory_precision`` times the learned one (large: the training ratings count as
    support; small: they barely count), see :meth:`~metarec.learners.ridge.Ridge.
    predict_tasks`; ``memory_level`` (with ``memory_precision``): the remembered
    ratings may also differ from the task's by a constant, nearly free (old films rated
    lower or higher overall than the task's);
    ``neighbours`` (``ridge`` only, and the ``foldin`` control; 0 = off): add to each
    prediction the user's support residuals after the solve on the ``neighbours`` support
    items most similar to it (item-item similarities of the training ratings' residuals,
    as ``item-knn``), ``gamma * sum s e / (sum s + c)``, clipped to the rating range;
    training does not see it, ``gamma`` and ``c`` are chosen on the validation users
    afterwards (see :mod:`metarec.learners.neighbours`);
    ``item_id_dropout``: the share of items whose id is hidden in each training step
    (meta-batch or minibatch), so that a model with an item-id embedding learns to score
    new items from their features too
    (:mod:`metarec.tasks.id_dropout`; 0 = off); ``average_decay``: keep an exponential
    moving average of the trained tensors, ``avg = decay * avg + (1 - decay) * weights``
    after every optimiser step (Polyak averaging; 0 = off), which validation, early
    stopping and the fitted model use in place of the last weights; ``dtype``:
    ``float32`` or ``float64``; ``device``: where the model, its training and its
    adaptation run -- ``"cpu"``, ``"cuda"`` (``"cuda:N"``) or ``"auto"`` (the GPU when one
    is visible, else the CPU); ``seed``: training's random draws (task order, queries,
    dropout) -- the model's initial weights are drawn when it is built, from torch's
    generator (seed it first, as ``metarec run`` does).
    """

    inner_steps: int = 5
    inner_lr: float = 0.05
    meta_lr: float = 2e-3
    meta_batch_size: int = 32
    epochs: int = 8
    grad_clip: float | None = 10.0
    patience: int | None = 3
    weight_decay: float = 0.0
    batch_size: int = 1024
    eval_batch_size: int = 128
    bucket: int = 8
    redraw_query: bool = False
    prior_precision: float = 1.0
    loss: str = "mse"
    adapt_loss: str = "mse"
    robust_floor: float = 0.25
    size_exponent: bool = False
    rank_weight: float = 0.0
    memory_precision: float | None = None
    memory_level: bool = False
    neighbours: int = 0
    item_id_dropout: float = 0.0
    average_decay: float = 0.0
    dtype: str = "float32"
    device: str = "cpu"
    seed: int = 0

    def __post_init__(self) -> None:
        self._check_types()
        if self.inner_steps < 0 or self.epochs < 0:
            raise ConfigError("inner_steps and epochs must be >= 0")
        if min(self.meta_batch_size, self.batch_size, self.eval_batch_size, self.bucket) < 1:
            raise ConfigError("meta_batch_size, batch_size, eval_batch_size and bucket must "
                              "be >= 1")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be >= 1 (or unset: no early stopping), got "
                              f"{self.patience}")
        if not self.inner_lr >= 0 or not self.meta_lr > 0:
            raise ConfigError(f"inner_lr must be >= 0 and meta_lr > 0, got {self.inner_lr} "
                              f"and {self.meta_lr}")
        if not self.weight_decay >= 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"grad_clip must be > 0 (or unset: no clipping), got "
                              f"{self.grad_clip}")
        if not self.prior_precision > 0:
            raise ConfigError(f"prior_precision must be > 0, got {self.prior_precision}")
        if not 0.0 <= self.item_id_dropout < 1.0:
            raise ConfigError(f"item_id_dropout must be in [0, 1), got {self.item_id_dropout}")
        if not 0.0 <= self.average_decay < 1.0:
            raise ConfigError(f"average_decay must be in [0, 1), got {self.average_decay}")
        if self.adapt_loss not in LOSSES:
            raise ConfigError(f"adapt_loss must be one of {list(LOSSES)}, got "
                              f"{self.adapt_loss!r}")
        if not self.rank_weight >= 0:
            raise ConfigError(f"rank_weight must be >= 0, got {self.rank_weight}")
        if self.memory_precision is not None and not self.memory_precision > 0:
            raise ConfigError(f"memory_precision must be > 0 (or unset), got "
                              f"{self.memory_precision}")
        if self.memory_level and self.memory_precision is None:
            raise ConfigError("memory_level needs memory_precision (the memory it shifts)")
        if self.neighbours < 0:
            raise ConfigError(f"neighbours must be >= 0 (0 = off), got {self.neighbours}")
        if not self.robust_floor > 0:
            raise ConfigError(f"robust_floor must be > 0, got {self.robust_floor}")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {list(LOSSES)}, got {self.loss!r}")
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except (RuntimeError, TypeError):
                raise ConfigError(f"learner.device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got "
                                  f"{self.device!r}") from None

    def _check_types(self) -> None:
        """A :class:`ConfigError` for a number field holding something else (a bool, a
        string, a fraction where a count is expected) or a float that is not finite: the
        checks TOML and ``--set`` make (:func:`metarec.config.convert`), for settings
        built in Python too."""
        for f in fields(self):
            kind = str(f.type).replace(" | None", "")
            value = getattr(self, f.name)
            if kind not in ("int", "float") or value is None and str(f.type).endswith("None"):
                continue
            counts = kind == "int"
            if (isinstance(value, bool)
                    or not isinstance(value, numbers.Integral if counts else numbers.Real)
                    or not counts and not math.isfinite(value)):
                what = "a whole number" if counts else "a finite number"
                raise ConfigError(f"learner.{f.name} must be {what}, got {value!r}")

    def torch_device(self) -> torch.device:
        """The device to run on: ``device`` resolved (``auto``: CUDA when visible); a
        ConfigError when it names a GPU that this machine does not have."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        device = torch.device(self.device)
        if device.type == "cuda":
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if device.index is not None and device.index >= count or count == 0:
                raise ConfigError(f"learner.device={self.device!r} but this machine has "
                                  f"{count} visible CUDA device(s): use 'cpu' or 'auto'")
        elif device.type != "cpu":
            raise ConfigError(f"learner.device={self.device!r}: only 'cpu' and 'cuda' "
                              "devices are supported")
        return device

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LearnerConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"unknown learner setting(s) {sorted(unknown)}; "
                              f"known: {sorted(known)}")
        return cls(**values)
