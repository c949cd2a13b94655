"""Reptile: move the initialisation towards each task's adapted parameters."""

from __future__ import annotations

import torch
from torch.func import vmap

from metarec.errors import ConfigError
from metarec.learners.config import LearnerConfig
from metarec.learners.inner_loop import adapt, masked_mse
from metarec.learners.meta_learner import MetaLearner, parameter_deltas
from metarec.models.base import RatingModel
from metarec.tasks.batch import TaskBatch
from metarec.tasks.local_rows import gather, scatter_mean


class Reptile(MetaLearner):
    """Reptile (Nichol et al., 2018): adapt every parameter (but id tables) on a task's data
    (support and query together) for ``inner_steps`` steps; the outer "gradient" is the
    mean of ``theta - theta_task`` over the meta-batch, fed to Adam with ``meta_lr``; the
    global id tables get the gradient of the adapted tasks' loss. At test time it adapts
    on the support set like MAML."""

    name = "reptile"
    scope = "all"
    first_order = True

    def __init__(self, model: RatingModel, config: LearnerConfig | None = None) -> None:
        super().__init__(model, config)
        if self.config.loss != "mse":
            raise ConfigError(f"reptile has no query loss: it moves towards parameters "
                              f"adapted by squared error, so loss={self.config.loss!r} "
                              "has nothing to act on; use maml, fomaml, maml-r, metasgd, "
                              "anil or ridge")

    def meta_gradients(self, batch: TaskBatch, soft_targets: torch.Tensor | None = None,
                       alpha: float = 0.0) -> tuple[float, dict[str, torch.Tensor]]:
        if soft_targets is not None:
            raise ConfigError("Reptile has no query loss to mix soft targets into: "
                              "meta-distil into maml, fomaml, maml-r, metasgd or anil")
        batch = self.on_device(batch)
        forward = self.forward_fn()
        adapted, fixed = self.split_params()
        batch, rows = self.localise(batch)  # adapted tables as each task's rows
        with torch.no_grad():
            local = gather(adapted, rows)
        user, s_items, s_ratings, s_mask, q_items, q_ratings, q_mask = self.task_inputs(batch)
        items = {k: torch.cat([s_items[k], q_items[k]], dim=1) for k in s_items}
        ratings = torch.cat([s_ratings, q_ratings], dim=1)
        mask = torch.cat([s_mask, q_mask], dim=1)

        def one(start, u, i, r, m):  # noqa: ANN001, ANN202 - pytree leaves
            new = adapt(forward, start, fixed, u, i, r, m, steps=self.config.inner_steps,
                        lr=self.config.inner_lr, first_order=True)
            new = {k: v.detach() for k, v in new.items()}
            return new, masked_mse(forward({**fixed, **new}, u, i), r, m)

        dims = {k: 0 if k in local else None for k in adapted}
        new, losses = vmap(one, in_dims=(dims, 0, 0, 0, 0))({**adapted, **local}, user, items,
                                                           ratings, mask)
        deltas = parameter_deltas({k: v for k, v in adapted.items() if k not in local},
                                  {k: v for k, v in new.items() if k not in local})
        # A table's delta: each task's change on its rows, summed into the table, / B.
        deltas.update(scatter_mean(adapted, {k: local[k] - new[k] for k in local}, rows))
        if fixed:
            # Parameters Reptile does not adapt (global id tables) learn from the gradient
            # of the tasks' losses after adaptation, as MAML-R's global parameters do.
            grads = torch.autograd.grad(losses.mean(), list(fixed.values()), allow_unused=True)
            deltas.update({n: torch.zeros_like(p) if g is None else g
                           for (n, p), g in zip(fixed.items(), grads, strict=True)})
        return float(losses.detach().mean()), deltas
