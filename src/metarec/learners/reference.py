"""A slow, obviously-correct reference for the vectorised meta-gradients.

:func:`reference_meta_gradients` recomputes what :meth:`MetaLearner.meta_gradients` returns
with a plain Python loop over the tasks of a batch: one task at a time, the full model
through ``functional_call`` (never the head-only shortcut), inner steps with
``torch.autograd.grad(create_graph=not first_order)``, no ``vmap``; for :class:`Ridge` the
least-squares problem is solved by ``torch.linalg.lstsq`` on the stacked system with the
design matrix from ``torch.autograd.functional.jacobian``. Tests assert that the
vectorised learners equal it; benchmarks use it as the per-task baseline.
"""

from __future__ import annotations

import torch
from torch.func import functional_call

from metarec.data.dataset import Fields
from metarec.learners.inner_loop import masked_loss, masked_mse
from metarec.learners.meta_learner import MetaLearner
from metarec.learners.reptile import Reptile
from metarec.learners.ridge import ROBUST_REWEIGHTINGS, Ridge, robust_weights, size_scale
from metarec.tasks.batch import TaskBatch


def reference_meta_gradients(learner: MetaLearner, batch: TaskBatch
                             ) -> tuple[float, dict[str, torch.Tensor]]:
    """Mean query loss after adaptation and its gradient for every meta-parameter of
    ``learner``, computed task by task. For :class:`Reptile` the "gradient" is
    ``theta - mean_over_tasks(theta_task)`` after adapting on support and query together,
    and the loss the mean of the tasks' losses on that data after adaptation."""
    batch = learner.on_device(batch)
    params = dict(learner.model.named_parameters())
    names = learner.adapted_names()
    reptile = isinstance(learner, Reptile)
    first_order = reptile or learner.first_order
    losses, finals = [], []
    for t in range(len(batch)):
        task = batch.select(slice(t, t + 1))
        user = task.user_fields
        if reptile:
            items = {k: torch.cat([task.support_fields[k], task.query_fields[k]], dim=1)
                     for k in task.support_fields}
            ratings = torch.cat([task.support_ratings, task.query_ratings], dim=1)
            mask = torch.cat([task.support_mask, task.query_mask], dim=1)
        else:
            items, ratings, mask = task.support_fields, task.support_ratings, task.support_mask
        adapted = {n: params[n] for n in names}
        if isinstance(learner, Ridge):
            adapted = _ridge_lstsq(learner, params, adapted, user, items, ratings[0], mask[0])
        else:
            for _ in range(learner.config.inner_steps):
                loss = masked_mse(_predict(learner, params, adapted, user, items), ratings,
                                  mask)
                grads = torch.autograd.grad(loss, list(adapted.values()),
                                            create_graph=not first_order)
                adapted = {n: p - _step_size(learner, n) * g
                           for (n, p), g in zip(adapted.items(), grads, strict=True)}
        if reptile:
            adapted = {n: p.detach() for n, p in adapted.items()}
            losses.append(masked_mse(_predict(learner, params, adapted, user, items),
                                     ratings, mask))
            finals.append(adapted)
        else:
            pred = _predict(learner, params, adapted, user, task.query_fields)
            loss = masked_loss(pred, task.query_ratings, task.query_mask, learner.config.loss)
            if learner.config.rank_weight:
                loss = loss + learner.config.rank_weight * _listnet(
                    pred[0], task.query_ratings[0], task.query_mask[0])
            losses.append(loss)
    loss = torch.stack(losses).mean()
    if reptile:
        deltas = {n: params[n].detach() - torch.stack([f[n] for f in finals]).mean(0)
                  for n in names}
        # Parameters Reptile does not adapt (memory) take the gradient of that loss.
        fixed = {n: p for n, p in params.items() if n not in deltas}
        if fixed:
            grads = torch.autograd.grad(loss, list(fixed.values()), allow_unused=True)
            deltas.update({n: torch.zeros_like(p) if g is None else g
                           for (n, p), g in zip(fixed.items(), grads, strict=True)})
        return float(loss.detach()), deltas
    meta = learner.meta_parameters()
    grads = torch.autograd.grad(loss, list(meta.values()), allow_unused=True)
    return float(loss.detach()), {n: torch.zeros_like(p) if g is None else g
                         for (n, p), g in zip(meta.items(), grads, strict=True)}


def _predict(learner: MetaLearner, params: dict[str, torch.Tensor],
             adapted: dict[str, torch.Tensor], user: Fields, items: Fields) -> torch.Tensor:
    return functional_call(learner.model, {**params, **adapted}, (user, items))


def _ridge_lstsq(learner: Ridge, params: dict[str, torch.Tensor],
                 adapted: dict[str, torch.Tensor], user: Fields, items: Fields,
                 ratings: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """One task's ridge solution: least squares on ``[sqrt(m) Z; sqrt(lambda) I] d =
    [sqrt(m) (r - f(w0)); 0]``, ``w = w0 + d``, over the full model's predictions; with
    ``adapt_loss = "mae"`` solved again with ``m`` the robust weights at the last
    residuals, as many times as :func:`ridge_solve` does."""
    names = list(adapted)

    def predict(*values: torch.Tensor) -> torch.Tensor:
        return _predict(learner, params, dict(zip(names, values, strict=True)), user,
                        items)[0]

    offset = predict(*adapted.values())
    jac = torch.autograd.functional.jacobian(predict, tuple(adapted.values()),
                                            create_graph=True)
    design = torch.cat([j.reshape(len(offset), -1) for j in jac], dim=1)
    precisions = learner.precisions()
    prior = torch.cat([precisions[n[len("head."):] if learner.head_only() else n].reshape(-1)
                       for n in names])
    prior = (prior * size_scale(mask, learner.size_exponent)).sqrt()

    def solve(weight: torch.Tensor) -> torch.Tensor:
        used = weight > 0  # sqrt has no derivative at a masked row's 0
        keep = torch.where(used, weight, torch.ones_like(weight)).sqrt() * used
        lhs = torch.cat([design * keep[:, None], torch.diag(prior)])
        rhs = torch.cat([(ratings - offset) * keep, torch.zeros_like(prior)])
        return torch.linalg.lstsq(lhs, rhs.unsqueeze(-1)).solution.squeeze(-1)

    delta = solve(mask.to(design.dtype))
    floor = learner.robust_floor()
    for _ in range(0 if floor is None else ROBUST_REWEIGHTINGS):
        delta = solve(robust_weights(ratings - offset - design @ delta, mask, floor))
    sizes = [adapted[n].numel() for n in names]
    return {n: adapted[n] + d.reshape(adapted[n].shape)
            for n, d in zip(names, torch.split(delta, sizes), strict=True)}


def _listnet(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """ListNet's KL divergence over the masked-in rows, by selecting them."""
    p = torch.softmax(target[mask].to(pred.dtype), 0)
    return (p * (p.log() - torch.log_softmax(pred[mask], 0))).sum()


def _step_size(learner: MetaLearner, name: str) -> torch.Tensor | float:
    """The inner step size of parameter ``name`` (full model name)."""
    sizes = learner.step_sizes()
    if not isinstance(sizes, dict):
        return sizes
    key = name[len("head."):] if learner.head_only() else name
    return sizes[key]
