"""Meta-learning with a closed-form inner loop: ridge regression of the output layer.

For the models here the prediction is affine in the output-layer parameters ``w``
(ANIL's scope): ``FeatureMLP``'s last ``Linear`` layer, ``FeatureMF``'s user vector (the
user tower's bias: the user's bias and factors). So the support set's penalised
least-squares problem

    min_w  sum_i m_i (r_i - f_i(w))^2 + sum_k lambda_k (w_k - w0_k)^2

has an exact solution, ``w = w0 + (Z^T M Z + diag(lambda))^-1 Z^T M (r - f(w0))`` with
``Z = df/dw`` the design matrix, instead of a few gradient steps: a user with many
ratings is fitted fully, one with few is pulled to the meta-learned start ``w0``. The
outer loop learns ``w0`` (through the body), the rest of the model and the prior
precisions ``lambda`` (one per parameter element, in log space) through the solve, as in
R2-D2 (Bertinetto et al., 2019, "Meta-learning with differentiable closed-form
solvers").
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import torch
from torch.func import jacfwd, vmap

from metarec.errors import CheckpointError, ConfigError
from metarec.learners.base import Adapted, Learner
from metarec.learners.config import LearnerConfig
from metarec.learners.inner_loop import Forward, Params, adapted_query_loss
from metarec.learners.maml import ANIL
from metarec.learners.meta_learner import parameter_key
from metarec.learners.neighbours import (
    NEIGHBOUR_DAMPINGS,
    NeighbourTables,
    choose_scale_and_damping,
    neighbour_offset,
    neighbour_weights,
)
from metarec.models.base import RatingModel
from metarec.tasks.batch import TaskBatch, pad_tasks
from metarec.tasks.taskset import TaskSet

log = logging.getLogger(__name__)

MEMORY_LEVEL_PRECISION = 1e-3
"""Prior precision of the constant by which ``memory_level`` lets a trained user's
remembered ratings differ from the task's (nearly free: a handful of rows outweigh it)."""

ROBUST_REWEIGHTINGS = 3
"""Reweighted solves of the robust (``adapt_loss = "mae"``) fit after the plain one."""


def robust_weights(residual: torch.Tensor, mask: torch.Tensor, floor: float) -> torch.Tensor:
    """Per-rating weights ``m / (2 max(|e|, floor))`` that turn a squared error into the
    majoriser of the absolute error at residuals ``e`` (iteratively reweighted least
    squares); residuals below ``floor`` (rating units) are weighted as if that large, a
    Huber loss, so no single rating is fitted exactly."""
    return mask.to(residual.dtype) / (2 * residual.abs().clamp_min(floor))


def size_scale(mask: torch.Tensor, exponent: torch.Tensor | None) -> torch.Tensor | float:
    """``n ** exponent`` for a task's ``n`` support ratings (at least 1), or 1 without an
    exponent: the factor on its prior precision."""
    if exponent is None:
        return 1.0
    return mask.to(exponent.dtype).sum().clamp_min(1.0) ** exponent


def ridge_solve(forward: Forward, start: Params, fixed: Params, precision: Params,
                user: object, items: object, ratings: torch.Tensor, mask: torch.Tensor,
                *, robust_floor: float | None = None,
                size_exponent: torch.Tensor | None = None,
                memory: tuple[object, torch.Tensor, torch.Tensor] | None = None,
                memory_shift: float = 1.0, memory_level: float | None = None) -> Params:
    """One task's ridge solution for the parameters ``start`` (on which ``forward`` is
    affine): the minimiser of the masked squared error on ``(items, ratings)`` plus
    ``sum(precision * (w - start)^2)``, the precision times ``n ** size_exponent`` for
    ``n`` support ratings when given. With a ``robust_floor`` the data term is the
    absolute error instead (Huber below that floor), minimised by
    :data:`ROBUST_REWEIGHTINGS` reweighted solves from the squared-error one.

    ``memory = (items, ratings, mask)``: more ratings of the user (what training saw), in
    the data term too but predicted with ``w + d`` (plus a constant ``c`` with prior
    ``memory_level * c^2`` when ``memory_level`` is given), where the shift ``d`` has its
    own prior ``memory_shift * precision * d^2``; all are solved jointly and ``w``
    returned. A large ``memory_shift`` counts them as support, a small one lets ``d``
    absorb how they differ; ``c`` lets them differ in level alone. Differentiable in
    everything; maps with ``vmap``.
    """
    names = list(start)

    def linearise(rows: object) -> tuple[torch.Tensor, torch.Tensor]:
        """The design matrix ``df/dw`` at ``start`` on ``rows``, and ``f(start)``: written
        out by the model where it can (:meth:`Forward.linearised`), else by forward-mode
        AD."""
        if isinstance(forward, Forward) and isinstance(rows, torch.Tensor):
            exact = forward.linearised({**fixed, **start}, names, rows)
            if exact is not None:
                return exact

        def predict(params: Params) -> tuple[torch.Tensor, torch.Tensor]:
            pred = forward({**fixed, **params}, user, rows)
            return pred, pred  # the Jacobian and, as its auxiliary output, the value

        jac, offset = jacfwd(predict, has_aux=True)(start)
        return torch.cat([jac[n].reshape(offset.shape[0], -1) for n in names], -1), offset

    design, offset = linearise(items)
    prior = (torch.cat([precision[n].reshape(-1) for n in names])
             * size_scale(mask, size_exponent))
    target = ratings - offset
    present = mask.to(design.dtype)
    if memory is not None:
        items_m, ratings_m, mask_m = memory
        design_m, offset_m = linearise(items_m)
        own_rows, old_rows = [design, torch.zeros_like(design)], [design_m, design_m]
        priors = [prior, memory_shift * prior]
        if memory_level is not None:  # a constant the remembered rows may differ by
            own_rows.append(design.new_zeros(design.shape[0], 1))
            old_rows.append(design_m.new_ones(design_m.shape[0], 1))
            priors.append(prior.new_full((1,), memory_level))
        design = torch.cat([torch.cat(own_rows, -1), torch.cat(old_rows, -1)])
        prior = torch.cat(priors)
        target = torch.cat([target, ratings_m - offset_m])
        present = torch.cat([present, mask_m.to(design.dtype)])

    def solve(weight: torch.Tensor) -> torch.Tensor:
        weighted = design * weight.unsqueeze(-1)
        return torch.linalg.solve(weighted.T @ design + torch.diag(prior),
                                  weighted.T @ target)

    delta = solve(present)
    for _ in range(0 if robust_floor is None else ROBUST_REWEIGHTINGS):
        delta = solve(robust_weights(target - design @ delta, present, robust_floor))
    sizes = [start[n].numel() for n in names]
    parts = torch.split(delta[:sum(sizes)], sizes)  # ``w``'s part (the shift's is dropped)
    return {n: start[n] + d.reshape(start[n].shape) for n, d in zip(names, parts, strict=True)}


class Ridge(ANIL):
    """Output-layer meta-learning with a closed-form inner loop (see the module text):
    adapts what ANIL adapts, exactly, by penalised least squares instead of ``inner_steps``
    of SGD; the outer loop is second order through the solve. ``inner_steps`` is ignored
    except that 0 means no adaptation; ``prior_precision`` starts the learned precisions.
    Needs a model whose prediction is affine in its output layer (``FeatureMLP``,
    ``FeatureMF``)."""

    name = "ridge"
    closed_form_adaptation = True

    def __init__(self, model: RatingModel, config: LearnerConfig | None = None) -> None:
        super().__init__(model, config)
        adapted, _ = self.split_params()
        start = math.log(self.config.prior_precision)
        self.log_precisions = torch.nn.ParameterDict({
            parameter_key(n): torch.nn.Parameter(torch.full_like(p.detach(), start))
            for n, p in adapted.items()})
        self.size_exponent = (torch.nn.Parameter(torch.zeros((), dtype=self.dtype,
                                                             device=self.device))
                              if self.config.size_exponent else None)
        # ``neighbours``: the term's scale and damping (chosen by ``fit`` on validation).
        self.neighbour_scale, self.neighbour_damping = 1.0, 1.0
        self.neighbour_tables_: NeighbourTables | None = None
        self._term = "on"  # "off" while training; "raw" (not clipped) while choosing
        if self.config.neighbours and self.config.item_id_dropout:
            raise ConfigError("ridge's neighbours look items up by id: item_id_dropout "
                              "must be 0 with them")

    def learner_parameters(self) -> dict[str, torch.nn.Parameter]:
        own = {f"precision.{k}": v for k, v in self.log_precisions.items()}
        if self.size_exponent is not None:
            own["size_exponent"] = self.size_exponent
        return own

    def scalar_parameters(self) -> dict[str, float]:
        if self.size_exponent is None:
            return {}
        return {"size_exponent": float(self.size_exponent.detach())}

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = super().state_dict()
        if self.config.neighbours:
            state["neighbours.scale"] = torch.tensor(self.neighbour_scale, dtype=torch.float64)
            state["neighbours.damping"] = torch.tensor(self.neighbour_damping,
                                                       dtype=torch.float64)
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        scale, damping = state.pop("neighbours.scale", None), state.pop("neighbours.damping",
                                                                        None)
        if scale is not None and damping is not None:
            self.neighbour_scale, self.neighbour_damping = float(scale), float(damping)
        super().load_state_dict(state)

    @contextmanager
    def while_training(self) -> Iterator[None]:
        """Training and early stopping see no neighbourhood term (``neighbours``); the
        similarity table is built again afterwards, from the ratings training saw."""
        self.neighbour_tables_ = None
        with self.term("off"):
            yield

    def after_training(self, val: TaskSet | None) -> None:
        """With ``neighbours``, choose the term's scale and damping on ``val``
        (:meth:`choose_neighbour_term`; 1 and 1 without validation tasks)."""
        if self.config.neighbours and val is not None and len(val):
            self.choose_neighbour_term(val)

    # ---- the neighbourhood term (``neighbours``) ---------------------------------------
    @contextmanager
    def term(self, mode: str) -> Iterator[None]:
        """Inside, predictions take the neighbourhood term as ``mode`` says: ``"off"``
        (the plain solve), ``"raw"`` (not clipped) or ``"on"`` (the default)."""
        before, self._term = self._term, mode
        try:
            yield
        finally:
            self._term = before

    def neighbour_tables(self) -> NeighbourTables:
        """The similarity table of the training ratings (built on first use from the
        ratings training saw, ``known_``)."""
        if self.neighbour_tables_ is None:
            if self.known_ is None:
                raise CheckpointError("ridge's neighbours need the training ratings: call "
                                      "fit() first, or load a saved learner")
            # Sized by the ratings, not the feature tables (a service's tables grow):
            # a user or item beyond them has no similarity either way.
            known = self.known_
            self.neighbour_tables_ = NeighbourTables.from_ratings(
                known, int(known.user.max(initial=-1)) + 1,
                int(known.item.max(initial=-1)) + 1, self.device, self.dtype)
        return self.neighbour_tables_

    def choose_neighbour_term(self, tasks: TaskSet) -> tuple[float, float]:
        """Set the term's scale and damping to those of the grid
        (:func:`~metarec.learners.neighbours.choose_scale_and_damping`) with the least
        ``config.loss`` on the query sets of ``tasks``; returns them."""
        with self.term("off"):
            base = self.predict_tasks(tasks)
        terms = {}
        with self.term("raw"):
            for damping in NEIGHBOUR_DAMPINGS:
                self.neighbour_scale, self.neighbour_damping = 1.0, damping
                terms[damping] = self.predict_tasks(tasks) - base
        tables = self.neighbour_tables()
        self.neighbour_scale, self.neighbour_damping = choose_scale_and_damping(
            base, terms, tasks.query.rating.astype(np.float64),
            (tables.rating_min, tables.rating_max), self.config.loss)
        log.info("neighbourhood term: scale %g, damping %g (chosen on %d tasks)",
                 self.neighbour_scale, self.neighbour_damping, len(tasks))
        return self.neighbour_scale, self.neighbour_damping

    def correct_predictions(self, batch: TaskBatch, adapted: Adapted, pred: torch.Tensor
                            ) -> torch.Tensor:
        """The query predictions ``pred`` plus the neighbourhood term (``neighbours``),
        clipped to the training ratings' range; as they are with a scale of 0."""
        if not self.corrects_with_residuals():
            return pred
        with torch.no_grad():
            support_pred = self.predict(adapted, batch.user_fields, batch.support_fields)
            residual = ((batch.support_ratings - support_pred)
                        * batch.support_mask.to(support_pred.dtype))
            return self._with_term(pred, batch.query_items, batch.support_items,
                                   batch.support_mask, residual)

    def corrects_with_residuals(self) -> bool:
        return bool(self.config.neighbours) and self._term != "off" and self.neighbour_scale != 0

    def correct_scores(self, pred: torch.Tensor, items: torch.Tensor,
                       support_items: torch.Tensor, support_residuals: torch.Tensor
                       ) -> torch.Tensor:
        if not self.corrects_with_residuals() or not len(support_items):
            return pred
        with torch.no_grad():
            return self._with_term(pred, items.to(self.device), support_items.to(self.device),
                                   torch.ones_like(support_items, dtype=torch.bool,
                                                   device=self.device),
                                   support_residuals.to(pred.dtype))

    def _with_term(self, pred: torch.Tensor, query_items: torch.Tensor,
                   support_items: torch.Tensor, support_mask: torch.Tensor,
                   residual: torch.Tensor) -> torch.Tensor:
        """``pred`` plus the term over ``residual`` (0 on padding), clipped unless the
        term's mode is ``"raw"``."""
        tables = self.neighbour_tables()
        weights = neighbour_weights(tables.similarity, query_items, support_items,
                                    support_mask, self.config.neighbours)
        out = pred + neighbour_offset(weights, residual, self.neighbour_scale,
                                      self.neighbour_damping)
        if self._term == "raw":
            return out
        return out.clamp(tables.rating_min, tables.rating_max)

    def robust_floor(self) -> float | None:
        """The Huber floor of the robust solve (``adapt_loss = "mae"``), or None for the
        plain squared-error solve."""
        return self.config.robust_floor if self.config.adapt_loss == "mae" else None

    def precisions(self) -> Params:
        """The prior precision of every adapted parameter (by its name)."""
        return {n: self.log_precisions[parameter_key(n)].exp()
                for n in self.split_params()[0]}

    def adapt_one(self, forward: Forward, start: Params, fixed: Params, task: tuple, *,
                  steps: int, eager: bool = False) -> Params:
        if steps == 0:
            return start
        precision = self.precisions()
        if eager:
            precision = {k: v.detach() for k, v in precision.items()}
        exponent = self.size_exponent
        if eager and exponent is not None:
            exponent = exponent.detach()
        return ridge_solve(forward, start, fixed, precision, *task[:4],
                           robust_floor=self.robust_floor(), size_exponent=exponent)

    def predict_tasks(self, tasks: TaskSet, steps: int | None = None) -> np.ndarray:
        """As :meth:`Learner.predict_tasks`; with ``memory_precision`` set, each task of
        a user training saw is solved from that user's training ratings too (those of
        items the task has not in its support): ``ridge_solve``'s
        ``memory``, with ``memory_shift = memory_precision``. Training is unchanged, and so is
        every task of a user training never saw."""
        steps = self.config.inner_steps if steps is None else steps
        shift = self.config.memory_precision
        if shift is None or self.known_ is None or steps == 0:
            return super().predict_tasks(tasks, steps)
        known = self.known_.subset(np.isin(self.known_.user, tasks.users))
        # Training never holds a query rating, so query items need not be skipped: scoring
        # candidates (``score_items``, ``recommend``) keeps every remembered rating.
        memory = tasks.history_tasks(known, skip_query=False)
        remembered = memory.support_sizes > 0
        if not remembered.all():  # the others are solved exactly as without a memory
            out = np.empty(len(tasks.query), dtype=np.float64)
            kept, other = np.flatnonzero(remembered), np.flatnonzero(~remembered)
            out[tasks.query_rows(kept)] = self._predict_with_memory(
                tasks.select(kept), memory.select(kept), shift)
            out[tasks.query_rows(other)] = super().predict_tasks(tasks.select(other), steps)
            return out
        return self._predict_with_memory(tasks, memory, shift)

    def _predict_with_memory(self, tasks: TaskSet, memory: TaskSet, shift: float
                             ) -> np.ndarray:
        """:meth:`predict_tasks` of ``tasks`` whose remembered ratings are the support
        sets of ``memory`` (the same tasks)."""
        features = self._features()

        def adapt_chunk(batch: TaskBatch, rows: dict[str, torch.Tensor], index: np.ndarray
                        ) -> Adapted:
            # ``rows`` is empty: the output layer that ridge adapts holds no embedding table.
            past = self.on_device(pad_tasks(memory, index, features.users, features.items))
            return Adapted(self._solve_with_memory(batch, past, shift), self.head_only())

        return self._predict_chunks(tasks, adapt_chunk,
                                    widest=int(memory.support_sizes.max(initial=1)))

    def _solve_with_memory(self, batch: TaskBatch, past: TaskBatch, shift: float) -> Params:
        """Each task's solve from its support (``batch``) and remembered ratings (the
        support of ``past``, the same tasks)."""
        forward = self.forward_fn()
        start, fixed = self.split_params()
        precision = {k: v.detach() for k, v in self.precisions().items()}
        exponent = None if self.size_exponent is None else self.size_exponent.detach()
        level = MEMORY_LEVEL_PRECISION if self.config.memory_level else None
        with torch.no_grad():
            own = self.task_inputs(batch, query=False)
            remembered = self.task_inputs(past, query=False)

        def one(task: tuple, old: tuple) -> Params:
            return ridge_solve(forward, start, fixed, precision, *task,
                               robust_floor=self.robust_floor(), size_exponent=exponent,
                               memory=old[1:], memory_shift=shift, memory_level=level)

        with torch.enable_grad():
            params = vmap(one)(own, remembered)
        return {k: v.detach() for k, v in params.items()}

    def task_loss(self, alpha: float = 0.0) -> Callable[..., torch.Tensor]:
        forward, precision = self.forward_fn(), self.precisions()

        def task_loss(adapted: Params, fixed: Params, lr: object, task: tuple
                      ) -> torch.Tensor:
            # ``lr`` (the step sizes every task loss receives) has no use in a solve.
            # 0 inner steps: no adaptation, in training as in prediction.
            new = adapted if not self.config.inner_steps else ridge_solve(
                forward, adapted, fixed, precision, *task[:4],
                robust_floor=self.robust_floor(), size_exponent=self.size_exponent)
            return adapted_query_loss(forward, {**fixed, **new}, task, alpha,
                                      self.config.loss, self.config.rank_weight)

        return task_loss


FOLD_IN_PRECISIONS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


def fold_in(trained: Learner, validation: TaskSet | None,
            precisions: Sequence[float] = FOLD_IN_PRECISIONS,
            adapt_loss: str = "mse", memory_precision: float | None = None,
            memory_level: bool = False, neighbours: int = 0,
            inner_steps: int | None = None) -> Ridge:
    """The ``fold-in`` control: ``trained``'s model, unchanged, with its output layer fitted
    to each user's support set by the same ridge solve (no meta-learning), at the prior
    precision of ``precisions`` with the least validation loss (query MSE or MAE, as
    ``trained.config.loss``) on ``validation`` (the learner's own ``prior_precision``
    without validation tasks), solving ``adapt_loss`` (``"mae"``: the robust solve), with
    ``memory_precision`` and ``memory_level`` as :meth:`Ridge.predict_tasks` takes them
    (validation users are never trained on, so they play no part in the choice), and with
    ``neighbours`` the neighbourhood term, its scale and damping chosen on ``validation``
    after the precision (:meth:`Ridge.choose_neighbour_term`). ``inner_steps`` (default:
    ``trained``'s) 0 means no solve, as for ``ridge``."""
    steps = trained.config.inner_steps if inner_steps is None else inner_steps

    def build(precision: float) -> Ridge:
        ridge = Ridge(trained.model, replace(trained.config, prior_precision=precision,
                                             inner_steps=steps, adapt_loss=adapt_loss,
                                             memory_precision=memory_precision,
                                             memory_level=memory_level,
                                             neighbours=neighbours))
        ridge.features_, ridge.known_ = trained.features_, trained.known_
        return ridge

    if validation is None or not len(validation):
        return build(trained.config.prior_precision)

    def plain_loss(ridge: Ridge) -> float:
        with ridge.term("off"):
            return ridge.validation_loss(validation)

    best = min((build(p) for p in precisions), key=plain_loss)
    if neighbours:
        best.choose_neighbour_term(validation)
    return best
