"""MAML and the learners that differ from it only in what adapts and the order."""

from __future__ import annotations

from metarec.learners.meta_learner import MetaLearner


class MAML(MetaLearner):
    """Model-agnostic meta-learning (Finn et al., 2017), second order: every parameter is
    adapted per user, and the meta-gradient differentiates through the inner steps."""

    name = "maml"
    scope = "all"


class FOMAML(MAML):
    """First-order MAML: the meta-gradient is the query-loss gradient at the adapted
    parameters (inner gradients detached)."""

    name = "fomaml"
    first_order = True


class MAMLR(MetaLearner):
    """MAML for recommendation, MeLU's local/global split (Lee et al., 2019): embeddings
    (body) are learned only in the outer loop; the decision layers (head) are adapted per
    user, second order. Alias ``melu``."""

    name = "maml-r"
    scope = "head"


class ANIL(MetaLearner):
    """Almost No Inner Loop (Raghu et al., 2020): only the output layer is adapted."""

    name = "anil"
    scope = "output"
