"""Meta-SGD: MAML with a learned step size per parameter element."""

from __future__ import annotations

import torch

from metarec.learners.config import LearnerConfig
from metarec.learners.inner_loop import StepSizes
from metarec.learners.maml import MAMLR
from metarec.learners.meta_learner import parameter_key
from metarec.models.base import RatingModel


class MetaSGD(MAMLR):
    """Meta-SGD (Li et al., 2017): every adapted parameter has a tensor of inner learning
    rates of its shape, initialised to ``inner_lr`` and learned in the outer loop along
    with the initialisation. Adapts the head (like MAML-R); second order."""

    name = "metasgd"

    def __init__(self, model: RatingModel, config: LearnerConfig | None = None) -> None:
        super().__init__(model, config)
        adapted, _ = self.split_params()
        self.inner_lrs = torch.nn.ParameterDict({
            parameter_key(n): torch.nn.Parameter(torch.full_like(p.detach(), self.config.inner_lr))
            for n, p in adapted.items()})

    def step_sizes(self) -> StepSizes:
        return {n: self.inner_lrs[parameter_key(n)] for n in self.split_params()[0]}

    def learner_parameters(self) -> dict[str, torch.nn.Parameter]:
        return {f"lr.{k}": v for k, v in self.inner_lrs.items()}
