"""Run configuration: typed dataclasses, loaded from TOML, every field overridable with
``section.field=value`` strings (e.g. ``learner.epochs=5``). One config reproduces a run."""

from __future__ import annotations

import ast
import dataclasses
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

import tomli_w

from metarec.data.splits import SplitConfig
from metarec.errors import ConfigError
from metarec.learners.config import LearnerConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class DataConfig:
    """Which data set to load: a registered name (``synthetic``, ``movielens-1m``, ...) or
    a path; ``data_dir`` points at files already on disk; ``options`` go to the reader
    (for ``synthetic``: :class:`~metarec.data.synthetic.SyntheticConfig` fields)."""

    dataset: str = "synthetic"
    data_dir: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    """The model: ``FeatureMLP`` (MeLU architecture), ``FeatureMF`` (two towers over the
    same fields; ``factors`` per side) or ``BiasedMF``. Runs add an item-id embedding to
    MeLU's features by default (zero for items never trained on, so new items rely on
    features alone); it lets the model learn each known item's quality."""

    kind: str = "FeatureMLP"
    embedding_dim: int = 32
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    user_id_embedding: bool = False
    item_id_embedding: bool = True
    exclude_fields: list[str] = field(default_factory=list)
    factors: int = 32
    joint_hidden: list[int] = field(default_factory=list)
    """``FeatureMF`` only: hidden sizes of an MLP over user and item fields together,
    added to the factorisation (empty: none)."""

    def __post_init__(self) -> None:
        from metarec.models.base import model_classes

        kinds = tuple(model_classes())
        if self.kind not in kinds:
            raise ConfigError(f"model.kind must be one of {', '.join(kinds)}; "
                              f"got {self.kind!r}")
        if self.joint_hidden and self.kind != "FeatureMF":
            raise ConfigError(f"model.joint_hidden is an option of FeatureMF, not of "
                              f"{self.kind}")

    def options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`metarec.models.build_model`."""
        if self.kind == "BiasedMF":
            return {"factors": self.factors}
        options = {"embedding_dim": self.embedding_dim, "hidden": tuple(self.hidden),
                   "user_id_embedding": self.user_id_embedding,
                   "item_id_embedding": self.item_id_embedding,
                   "exclude_fields": tuple(self.exclude_fields)}
        if self.kind == "FeatureMF":
            options["factors"] = self.factors
            if self.joint_hidden:
                options["joint_hidden"] = tuple(self.joint_hidden)
        return options


@dataclass
class EvalConfig:
    """Evaluation: cut-offs, the relevance threshold, the k-shot support sizes of the
    cold-start curve (empty = no curve), whether new users are also ranked over every
    item (``new_users_all``: unrated items count as not relevant) and whether the
    validation users are scored too (``validation``: every metric on the tasks that
    early stopping watches, and ``validation_new_items``: on their new-item supports split
    again, for choosing settings without looking at the test tasks; and
    ``validation_trained_new_items``: training users' new-film ratings that no scenario
    evaluates, where what a model remembers of a user it trained on counts)."""

    ks: list[int] = field(default_factory=lambda: [1, 3, 5, 10])
    threshold: float = 4.0
    shots: list[int] = field(default_factory=lambda: [1, 3, 5, 10, 20])
    all_items: bool = True
    validation: bool = False


@dataclass
class RunConfig:
    """Everything a run needs; ``metarec run --config FILE.toml`` reads it."""

    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    learners: list[str] = field(default_factory=lambda: ["maml-r", "maml", "reptile"])
    baselines: list[str] = field(default_factory=lambda: [
        "global-mean", "biases", "popularity", "biased-mf", "pretrain", "finetune",
        "foldin"])
    seeds: list[int] = field(default_factory=lambda: [0])
    per_learner: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"reptile": {"inner_lr": 0.02}})
    """``[learner]`` settings that differ for one learner, e.g. ``[per_learner.reptile]``
    ``inner_lr = 0.02``: Reptile adapts every parameter without training through the
    adaptation, and 0.05 diverges on a few new-item tasks with 6-8 support ratings."""

    def learner_config(self, name: str) -> LearnerConfig:
        """The ``[learner]`` settings with ``per_learner[name]`` applied."""
        changes = self.per_learner.get(name, {})
        try:
            return dataclasses.replace(self.learner, **changes)
        except TypeError as error:
            raise ConfigError(f"[per_learner.{name}]: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        return drop_none(dataclasses.asdict(self))

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())


SECTIONS = {"data": DataConfig, "split": SplitConfig, "model": ModelConfig,
            "learner": LearnerConfig, "evaluation": EvalConfig}


def config_from_dict(values: dict[str, Any], source: str = "config") -> RunConfig:
    """Build a :class:`RunConfig`, naming any unknown section or field."""
    values = dict(values)
    kwargs: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        section = values.pop(name, {})
        if not isinstance(section, dict):
            raise ConfigError(f"{source}: [{name}] must be a table")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {unknown} in [{name}]; "
                              f"known: {sorted(known)}")
        try:
            kwargs[name] = cls(**{k: _coerce(cls, k, v) for k, v in section.items()})
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{source}: [{name}]: {error}") from None
    top = {f.name for f in fields(RunConfig)} - set(SECTIONS)
    unknown = sorted(set(values) - top)
    if unknown:
        raise ConfigError(f"{source}: unknown setting(s) {unknown}")
    if "per_learner" in values:  # merged over the defaults, learner by learner
        merged = RunConfig().per_learner
        for name, changes in values.pop("per_learner").items():
            merged[name] = {**merged.get(name, {}), **changes}
        kwargs["per_learner"] = merged
    kwargs.update(values)
    return RunConfig(**kwargs)


def read_config_values(path: str | Path | None, overrides: list[str] | None = None
                       ) -> dict[str, Any]:
    """The raw TOML tables of ``path`` (or none) with ``section.field=value`` overrides
    applied; commands with extra sections (``metarec transfer``) read theirs from it."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            values = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path}: invalid TOML: {error}") from None
    for override in overrides or []:
        key, sep, raw = override.partition("=")
        if not sep:
            raise ConfigError(f"override {override!r} must look like section.field=value")
        target = values
        *parents, leaf = key.strip().split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = _parse_value(raw.strip())
    return values


def load_config(path: str | Path | None = None, overrides: list[str] | None = None
                ) -> RunConfig:
    """Read a TOML file (or the defaults), then apply ``section.field=value`` overrides."""
    return config_from_dict(read_config_values(path, overrides),
                            str(path) if path else "config")


def _parse_value(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def _coerce(cls: type, name: str, value: Any) -> Any:
    hint = str(get_type_hints(cls).get(name, ""))
    if isinstance(value, list) and "tuple" in hint:
        return tuple(value)
    if isinstance(value, int) and not isinstance(value, bool) and hint.startswith("float"):
        return float(value)
    return value


def drop_none(value: Any) -> Any:
    """``value`` without ``None`` entries (TOML has no null), recursively."""
    if isinstance(value, dict):
        return {k: drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [drop_none(v) for v in value]
    return value
