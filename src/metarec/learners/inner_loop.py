"""The one inner loop every gradient-based learner uses, vectorised over tasks.

A task's tensors come as a tuple ``(user_fields, support_fields, support_ratings,
support_mask, query_fields, query_ratings, query_mask)`` with no batch dimension;
``torch.func.vmap`` maps the functions here over the tasks of a :class:`TaskBatch`.
Parameters are plain dicts of tensors driven through ``torch.func.functional_call``: no
model copies, no ``load_state_dict``, so second-order gradients flow through adaptation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad

from metarec.data.dataset import Fields

Params = dict[str, torch.Tensor]
StepSizes = float | Params
"""A fixed inner learning rate, or one tensor per adapted parameter (Meta-SGD)."""


@dataclass(frozen=True)
class Forward:
    """How predictions are computed from parameters.

    With ``head_only`` the inputs are precomputed body embeddings ``[..., width]`` and
    the parameters are those of ``model.head`` (names without the ``head.`` prefix).
    """

    model: torch.nn.Module
    head_only: bool = False

    def __call__(self, params: Params, user: Fields | None, item: Fields | torch.Tensor
                 ) -> torch.Tensor:
        if self.head_only:
            return sequential_call(self.model.head, params, item).squeeze(-1)
        return functional_call(self.model, params, (user, item))


def sequential_call(module: nn.Module, params: Params, x: torch.Tensor) -> torch.Tensor:
    """``functional_call(module, params, x)`` for an ``nn.Sequential``, with its ``Linear``
    and ``ReLU`` layers written out as plain calls (a tenth of the dispatch cost, which
    dominates adapting one user); any other module goes through ``functional_call``."""
    if not isinstance(module, nn.Sequential):
        return functional_call(module, params, (x,))
    for i, layer in enumerate(module):
        if isinstance(layer, nn.Linear):
            x = F.linear(x, params[f"{i}.weight"], params.get(f"{i}.bias"))
        elif isinstance(layer, nn.ReLU):
            x = F.relu(x)
        else:
            prefix = f"{i}."
            own = {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}
            x = functional_call(layer, own, (x,))
    return x


def is_mlp(module: nn.Module) -> bool:
    """Whether ``module`` is an ``nn.Sequential`` of ``Linear`` and ``ReLU`` layers only."""
    return isinstance(module, nn.Sequential) and all(
        type(layer) in (nn.Linear, nn.ReLU) for layer in module)


def mlp_mse_gradients(layers: list[nn.Module], params: Params, x: torch.Tensor,
                      ratings: torch.Tensor, weight: torch.Tensor) -> Params:
    """Gradients of ``sum(weight * (mlp(x) - ratings)^2)`` for the layers of an
    :func:`is_mlp` module (``list(module)``, output width 1) and ``x`` ``[N, width]``, by
    hand-written backpropagation.

    With ``weight = mask / mask.sum()`` this is :func:`masked_mse`'s gradient: the same
    numbers as autograd without the autograd engine's fixed cost per call, which
    dominates the small matrices of one user's task.
    """
    tape: list[torch.Tensor] = []
    h = x
    for i, layer in enumerate(layers):
        tape.append(h)
        h = (F.linear(h, params[f"{i}.weight"], params.get(f"{i}.bias"))
             if type(layer) is nn.Linear else F.relu(h))
    delta = ((h.squeeze(-1) - ratings) * (2 * weight)).unsqueeze(-1)
    grads: Params = {}
    for i in range(len(layers) - 1, -1, -1):
        inputs = tape[i]
        if type(layers[i]) is nn.Linear:
            grads[f"{i}.weight"] = delta.T @ inputs
            if f"{i}.bias" in params:
                grads[f"{i}.bias"] = delta.sum(0)
            if i:
                delta = delta @ params[f"{i}.weight"]
        else:
            delta = delta.masked_fill(inputs <= 0, 0.0)
    return grads


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the rows where ``mask`` is true (0 if none)."""
    weight = mask.to(pred.dtype)
    return ((pred - target) ** 2 * weight).sum() / weight.sum().clamp_min(1.0)


def adapt(forward: Forward, adapted: Params, fixed: Params, user: Fields | None,
          items: Fields | torch.Tensor, ratings: torch.Tensor, mask: torch.Tensor, *,
          steps: int, lr: StepSizes, first_order: bool, eager: bool = False) -> Params:
    """``steps`` of gradient descent on one task's masked MSE, from ``adapted``.

    ``fixed`` parameters take part in the forward pass but are not updated. With
    ``first_order`` the inner gradients are detached, so an outer gradient ignores the
    second-order terms (FOMAML); otherwise it differentiates through every step (MAML).
    ``eager`` is for one task outside any transform whose result needs no outer gradient
    (serving a user): the gradients come from ``torch.autograd.grad`` instead of
    ``torch.func.grad``, or, for a first-order head that is an MLP, from
    :func:`mlp_mse_gradients` with in-place updates (the result then carries no graph).
    The same numbers, a fraction of the overhead; not composable with ``vmap``.
    """

    def loss(params: Params) -> torch.Tensor:
        return masked_mse(forward({**fixed, **params}, user, items), ratings, mask)

    def eager_grad(params: Params) -> Params:
        names = list(params)
        # First order needs no graph back to ``params``: differentiate fresh leaves.
        leaves = {n: p if p.requires_grad and not first_order else p.detach().requires_grad_()
                  for n, p in params.items()}
        values = torch.autograd.grad(loss(leaves), [leaves[n] for n in names],
                                     create_graph=not first_order, allow_unused=True)
        return {n: torch.zeros_like(params[n]) if g is None else g
                for n, g in zip(names, values, strict=True)}

    if eager and first_order and forward.head_only and is_mlp(forward.model.head):
        return _adapt_mlp(forward.model.head, adapted, fixed, items, ratings, mask,
                          steps=steps, lr=lr)
    params = adapted
    for _ in range(steps):
        grads = eager_grad(params) if eager else grad(loss)(params)
        if first_order:
            grads = {name: g.detach() for name, g in grads.items()}
        params = {name: _step(p, grads[name], lr, name) for name, p in params.items()}
    return params


def _adapt_mlp(module: nn.Sequential, adapted: Params, fixed: Params, x: torch.Tensor,
               ratings: torch.Tensor, mask: torch.Tensor, *, steps: int, lr: StepSizes
               ) -> Params:
    """First-order :func:`adapt` of an :func:`is_mlp` head outside any transform: hand-written
    gradients and in-place updates of copies, no autograd graph."""
    with torch.no_grad():
        params = {n: p.detach().clone() for n, p in adapted.items()}
        names = list(params)
        weight = mask.to(x.dtype) / max(int(mask.sum()), 1)
        layers = list(module)
        for _ in range(steps):
            grads = mlp_mse_gradients(layers, {**fixed, **params}, x, ratings, weight)
            if isinstance(lr, dict):
                for n in names:
                    params[n].sub_(lr[n] * grads[n])
            else:
                torch._foreach_add_([params[n] for n in names], [grads[n] for n in names],
                                    alpha=-lr)
    return params


def _step(param: torch.Tensor, grad_: torch.Tensor, lr: StepSizes, name: str) -> torch.Tensor:
    """``param - lr * grad`` (one fused op for a fixed learning rate)."""
    if isinstance(lr, dict):
        return param - lr[name] * grad_
    return torch.add(param, grad_, alpha=-lr)


def query_loss_after_adapt(forward: Forward, steps: int, first_order: bool,
                           alpha: float = 0.0) -> Callable[..., torch.Tensor]:
    """A per-task function ``(adapted, fixed, lr, task) -> query loss after adaptation``,
    ready for ``vmap(..., in_dims=(None, None, None, 0))``.

    A task may carry an eighth entry, soft targets for its query rows (a teacher's
    predictions): the loss is then ``(1 - alpha) * MSE(pred, rating) + alpha * MSE(pred,
    soft)`` (meta-distillation).
    """

    def task_loss(adapted: Params, fixed: Params, lr: StepSizes, task: tuple) -> torch.Tensor:
        user, s_items, s_ratings, s_mask, q_items, q_ratings, q_mask = task[:7]
        new = adapt(forward, adapted, fixed, user, s_items, s_ratings, s_mask,
                    steps=steps, lr=lr, first_order=first_order)
        pred = forward({**fixed, **new}, user, q_items)
        loss = masked_mse(pred, q_ratings, q_mask)
        if len(task) > 7:
            loss = (1 - alpha) * loss + alpha * masked_mse(pred, task[7], q_mask)
        return loss

    return task_loss
