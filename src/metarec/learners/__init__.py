"""Learners: how a model learns. MAML, FOMAML, Reptile, Meta-SGD, MAML-R (MeLU), ANIL
and plain pretraining share one surface (:class:`Learner`) and one inner loop."""

from metarec.learners.base import Adapted, Learner
from metarec.learners.config import LearnerConfig
from metarec.learners.maml import ANIL, FOMAML, MAML, MAMLR
from metarec.learners.meta_learner import MetaLearner
from metarec.learners.metasgd import MetaSGD
from metarec.learners.pretrain import Pretrain
from metarec.learners.registry import LEARNERS, learner_class
from metarec.learners.reptile import Reptile

__all__ = ["ANIL", "Adapted", "FOMAML", "LEARNERS", "Learner", "LearnerConfig", "MAML",
           "MAMLR", "MetaLearner", "MetaSGD", "Pretrain", "Reptile", "learner_class"]
