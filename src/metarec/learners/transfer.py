"""Transfer learning: pretrain on a source, fine-tune on a target with a freezing policy.

The source is any trained learner over a :class:`~metarec.models.FeatureMLP` (plain
``pretrain`` or a meta-learner). :func:`transfer_weights` copies into a fresh target model
every field embedding the two share, matched by side, field name and category value
(unseen categories and new fields keep their fresh initialisation), plus the decision
layers (the first layer's columns of new fields start at zero, so the copied function is
unchanged). :class:`Transfer` then fine-tunes the target model with ``target_learner``
(``pretrain`` = plain fine-tuning; ``maml-r`` etc. = transfer + meta-adaptation) under a
freezing policy:

* ``none``: every parameter is trained;
* ``embeddings``: the body (embeddings) is frozen, the head trained;
* ``head-only``: only the output layer is trained;
* ``lr-ratio``: everything is trained, the body at ``body_lr_ratio`` times the head's rate.

Frozen parameters are left out of the optimiser (and their gradients zeroed before
clipping), so they stay bit-identical.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from metarec.data.dataset import Fields, Interactions
from metarec.errors import CheckpointError, ConfigError
from metarec.learners.base import Adapted, HasFeatures, Learner, Progress
from metarec.learners.config import LearnerConfig
from metarec.learners.meta_learner import MetaLearner
from metarec.learners.registry import learner_class
from metarec.models.base import RatingModel
from metarec.models.feature_mlp import FeatureMLP
from metarec.tasks.batch import TaskBatch
from metarec.tasks.taskset import TaskSet

FREEZE_POLICIES = ("none", "embeddings", "head-only", "lr-ratio")


@dataclass
class TransferConfig:
    """How to transfer: the learner that trains the source (``source_learner``) and the
    one that fine-tunes the target (``target_learner``), the freezing policy (one of
    ``none``, ``embeddings``, ``head-only``, ``lr-ratio``), the body/head learning-rate
    ratio of ``lr-ratio``, fields never transferred (``exclude_fields``: ``name`` or
    ``user.name`` / ``item.name``) and whether the decision layers transfer."""

    source_learner: str = "pretrain"
    target_learner: str = "pretrain"
    freeze: str = "none"
    body_lr_ratio: float = 0.1
    exclude_fields: list[str] = field(default_factory=list)
    transfer_head: bool = True

    def __post_init__(self) -> None:
        if self.freeze not in FREEZE_POLICIES:
            raise ConfigError(f"transfer.freeze must be one of {list(FREEZE_POLICIES)}, "
                              f"got {self.freeze!r}")
        if not self.body_lr_ratio > 0:
            raise ConfigError(f"transfer.body_lr_ratio must be > 0, got {self.body_lr_ratio}")
        learner_class(self.source_learner)
        learner_class(self.target_learner)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TransferConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown [transfer] setting(s) {unknown}; known: {sorted(known)}")
        return cls(**values)


@dataclass
class FieldTransfer:
    """What happened to one field: ``status`` is ``transferred`` (some categories
    copied), ``new`` (target only), ``dropped`` (source only) or ``excluded``."""

    side: str
    name: str
    kind: str
    status: str
    copied: int = 0
    fresh: int = 0
    copied_values: list[str] = field(default_factory=list)


@dataclass
class TransferReport:
    """Which fields and categories were transferred, and whether the head was."""

    fields: list[FieldTransfer]
    head: str

    def to_dict(self) -> dict[str, Any]:
        return {"fields": [asdict(f) for f in self.fields], "head": self.head}

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per field (for tables), without the copied values."""
        return [{k: v for k, v in asdict(f).items() if k != "copied_values"}
                for f in self.fields]


def _vocab(model: FeatureMLP, side: str, name: str, features: Any) -> list[str] | None:
    """The category values of a field's embedding rows (row i <-> value), None if numeric."""
    if name == "id":
        ids = getattr(features, f"{side}_ids", None)
        return None if ids is None else ["\0missing", *(str(v) for v in ids.raw)]
    specs = model.user_specs if side == "user" else model.item_specs
    spec = next(s for s in specs if s.name == name)
    return None if spec.kind == "numeric" else ["\0missing", *spec.vocab]


def _kind(model: FeatureMLP, side: str, name: str) -> str:
    if name == "id":
        return "id"
    specs = model.user_specs if side == "user" else model.item_specs
    return next(s.kind for s in specs if s.name == name)


def _layout(model: FeatureMLP) -> dict[tuple[str, str], int]:
    """Column offset of each (side, field) in the body's concatenated output."""
    offsets, at = {}, 0
    for side, modules in (("user", model.body.user_fields), ("item", model.body.item_fields)):
        for name in modules:
            offsets[(side, name)] = at
            at += model.embedding_dim
    return offsets


@torch.no_grad()
def transfer_weights(source: RatingModel, target: RatingModel, *,
                     source_features: Any = None, target_features: Any = None,
                     exclude_fields: Sequence[str] = (), head: bool = True) -> TransferReport:
    """Copy ``source``'s learned weights into ``target`` where they mean the same thing.

    Both must be :class:`FeatureMLP` s with the same ``embedding_dim``. A field present on
    the same side of both (same name, same kind) keeps the source's embedding row of
    every category value both vocabularies hold (the missing row included); the target's
    other rows stay as initialised. Numeric fields copy their projection. Id embeddings
    transfer by raw id when both feature holders have ``user_ids`` / ``item_ids``. With
    ``head`` the decision layers are copied (hidden sizes must match); first-layer columns
    of fields the source lacks are zeroed.
    """
    if not isinstance(source, FeatureMLP) or not isinstance(target, FeatureMLP):
        raise ConfigError("transfer needs FeatureMLP source and target models (BiasedMF "
                          "has no side-feature embeddings to transfer)")
    if source.embedding_dim != target.embedding_dim:
        raise ConfigError(f"incompatible models: source embedding_dim {source.embedding_dim}"
                          f" != target {target.embedding_dim}")
    excluded = set(exclude_fields)
    report: list[FieldTransfer] = []
    transferred: list[tuple[str, str]] = []
    for side in ("user", "item"):
        src_modules = getattr(source.body, f"{side}_fields")
        tgt_modules = getattr(target.body, f"{side}_fields")
        for name, module in tgt_modules.items():
            kind = _kind(target, side, name)
            if name in excluded or f"{side}.{name}" in excluded:
                report.append(FieldTransfer(side, name, kind, "excluded"))
                continue
            if name not in src_modules:
                report.append(FieldTransfer(side, name, kind, "new"))
                continue
            src_kind = _kind(source, side, name)
            if src_kind != kind:
                raise ConfigError(f"incompatible field {side}.{name}: {src_kind} in the "
                                  f"source, {kind} in the target; add it to "
                                  "transfer.exclude_fields")
            if kind == "numeric":
                module.linear.load_state_dict(src_modules[name].linear.state_dict())
                report.append(FieldTransfer(side, name, kind, "transferred", copied=1))
                transferred.append((side, name))
                continue
            src_vocab = _vocab(source, side, name, source_features)
            tgt_vocab = _vocab(target, side, name, target_features)
            if src_vocab is None or tgt_vocab is None:
                report.append(FieldTransfer(side, name, kind, "new", fresh=module.embedding
                                            .num_embeddings))
                continue
            src_row = {v: i for i, v in enumerate(src_vocab)}
            pairs = [(j, src_row[v]) for j, v in enumerate(tgt_vocab) if v in src_row]
            if pairs:
                rows_t = torch.tensor([p[0] for p in pairs])
                rows_s = torch.tensor([p[1] for p in pairs])
                module.embedding.weight[rows_t] = src_modules[name].embedding.weight[rows_s].to(
                    module.embedding.weight.dtype)
            values = [tgt_vocab[j] for j, _ in pairs if tgt_vocab[j] != "\0missing"]
            report.append(FieldTransfer(side, name, kind,
                                        "transferred" if values else "new",
                                        copied=len(values), fresh=len(tgt_vocab) - len(pairs),
                                        copied_values=values))
            if values:
                transferred.append((side, name))
        for name in src_modules:
            if name not in tgt_modules:
                report.append(FieldTransfer(side, name, _kind(source, side, name), "dropped"))
    head_status = "fresh"
    if head:
        if tuple(source.hidden) != tuple(target.hidden):
            raise ConfigError(f"incompatible models: source hidden {list(source.hidden)} != "
                              f"target {list(target.hidden)}; set transfer_head = false")
        _copy_head(source, target, transferred)
        head_status = "transferred"
    return TransferReport(report, head_status)


def _copy_head(source: FeatureMLP, target: FeatureMLP,
               transferred: list[tuple[str, str]]) -> None:
    src_layers = [m for m in source.head if isinstance(m, torch.nn.Linear)]
    tgt_layers = [m for m in target.head if isinstance(m, torch.nn.Linear)]
    first_src, first_tgt = src_layers[0], tgt_layers[0]
    src_at, tgt_at, dim = _layout(source), _layout(target), target.embedding_dim
    first_tgt.weight.zero_()
    for key in transferred:
        first_tgt.weight[:, tgt_at[key]:tgt_at[key] + dim] = (
            first_src.weight[:, src_at[key]:src_at[key] + dim])
    new_keys = [k for k in tgt_at if k not in set(transferred)]
    if not transferred:
        torch.nn.init.kaiming_uniform_(first_tgt.weight, a=5 ** 0.5)
    else:
        bound = first_tgt.in_features ** -0.5  # nn.Linear's own initial range
        for key in new_keys:
            # The copied function must be unchanged at the start: zero columns see to it,
            # unless the field's table is zero itself (an id embedding nothing was copied
            # into), where zero columns would keep both at zero for good; those columns
            # start fresh instead.
            columns = first_tgt.weight[:, tgt_at[key]:tgt_at[key] + dim]
            if _zero_table(target, key):
                columns.uniform_(-bound, bound)
            else:
                columns.zero_()
    first_tgt.bias.copy_(first_src.bias)
    for src, tgt in zip(src_layers[1:], tgt_layers[1:], strict=True):
        tgt.load_state_dict(src.state_dict())


def _zero_table(model: FeatureMLP, key: tuple[str, str]) -> bool:
    """Whether field ``key`` = (side, name) of ``model`` embeds every value as zero (an id
    embedding that nothing was copied into)."""
    side, name = key
    module = getattr(model.body, f"{side}_fields")[name]
    table = getattr(module, "embedding", None)
    return table is not None and not bool(table.weight.any())


def trainable_names(model: RatingModel, policy: str) -> list[str]:
    """Names of the parameters a freezing ``policy`` lets fine-tuning change."""
    names = [n for n, _ in model.named_parameters()]
    if policy == "embeddings":
        head = set(model.head_names())
        return [n for n in names if n in head]
    if policy == "head-only":
        output = set(model.output_names())
        return [n for n in names if n in output]
    if policy in ("none", "lr-ratio"):
        return names
    raise ConfigError(f"unknown freezing policy {policy!r}; choose from {list(FREEZE_POLICIES)}")


def apply_freezing(learner: Learner, policy: str, body_lr_ratio: float = 0.1) -> list[str]:
    """Set up ``learner``'s optimiser so that only the parameters ``policy`` allows are
    trained (``lr-ratio``: the body at ``body_lr_ratio`` times ``meta_lr``). Returns the
    frozen parameter names. Call before ``learner.fit``."""
    model, cfg = learner.model, learner.config
    trainable = set(trainable_names(model, policy))
    named = (learner.meta_parameters() if isinstance(learner, MetaLearner)
             else dict(model.named_parameters()))
    body = set(model.body_names())
    model_names = {n for n, _ in model.named_parameters()}
    # The learner's own parameters (Meta-SGD's step sizes, ridge's prior precisions) are
    # how it adapts, not transferred weights: trained with the head under every policy.
    head_group = [p for n, p in named.items()
                  if n not in model_names or (n in trainable and n not in body)]
    body_group = [p for n, p in named.items() if n in trainable and n in body]
    frozen = [n for n in named if n in model_names and n not in trainable]
    body_lr = cfg.meta_lr * (body_lr_ratio if policy == "lr-ratio" else 1.0)
    groups = [g for g in ({"params": head_group, "lr": cfg.meta_lr},
                          {"params": body_group, "lr": body_lr}) if g["params"]]
    learner.optimizer_ = torch.optim.Adam(groups, lr=cfg.meta_lr,  # type: ignore[attr-defined]
                                          weight_decay=cfg.weight_decay)
    if isinstance(learner, MetaLearner):
        frozen_set = set(frozen)

        def zero_frozen(grads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {n: torch.zeros_like(g) if n in frozen_set else g for n, g in grads.items()}

        learner.gradient_hook = zero_frozen
    else:
        for name, param in model.named_parameters():
            param.requires_grad_(name in trainable)
    return frozen


def target_model_for(source: RatingModel, features: HasFeatures,
                     ratings: Interactions | None = None,
                     source_features: HasFeatures | None = None) -> FeatureMLP:
    """A fresh :class:`FeatureMLP` over ``features``' fields with ``source``'s
    architecture (embedding width, hidden layers, id embeddings). With
    ``source_features``, a field the source's data has but its model left out (``[model]
    exclude_fields``) is left out of the target too."""
    if not isinstance(source, FeatureMLP):
        raise ConfigError("transfer needs a FeatureMLP source model, got "
                          f"{type(source).__name__}")
    excluded: set[str] = set()
    if source_features is not None:
        for table, specs in ((source_features.users, source.user_specs),
                             (source_features.items, source.item_specs)):
            excluded |= set(table.names) - {s.name for s in specs}
        excluded &= set(features.users.names) | set(features.items.names)
    view = SimpleNamespace(
        users=features.users, items=features.items,
        num_users=features.users.num_rows, num_items=features.items.num_rows,
        interactions=ratings if ratings is not None else Interactions(
            np.zeros(1, np.int64), np.zeros(1, np.int64),
            np.array([source.rating_mean], dtype=np.float32), np.full(1, np.nan)))
    return FeatureMLP.for_dataset(view, embedding_dim=source.embedding_dim,  # type: ignore[arg-type]
                                  hidden=source.hidden,
                                  user_id_embedding=source.num_users > 0,
                                  item_id_embedding=source.num_items > 0,
                                  exclude_fields=sorted(excluded))


def split_users(tasks: TaskSet, fraction: float, seed: int) -> tuple[TaskSet, TaskSet]:
    """Tasks split by user into (``fraction`` of the users, the rest), drawn with ``seed``."""
    order = np.random.default_rng([seed, 11]).permutation(len(tasks))
    count = int(round(fraction * len(tasks)))
    return tasks.select(np.sort(order[:count])), tasks.select(np.sort(order[count:]))


def subsample_users(tasks: TaskSet, fraction: float, seed: int) -> TaskSet:
    """``fraction`` of the tasks (at least one), drawn with ``seed``: the data-efficiency
    curve's x axis."""
    if fraction >= 1.0:
        return tasks
    order = np.random.default_rng([seed, 13]).permutation(len(tasks))
    count = max(1, int(round(fraction * len(tasks))))
    return tasks.select(np.sort(order[:count]))


class Transfer(Learner):
    """Pretrained ``source`` learner -> fine-tuned target learner (see module docstring).

    ``fit(train, features)`` builds the target model for ``features`` (the target data
    set), transfers weights (``report_`` says which), applies the freezing policy and
    fits a ``transfer.target_learner`` on the target tasks; ``adapt`` / ``predict`` /
    ``predict_tasks`` / ``save`` then go to that fitted learner (``target_``). Pass
    ``source_features`` (the source :class:`~metarec.data.Dataset`) to transfer id
    embeddings by raw id.
    """

    name = "transfer"

    def __init__(self, source: Learner, config: LearnerConfig | None = None,
                 transfer: TransferConfig | None = None, *,
                 source_features: HasFeatures | None = None) -> None:
        super().__init__(source.model, config or source.config)
        self.source = source
        self.transfer = transfer or TransferConfig()
        self.source_features = source_features if source_features is not None else (
            source.features_)
        self.target_: Learner | None = None
        self.report_: TransferReport | None = None
        self.frozen_: list[str] = []

    def build_target(self, features: HasFeatures, ratings: Interactions | None = None
                     ) -> Learner:
        """The target learner with transferred weights and the freezing policy applied."""
        model = target_model_for(self.source.model, features, ratings,
                                 self.source_features)
        self.report_ = transfer_weights(
            self.source.model, model, source_features=self.source_features,
            target_features=features, exclude_fields=self.transfer.exclude_fields,
            head=self.transfer.transfer_head)
        target = learner_class(self.transfer.target_learner)(model, self.config)
        self.frozen_ = apply_freezing(target, self.transfer.freeze, self.transfer.body_lr_ratio)
        return target

    def fit(self, train: TaskSet, features: HasFeatures, val: TaskSet | None = None, *,
            progress: Progress | None = None) -> Transfer:
        """Transfer from the source, then fine-tune on the target tasks ``train``."""
        target = self.build_target(features, train.all_ratings())
        try:
            target.fit(train, features, val, progress=progress)
        finally:
            for param in target.model.parameters():
                param.requires_grad_(True)
        self._adopt(target)
        return self

    def _adopt(self, target: Learner) -> None:
        self.target_ = target
        self.model, self.features_, self.known_ = target.model, target.features_, target.known_
        self.history_ = target.history_

    def _target(self) -> Learner:
        if self.target_ is None:
            raise CheckpointError("this transfer learner is not fitted: call fit() first")
        return self.target_

    def fit_epoch(self, train: TaskSet, features: HasFeatures, epoch: int) -> float:
        return self._target().fit_epoch(train, features, epoch)

    def adapt(self, batch: TaskBatch, steps: int | None = None) -> Adapted:
        return self._target().adapt(batch, steps)

    def predict(self, adapted: Adapted, user: Fields, item: Fields) -> torch.Tensor:
        return self._target().predict(adapted, user, item)

    def predict_tasks(self, tasks: TaskSet, steps: int | None = None) -> np.ndarray:
        return self._target().predict_tasks(tasks, steps)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self._target().state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self._target().load_state_dict(state)

    def save(self, path: str | Path) -> Path:
        """Save the fitted target learner (loadable by ``Learner.load`` as its own kind)
        plus ``transfer.json`` (settings and the transfer report)."""
        folder = self._target().save(path)
        meta = {"transfer": asdict(self.transfer), "source_learner": self.source.name,
                "report": None if self.report_ is None else self.report_.to_dict(),
                "frozen": self.frozen_}
        (folder / "transfer.json").write_text(json.dumps(meta, indent=2))
        return folder

    @staticmethod
    def load(path: str | Path, features: HasFeatures | None = None) -> Transfer:
        """Load a folder written by :meth:`save`."""
        folder = Path(path)
        if not (folder / "transfer.json").is_file():
            raise CheckpointError(f"{folder}: not a saved transfer learner (no transfer.json)")
        meta = json.loads((folder / "transfer.json").read_text())
        target = Learner.load(folder, features)
        learner = Transfer(target, target.config, TransferConfig.from_dict(meta["transfer"]))
        learner.source = None  # type: ignore[assignment]
        learner._adopt(target)
        learner.frozen_ = meta.get("frozen", [])
        if meta.get("report"):
            learner.report_ = TransferReport(
                [FieldTransfer(**f) for f in meta["report"]["fields"]], meta["report"]["head"])
        return learner
