"""Learners: how a model learns. MAML, FOMAML, Reptile, Meta-SGD, MAML-R (MeLU), ANIL,
ridge (a closed-form inner loop) and plain pretraining share one surface (:class:`Learner`)."""

from metarec.learners.base import Adapted, Learner
from metarec.learners.config import LearnerConfig
from metarec.learners.maml import ANIL, FOMAML, MAML, MAMLR
from metarec.learners.meta_learner import MetaLearner
from metarec.learners.metasgd import MetaSGD
from metarec.learners.pretrain import Pretrain
from metarec.learners.registry import LEARNERS, learner_class
from metarec.learners.reptile import Reptile
from metarec.learners.ridge import Ridge

__all__ = ["ANIL", "Adapted", "FOMAML", "LEARNERS", "Learner", "LearnerConfig", "MAML",
           "MAMLR", "MetaLearner", "MetaSGD", "Pretrain", "Reptile", "Ridge",
           "learner_class"]
