"""The outer loop shared by every gradient-based meta-learner.

A meta-step pads one meta-batch, computes the meta-gradient with the vectorised inner
loop (:meth:`MetaLearner.meta_gradients`), optionally lets a hook average it across
processes, clips it and takes an Adam step. Subclasses choose only what differs: the
adaptation scope, first- or second-order, the step sizes, or (Reptile) the outer update.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.func import vmap

from metarec.learners.base import HasFeatures, Learner
from metarec.learners.config import LearnerConfig
from metarec.learners.inner_loop import Params, query_loss_after_adapt
from metarec.models.base import RatingModel
from metarec.tasks.batch import TaskBatch, TaskBatcher, pad_tasks
from metarec.tasks.id_dropout import hide_item_ids
from metarec.tasks.local_rows import gather
from metarec.tasks.taskset import TaskSet

GradientHook = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]
"""Transforms meta-gradients before the optimiser step (e.g. an all-reduce average)."""


class MetaLearner(Learner):
    """Meta-training over tasks: the outer update goes through the inner loop."""

    def __init__(self, model: RatingModel, config: LearnerConfig | None = None) -> None:
        super().__init__(model, config)
        self.gradient_hook: GradientHook | None = None
        self.optimizer_: torch.optim.Optimizer | None = None
        self.batcher_: TaskBatcher | None = None

    def learner_parameters(self) -> dict[str, torch.nn.Parameter]:
        """Tensors the outer loop learns besides the model's (Meta-SGD's step sizes), by
        name; they travel with :meth:`state_dict` and checkpoints."""
        return {}

    def meta_parameters(self) -> dict[str, torch.nn.Parameter]:
        """Every tensor the outer loop learns, by name."""
        return {**dict(self.model.named_parameters()), **self.learner_parameters()}

    def averaged_parameters(self) -> dict[str, torch.Tensor]:
        return dict(self.meta_parameters())

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = super().state_dict()
        state.update({k: v.detach().clone() for k, v in self.learner_parameters().items()})
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        own = self.learner_parameters()
        self.model.load_state_dict({k: v for k, v in state.items() if k not in own})
        with torch.no_grad():
            for k, v in own.items():
                v.copy_(state[k])

    def task_loss(self, alpha: float = 0.0) -> Callable[..., torch.Tensor]:
        """The per-task query loss after adaptation that :meth:`meta_gradients` maps over
        the tasks (see :func:`~metarec.learners.inner_loop.query_loss_after_adapt`)."""
        return query_loss_after_adapt(self.forward_fn(), self.config.inner_steps,
                                      self.first_order, alpha, self.config.loss)

    def make_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(list(self.meta_parameters().values()), lr=self.config.meta_lr,
                                weight_decay=self.config.weight_decay)

    def meta_gradients(self, batch: TaskBatch, soft_targets: torch.Tensor | None = None,
                       alpha: float = 0.0) -> tuple[float, dict[str, torch.Tensor]]:
        """Mean query loss after adaptation over the batch's tasks, and its gradient with
        respect to every meta-parameter (second order unless ``first_order``). With
        ``soft_targets`` ``[B, Q]`` (a teacher's adapted query predictions) each task's
        loss mixes them in with weight ``alpha`` (meta-distillation)."""
        batch = self.on_device(batch)
        adapted, fixed = self.split_params()
        # Adapted embedding tables enter each task as its own rows (gathered here, outside
        # vmap, so their meta-gradient is one scatter-add, not a table per task).
        batch, rows = self.localise(batch)
        dims = {k: 0 if k in rows else None for k in adapted}
        task_loss = self.task_loss(alpha)
        inputs = self.task_inputs(batch)
        if soft_targets is not None:
            inputs = (*inputs, soft_targets.to(self.device, self.dtype))
        losses = vmap(task_loss, in_dims=(dims, None, None, 0))(
            {**adapted, **gather(adapted, rows)}, fixed, self.step_sizes(), inputs)
        loss = losses.mean()
        params = self.meta_parameters()
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        return float(loss.detach()), {n: torch.zeros_like(p) if g is None else g
                             for (n, p), g in zip(params.items(), grads, strict=True)}

    def apply_gradients(self, grads: dict[str, torch.Tensor]) -> None:
        """Hook, clip and take one optimiser step with ``grads``."""
        if self.gradient_hook is not None:
            grads = self.gradient_hook(grads)
        params = self.meta_parameters()
        for name, param in params.items():
            param.grad = grads[name].to(param.dtype)
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(list(params.values()), self.config.grad_clip)
        assert self.optimizer_ is not None
        self.optimizer_.step()
        self.optimizer_.zero_grad(set_to_none=True)

    def start(self, train: TaskSet, features: HasFeatures) -> None:
        """Create the optimiser and the seeded task batcher (if not resumed)."""
        if self.optimizer_ is None:
            self.optimizer_ = self.make_optimizer()
        if self.batcher_ is None or self.batcher_.tasks is not train:
            state = None if self.batcher_ is None else self.batcher_.state_dict()
            self.batcher_ = TaskBatcher(train, features.users, features.items,
                                        self.config.meta_batch_size, seed=self.config.seed,
                                        bucket=self.config.bucket)
            if state is not None:
                self.batcher_.load_state_dict(state)

    def epoch_tasks(self, train: TaskSet, epoch: int) -> TaskSet:
        """The training tasks of ``epoch``: ``train`` itself, or with ``redraw_query`` each
        task's inner query drawn again (seeded by the learner's seed and the epoch)."""
        if not self.config.redraw_query:
            return train
        return train.redraw_query([self.config.seed, epoch])

    def training_batch(self, tasks: TaskSet, index: np.ndarray, meta_batch: np.ndarray,
                       features: HasFeatures, epoch: int) -> TaskBatch:
        """Tasks ``index`` of ``tasks`` padded, with the item ids that ``item_id_dropout``
        hides in meta-batch ``meta_batch`` of ``epoch`` hidden (``index`` is all of
        ``meta_batch`` or one process's share of it: every share hides the same ids)."""
        return self.hide_training_ids(pad_tasks(tasks, index, features.users, features.items),
                                      meta_batch, features, epoch)

    def hide_training_ids(self, batch: TaskBatch, meta_batch: np.ndarray,
                          features: HasFeatures, epoch: int) -> TaskBatch:
        """``batch`` (tasks of meta-batch ``meta_batch``) with the item ids that
        ``item_id_dropout`` hides in that step hidden; unchanged when it is off."""
        hidden = self.hidden_item_ids(features, (epoch, int(meta_batch[0]), len(meta_batch)))
        return batch if hidden is None else hide_item_ids(batch, hidden)

    def fit_epoch(self, train: TaskSet, features: HasFeatures, epoch: int) -> float:
        self.start(train, features)
        assert self.batcher_ is not None
        tasks = self.epoch_tasks(train, epoch)
        losses = []
        for index in self.batcher_.batch_indices():
            batch = self.training_batch(tasks, index, index, features, epoch)
            loss, grads = self.meta_gradients(batch)
            self.apply_gradients(grads)
            self.update_average()
            losses.append(loss)
        return float(np.mean(losses)) if losses else float("nan")


def parameter_deltas(before: Params, after: Params) -> dict[str, torch.Tensor]:
    """``before - mean_over_tasks(after)``: Reptile's outer direction."""
    return {n: before[n].detach() - after[n].mean(0) for n in before}


def parameter_key(name: str) -> str:
    """A parameter name usable as a ``ParameterDict`` key (no dots), for learner-owned
    tensors kept per model parameter (Meta-SGD's step sizes, ridge's precisions)."""
    return name.replace(".", "__")
