"""The one inner loop every gradient-based learner uses, vectorised over tasks.

A task's tensors come as a tuple ``(user_fields, support_fields, support_ratings,
support_mask, query_fields, query_ratings, query_mask)`` with no batch dimension;
``torch.func.vmap`` maps the functions here over the tasks of a :class:`TaskBatch`.
Parameters are plain dicts of tensors driven through ``torch.func.functional_call``: no
model copies, no ``load_state_dict``, so second-order gradients flow through adaptation.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
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

    def linearised(self, params: Params, names: Sequence[str], x: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """For a head-only forward whose prediction is affine in the parameters
        ``names`` in a form the head writes out (an MLP's output layer; a head's
        ``affine_in`` through its ``forward(x, design=True)``): the design matrix
        ``[..., N, P]`` (the derivatives, in the order of ``names``, each flattened) and
        the predictions ``[..., N]`` on the embeddings ``x``, in one forward pass (no
        forward-mode AD). None for any other forward."""
        if not self.head_only:
            return None
        head = self.model.head
        if tuple(names) == tuple(getattr(head, "affine_in", ())):
            design, pred = functional_call(head, params, (x,), {"design": True})
            return design, pred.squeeze(-1)
        if not is_mlp(head):
            return None
        last = len(head) - 1
        weight, bias = f"{last}.weight", f"{last}.bias"
        if sorted(names) != [bias, weight] or head[last].out_features != 1:
            return None
        hidden = x
        for i, layer in enumerate(list(head)[:last]):
            hidden = (F.linear(hidden, params[f"{i}.weight"], params.get(f"{i}.bias"))
                      if isinstance(layer, nn.Linear) else F.relu(hidden))
        columns = {weight: hidden, bias: torch.ones_like(hidden[..., :1])}
        pred = F.linear(hidden, params[weight], params[bias])
        return torch.cat([columns[n] for n in names], -1), pred.squeeze(-1)


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
                      ratings: torch.Tensor, weight: torch.Tensor, stop: int = 0) -> Params:
    """Gradients of ``sum(weight * (mlp(x) - ratings)^2)`` for the layers of an
    :func:`is_mlp` module (``list(module)``, output width 1) and ``x`` ``[N, width]``, by
    hand-written backpropagation.

    With ``weight = mask / mask.sum()`` this is :func:`masked_mse`'s gradient: the same
    numbers as autograd without the autograd engine's fixed cost per call, which
    dominates the small matrices of one user's task. Backpropagation stops at layer
    ``stop`` (:func:`_lowest_layer` of the parameters wanted): no gradients below it.
    """
    out, tape = _mlp_forward(layers, params, x)
    grads, _ = _mlp_backward(layers, params, tape, _output_delta(out, ratings, weight), stop,
                             input_delta=False)
    return grads


def _lowest_layer(names: Collection[str]) -> int:
    """The index of the lowest layer among parameter names such as ``"2.weight"``."""
    return min(int(n.split(".")[0]) for n in names)


def _output_delta(out: torch.Tensor, ratings: torch.Tensor, weight: torch.Tensor
                  ) -> torch.Tensor:
    """The gradient of ``sum(weight * (out - ratings)^2)`` at ``out`` (``[N, 1]``)."""
    return ((out.squeeze(-1) - ratings) * (2 * weight)).unsqueeze(-1)


def _mlp_forward(layers: list[nn.Module], params: Params, x: torch.Tensor, start: int = 0
                 ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``layers[start:]`` applied to ``x``; the tape holds each layer's input."""
    tape = []
    for i in range(start, len(layers)):
        tape.append(x)
        x = (F.linear(x, params[f"{i}.weight"], params.get(f"{i}.bias"))
             if type(layers[i]) is nn.Linear else F.relu(x))
    return x, tape


def _mlp_backward(layers: list[nn.Module], params: Params, tape: list[torch.Tensor],
                  delta: torch.Tensor, stop: int, *, input_delta: bool
                  ) -> tuple[Params, torch.Tensor]:
    """Backpropagate ``delta`` (the loss gradient at the output) through layers
    ``len(layers) - 1`` down to ``stop``: the parameter gradients, and (``input_delta``)
    the gradient at the input of layer ``stop``. ``tape`` starts at layer
    ``len(layers) - len(tape)``."""
    start = len(layers) - len(tape)
    grads: Params = {}
    for i in range(len(layers) - 1, stop - 1, -1):
        inputs = tape[i - start]
        if type(layers[i]) is nn.Linear:
            grads[f"{i}.weight"] = delta.T @ inputs
            if f"{i}.bias" in params:
                grads[f"{i}.bias"] = delta.sum(0)
            if i > stop or input_delta:
                delta = delta @ params[f"{i}.weight"]
        else:
            delta = delta.masked_fill(inputs <= 0, 0.0)
    return grads, delta


def mlp_query_loss_kernel(layers: list[nn.Module], adapted: Params, fixed: Params,
                          x: torch.Tensor, ratings: torch.Tensor, mask: torch.Tensor,
                          query: torch.Tensor, q_ratings: torch.Tensor, q_mask: torch.Tensor,
                          *, steps: int, lr: float, loss: str = "mse") -> torch.Tensor:
    """One task's query ``loss`` (see :func:`masked_loss`) after ``steps`` of gradient
    descent on an :func:`is_mlp` head whose first layer is adapted with the scalar step
    size ``lr``: the same number as :func:`adapt` followed by a forward pass, computed in
    kernel form.

    The first layer's gradient at step ``j`` is ``delta_j^T x`` (``delta_j`` ``[S, H]``, its
    output's gradient), so after ``k`` steps ``x W_k^T + b_k = x W_0^T + b_0 - lr (x x^T +
    1) sum_j delta_j``, and likewise for the query rows with ``query x^T + 1``. The ``[S,
    width]`` products with the first layer's weights, the widest matrices of the model,
    are taken once instead of three times per step; each step multiplies by the ``[S,
    S]`` Gram matrix instead. Differentiable throughout: an outer gradient through it is
    the exact second-order one.
    """
    params = {**fixed, **adapted}
    bias = 1.0 if "0.bias" in adapted else 0.0  # a fixed bias adds no "+ 1" term
    gram, cross = x @ x.T + bias, query @ x.T + bias
    base, q_base = (F.linear(x, params["0.weight"], params.get("0.bias")),
                    F.linear(query, params["0.weight"], params.get("0.bias")))
    upper = {n: p for n, p in adapted.items() if not n.startswith("0.")}
    weight = mask.to(x.dtype) / mask.sum().clamp_min(1)
    total = torch.zeros_like(base)
    for step in range(steps):
        hidden = base if step == 0 else base - lr * (gram @ total)
        current = {**params, **upper}
        out, tape = _mlp_forward(layers, current, hidden, start=1)
        grads, delta = _mlp_backward(layers, current, tape, _output_delta(out, ratings, weight),
                                     1, input_delta=True)
        upper = {n: torch.add(p, grads[n], alpha=-lr) for n, p in upper.items()}
        total = delta if step == 0 else total + delta
    hidden = q_base if steps == 0 else q_base - lr * (cross @ total)
    pred, _ = _mlp_forward(layers, {**params, **upper}, hidden, start=1)
    return masked_loss(pred.squeeze(-1), q_ratings, q_mask, loss)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the rows where ``mask`` is true (0 if none)."""
    return masked_loss(pred, target, mask, "mse")


LOSSES = ("mse", "mae")
"""Training objectives: squared error (the mean rating) or absolute error (the median)."""


def masked_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                loss: str = "mse") -> torch.Tensor:
    """``sum_i m_i e_i / max(1, sum_i m_i)`` over the rows where ``mask`` is true, with
    ``e_i = (pred_i - target_i)^2`` for ``loss="mse"`` and ``|pred_i - target_i|`` for
    ``loss="mae"`` (0 if no row is masked in)."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {list(LOSSES)}, got {loss!r}")
    weight = mask.to(pred.dtype)
    error = pred - target
    error = error.abs() if loss == "mae" else error ** 2
    return (error * weight).sum() / weight.sum().clamp_min(1.0)


def masked_listnet(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
                   ) -> torch.Tensor:
    """``KL(p || q) = sum_i p_i log(p_i / q_i)`` between the top-one distributions of the
    ratings, ``p = softmax(target)``, and of the predictions, ``q = softmax(pred)``, over
    the rows where ``mask`` is true (ListNet, Cao et al. 2007): 0 when the predictions
    order and space the items as the ratings do, whatever their level (0 if no row is
    masked in)."""
    keep = mask.to(torch.bool)
    fill = torch.full_like(pred, -1e4)  # exp() of it is exactly 0: masked rows drop out
    log_q = torch.log_softmax(torch.where(keep, pred, fill), dim=-1)
    log_p = torch.log_softmax(torch.where(keep, target.to(pred.dtype), fill), dim=-1)
    return torch.where(keep, log_p.exp() * (log_p - log_q), torch.zeros_like(pred)).sum(-1)


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

    mlp_head = forward.head_only and is_mlp(forward.model.head)
    if eager and first_order and mlp_head:
        return _adapt_mlp(forward.model.head, adapted, fixed, items, ratings, mask,
                          steps=steps, lr=lr)

    def mlp_grad(params: Params) -> Params:
        # Written-out backpropagation: differentiable ops, so an outer gradient through
        # them is the exact second-order one, without a nested ``torch.func.grad``.
        grads = mlp_mse_gradients(layers, {**fixed, **params}, items, ratings, weight, stop)
        return {n: grads[n] for n in params}

    if mlp_head:
        layers, stop = list(forward.model.head), _lowest_layer(adapted)
        weight = mask.to(items.dtype) / mask.sum().clamp_min(1)
    params = adapted
    for _ in range(steps):
        if eager:
            grads = eager_grad(params)
        else:
            grads = mlp_grad(params) if mlp_head else grad(loss)(params)
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
        stop = _lowest_layer(names)
        for _ in range(steps):
            grads = mlp_mse_gradients(layers, {**fixed, **params}, x, ratings, weight, stop)
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
                           alpha: float = 0.0, loss: str = "mse"
                           ) -> Callable[..., torch.Tensor]:
    """A per-task function ``(adapted, fixed, lr, task) -> query loss after adaptation``,
    ready for ``vmap(..., in_dims=(None, None, None, 0))``. The inner steps descend the
    support set's squared error; the query ``loss`` is ``"mse"`` or ``"mae"``.

    A task may carry an eighth entry, soft targets for its query rows (a teacher's
    predictions): the loss is then ``(1 - alpha) * L(pred, rating) + alpha * L(pred,
    soft)`` (meta-distillation).
    """

    kernel = forward.head_only and is_mlp(forward.model.head) and not first_order

    def task_loss(adapted: Params, fixed: Params, lr: StepSizes, task: tuple) -> torch.Tensor:
        user, s_items, s_ratings, s_mask, q_items, q_ratings, q_mask = task[:7]
        if kernel and "0.weight" in adapted and not isinstance(lr, dict) and len(task) == 7:
            return mlp_query_loss_kernel(list(forward.model.head), adapted, fixed, s_items,
                                         s_ratings, s_mask, q_items, q_ratings, q_mask,
                                         steps=steps, lr=lr, loss=loss)
        new = adapt(forward, adapted, fixed, user, s_items, s_ratings, s_mask,
                    steps=steps, lr=lr, first_order=first_order)
        return adapted_query_loss(forward, {**fixed, **new}, task, alpha, loss)

    return task_loss


def adapted_query_loss(forward: Forward, params: Params, task: tuple, alpha: float = 0.0,
                       loss: str = "mse", rank_weight: float = 0.0) -> torch.Tensor:
    """One task's query loss at its adapted ``params``: the masked ``loss`` (see
    :func:`masked_loss`) of the query ratings, mixed with that of the soft targets
    (``task[7]``, if any) by weight ``alpha``, plus ``rank_weight`` times the
    :func:`masked_listnet` term of the query ratings."""
    user, q_items, q_ratings, q_mask = task[0], *task[4:7]
    pred = forward(params, user, q_items)
    value = masked_loss(pred, q_ratings, q_mask, loss)
    if len(task) > 7:
        value = (1 - alpha) * value + alpha * masked_loss(pred, task[7], q_mask, loss)
    if rank_weight:
        value = value + rank_weight * masked_listnet(pred, q_ratings, q_mask)
    return value
