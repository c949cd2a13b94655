"""Learner names as used on the command line and in configs."""

from __future__ import annotations

from metarec.errors import ConfigError
from metarec.learners.base import Learner
from metarec.learners.maml import ANIL, FOMAML, MAML, MAMLR
from metarec.learners.metasgd import MetaSGD
from metarec.learners.pretrain import Pretrain
from metarec.learners.reptile import Reptile
from metarec.learners.ridge import Ridge

LEARNERS: dict[str, type[Learner]] = {
    cls.name: cls for cls in (MAML, FOMAML, Reptile, MetaSGD, MAMLR, ANIL, Ridge, Pretrain)
}
ALIASES = {"melu": "maml-r"}


def learner_class(name: str) -> type[Learner]:
    """The learner class called ``name`` (or an alias such as ``melu``)."""
    key = ALIASES.get(name, name)
    if key not in LEARNERS:
        raise ConfigError(f"unknown learner {name!r}; choose from "
                          f"{sorted(LEARNERS) + sorted(ALIASES)}")
    return LEARNERS[key]
