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
            return functional_call(self.model.head, params, (item,)).squeeze(-1)
        return functional_call(self.model, params, (user, item))


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the rows where ``mask`` is true (0 if none)."""
    weight = mask.to(pred.dtype)
    return ((pred - target) ** 2 * weight).sum() / weight.sum().clamp_min(1.0)


def adapt(forward: Forward, adapted: Params, fixed: Params, user: Fields | None,
          items: Fields | torch.Tensor, ratings: torch.Tensor, mask: torch.Tensor, *,
          steps: int, lr: StepSizes, first_order: bool) -> Params:
    """``steps`` of gradient descent on one task's masked MSE, from ``adapted``.

    ``fixed`` parameters take part in the forward pass but are not updated. With
    ``first_order`` the inner gradients are detached, so an outer gradient ignores the
    second-order terms (FOMAML); otherwise it differentiates through every step (MAML).
    """

    def loss(params: Params) -> torch.Tensor:
        return masked_mse(forward({**fixed, **params}, user, items), ratings, mask)

    params = adapted
    for _ in range(steps):
        grads = grad(loss)(params)
        if first_order:
            grads = {name: g.detach() for name, g in grads.items()}
        params = {name: p - _step_size(lr, name) * grads[name] for name, p in params.items()}
    return params


def _step_size(lr: StepSizes, name: str) -> torch.Tensor | float:
    return lr[name] if isinstance(lr, dict) else lr


def query_loss_after_adapt(forward: Forward, steps: int, first_order: bool
                           ) -> Callable[..., torch.Tensor]:
    """A per-task function ``(adapted, fixed, lr, task) -> query loss after adaptation``,
    ready for ``vmap(..., in_dims=(None, None, None, 0))``."""

    def task_loss(adapted: Params, fixed: Params, lr: StepSizes, task: tuple) -> torch.Tensor:
        user, s_items, s_ratings, s_mask, q_items, q_ratings, q_mask = task
        new = adapt(forward, adapted, fixed, user, s_items, s_ratings, s_mask,
                    steps=steps, lr=lr, first_order=first_order)
        return masked_mse(forward({**fixed, **new}, user, q_items), q_ratings, q_mask)

    return task_loss
