"""Run configuration: typed dataclasses, loaded from TOML, every field overridable with
``section.field=value`` strings (e.g. ``learner.epochs=5``). One config reproduces a run."""

from __future__ import annotations

import ast
import dataclasses
import math
import sys
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import tomli_w

from metarec.data.splits import SplitConfig
from metarec.errors import ConfigError, MetarecError
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

    def absolute(self) -> DataConfig:
        """A copy in which ``dataset`` (when it is a path, not a registered name) and
        ``data_dir`` are absolute paths, so that a run's ``config.toml`` reads the same
        files from any working directory."""
        from metarec.data.registry import REGISTRY

        dataset = self.dataset
        if dataset not in REGISTRY and Path(dataset).expanduser().exists():
            dataset = str(Path(dataset).expanduser().resolve())
        data_dir = (None if self.data_dir is None
                    else str(Path(self.data_dir).expanduser().resolve()))
        return dataclasses.replace(self, dataset=dataset, data_dir=data_dir)


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
        from metarec.models.base import check_sizes, model_classes

        kinds = tuple(model_classes())
        if self.kind not in kinds:
            raise ConfigError(f"model.kind must be one of {', '.join(kinds)}; "
                              f"got {self.kind!r}")
        check_sizes("model", embedding_dim=self.embedding_dim, hidden=self.hidden,
                    factors=self.factors, joint_hidden=self.joint_hidden)
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

    def __post_init__(self) -> None:
        for name in ("ks", "shots"):
            bad = [v for v in getattr(self, name) if not v >= 1]
            if bad:
                raise ConfigError(f"evaluation.{name} must be whole numbers >= 1, got "
                                  f"{getattr(self, name)}")
        if not math.isfinite(self.threshold):
            raise ConfigError(f"evaluation.threshold must be a number, got {self.threshold}")


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

    def __post_init__(self) -> None:
        repeated = sorted({s for s in self.seeds if self.seeds.count(s) > 1})
        if repeated:
            raise ConfigError(f"seeds: {repeated} given more than once (each seed is one "
                              f"run; got {self.seeds})")

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain values (``None`` where a setting is unset)."""
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        """TOML text that :func:`load_config` reads back into this config, from any
        working directory (data paths written absolute, :meth:`DataConfig.absolute`)."""
        written = dataclasses.replace(self, data=self.data.absolute())
        return tomli_w.dumps(toml_values(written.to_dict()))


SECTIONS = {"data": DataConfig, "split": SplitConfig, "model": ModelConfig,
            "learner": LearnerConfig, "evaluation": EvalConfig}


def config_from_dict(values: dict[str, Any], source: str = "config") -> RunConfig:
    """Build a :class:`RunConfig`, naming any unknown section or field and any value of
    the wrong type (:func:`field_value`)."""
    values = dict(values)
    kwargs: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        kwargs[name] = section_from_dict(cls, values.pop(name, {}), name, source)
    top = {f.name for f in fields(RunConfig)} - set(SECTIONS)
    unknown = sorted(set(values) - top)
    if unknown:
        raise ConfigError(f"{source}: unknown setting(s) {unknown}")
    hints = get_type_hints(RunConfig)
    if "per_learner" in values:  # merged over the defaults, learner by learner
        kwargs["per_learner"] = _per_learner(values.pop("per_learner"), source)
    for key, value in values.items():
        kwargs[key] = field_value(key, hints[key], value, source)
    return RunConfig(**kwargs)


def section_from_dict(cls: type[Any], section: Any, name: str, source: str = "config") -> Any:
    """The dataclass ``cls`` (the ``[name]`` section) from its TOML table ``section``; a
    :class:`ConfigError` names an unknown field or a value of the wrong type."""
    if not isinstance(section, dict):
        raise ConfigError(f"{source}: [{name}] must be a table, got {section!r}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {unknown} in [{name}]; "
                          f"known: {sorted(known)}")
    hints = get_type_hints(cls)
    converted = {k: field_value(f"{name}.{k}", hints[k], v, source) for k, v in section.items()}
    try:
        return cls(**converted)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{source}: [{name}]: {error}") from None


def _per_learner(values: Any, source: str) -> dict[str, dict[str, Any]]:
    example = "e.g. [per_learner.reptile] inner_lr = 0.02"
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: [per_learner] must be a table of learner tables "
                          f"({example}), got {values!r}")
    hints = get_type_hints(LearnerConfig)
    merged = RunConfig().per_learner
    for name, changes in values.items():
        if not isinstance(changes, dict):
            raise ConfigError(f"{source}: [per_learner] {name}: expected a table of "
                              f"[learner] settings ({example}), got {changes!r}")
        unknown = sorted(set(changes) - set(hints))
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {unknown} in [per_learner.{name}];"
                              f" known: {sorted(hints)}")
        converted = {k: field_value(f"per_learner.{name}.{k}", hints[k], v, source)
                     for k, v in changes.items()}
        merged[name] = {**merged.get(name, {}), **converted}
    return merged


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
        for depth, parent in enumerate(parents):
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                raise ConfigError(f"override {override!r}: "
                                  f"{'.'.join(parents[:depth + 1])} is not a table")
        target[leaf] = _parse_value(raw.strip())
    return values


def load_config(path: str | Path | None = None, overrides: list[str] | None = None
                ) -> RunConfig:
    """Read a TOML file (or the defaults), then apply ``section.field=value`` overrides."""
    return config_from_dict(read_config_values(path, overrides),
                            str(path) if path else "config")


def _parse_value(raw: str) -> Any:
    """An override's value: ``true``/``false``, ``none``/``null`` (None), a Python
    literal, a list of bare words (``[maml-r,reptile]``), else the string itself."""
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        pass
    if raw.startswith("[") and raw.endswith("]"):
        inner = raw[1:-1].strip()
        return [_parse_value(item.strip()) for item in inner.split(",")] if inner else []
    return raw


# ---- values and their types ----------------------------------------------------------
class _Mismatch(Exception):
    """A value is not of the type its field declares."""


def convert(hint: Any, value: Any) -> Any:
    """``value`` as a field of type ``hint`` holds it: an int where a float is expected
    becomes a float, a list where a tuple is expected a tuple, ``"none"`` (TOML has no
    null) None where None is allowed. Raises ``_Mismatch`` when it does not fit."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any or isinstance(hint, typing.TypeVar):  # e.g. a reader option
        return None if value == "none" else value
    if origin is typing.Union or origin is types.UnionType:
        if type(None) in args and (value is None or value == "none"):
            return None
        for option in args:
            if option is not type(None):
                try:
                    return convert(option, value)
                except _Mismatch:
                    pass
        raise _Mismatch
    if origin is Literal:  # the values themselves are the dataclass's to check
        if not isinstance(value, tuple({type(a) for a in args})):
            raise _Mismatch
        return value
    if hint is bool or hint is str:
        if not isinstance(value, hint):
            raise _Mismatch
        return value
    if hint is int or hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float) if hint is float
                                                     else int):
            raise _Mismatch
        try:
            return hint(value)
        except OverflowError:  # an int past a float's range
            raise _Mismatch from None
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise _Mismatch
            return tuple(convert(a, v) for a, v in zip(args, value, strict=True))
        items = [convert(args[0] if args else Any, v) for v in value]
        return tuple(items) if origin is tuple or hint is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        return {k: convert(args[1] if args else Any, v) for k, v in value.items()}
    return value


def describe(hint: Any) -> str:
    """``hint`` in words, as a config error says what it expected."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        words = [describe(a) for a in args if a is not type(None)]
        return " or ".join(words + (["none"] if type(None) in args else []))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (list, tuple) or hint in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} {_plural(args[0])}"
        return f"a list of {_plural(args[0]) if args else 'values'}"
    if origin is dict or hint is dict:
        return "a table"
    return {bool: "true or false", int: "an integer", float: "a number",
            str: "a string"}.get(hint, getattr(hint, "__name__", str(hint)))


def _plural(hint: Any) -> str:
    return {bool: "booleans", int: "integers", float: "numbers", str: "strings"}.get(
        hint, describe(hint))


def field_value(key: str, hint: Any, value: Any, source: str = "config") -> Any:
    """``value`` of setting ``key`` (``section.field``, ``field`` at the top) converted
    to ``hint`` (:func:`convert`); else a one-line :class:`ConfigError` naming the field,
    the type expected and the value, with the list syntax where a list is expected."""
    try:
        return convert(hint, value)
    except _Mismatch:
        pass
    *parents, leaf = key.split(".")
    where = f"[{'.'.join(parents)}] {leaf}" if parents else leaf
    message = f"{source}: {where}: expected {describe(hint)}, got {value!r}"
    wants_list = any(get_origin(h) in (list, tuple) for h in (hint, *get_args(hint)))
    items = ([_parse_value(v.strip()) for v in value.split(",")]
             if isinstance(value, str) else [value])
    if (wants_list and not isinstance(value, (list, tuple))
            and all(isinstance(v, (str, int, float, bool)) for v in items)):
        toml = ", ".join(tomli_w.dumps({"v": toml_values(v)}).partition("=")[2].strip()
                         for v in items)
        message += (f"; write a list: {leaf} = [{toml}] in TOML, --set {key}="
                    f"[{','.join(str(v) for v in items)}] on the command line")
    raise ConfigError(message)


def reader_options(dataset: str, options: dict[str, Any], label: str = "data.options"
                   ) -> dict[str, Any]:
    """``options`` for the reader of ``dataset`` (for ``synthetic``: the
    :class:`~metarec.data.synthetic.SyntheticConfig` fields), checked against what it
    takes and converted to its types; a :class:`ConfigError` names an unknown option and
    lists the known ones. Options of a data set whose format cannot be told (no such
    path) pass unchecked: loading it says why."""
    from metarec.data import registry

    if not isinstance(options, dict):
        raise ConfigError(f"[{label}] must be a table, got {options!r}")
    try:
        fmt = (registry.REGISTRY[dataset].reader if dataset in registry.REGISTRY
               else registry.detect_format(Path(dataset).expanduser()))
    except MetarecError:
        return dict(options)
    hints = registry.option_types(fmt) if fmt in (*registry.READERS, "synthetic") else None
    if hints is None:
        return dict(options)
    unknown = [k for k in options if k not in hints]
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} in [{label}] for {dataset}; known: "
                          f"{list(hints)}")
    return {k: field_value(f"{label}.{k}", hints[k], v, "config")
            for k, v in options.items()}


def toml_values(value: Any) -> Any:
    """``value`` ready for TOML, which has no null: ``None`` becomes ``"none"`` (read
    back as None by every setting that may be unset), tuples become lists."""
    if isinstance(value, dict):
        return {k: toml_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [toml_values(v) for v in value]
    return "none" if value is None else value
