"""Data-parallel meta-training over tasks with ``torch.distributed``.

Every rank draws the same global meta-batch of task indices from the seeded
:class:`~metarec.tasks.TaskBatcher` and takes a contiguous share of it
(:func:`shard_indices`). :meth:`MetaLearner.meta_gradients` returns the mean over the
rank's share; each rank multiplies it by its share size, the ranks sum the results in
one flat all-reduce and divide by the global batch size, so the update is the
single-process mean over the global batch (only the floating-point summation order
differs). No ``DistributedDataParallel``: one explicit all-reduce per meta-step, then
the learner's own :meth:`MetaLearner.apply_gradients` (hook, clip, Adam). Clipping acts
on the averaged gradient, so it stays equivalent too.

Rank 0 alone writes checkpoints; every rank can resume from one
(:meth:`DistributedMetaTrainer.resume`), including the optimiser state and the task
sampler's position, and a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import math
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from metarec.errors import CheckpointError, DistributedError, first_line
from metarec.files import replacing
from metarec.learners.base import HasFeatures, Progress, validation_record
from metarec.learners.meta_learner import MetaLearner
from metarec.tasks.taskset import TaskSet

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.pt"
MAY_CHANGE_ON_RESUME = frozenset({"epochs", "device", "eval_batch_size", "batch_size"})
"""Learner settings a resumed run may change: train longer, on another device, validate
in other batch sizes, or ``batch_size`` (``pretrain``'s minibatch, which no meta-learner
reads). Every other setting must be the checkpoint's."""
StepCallback = Callable[[dict[str, Any]], None]
"""Called after every meta-step with ``{"step", "epoch", "loss", "tasks"}``."""


@dataclass
class DistributedContext:
    """Where this process stands in the job: ``rank`` of ``world_size``, the backend
    (None when single-process), and the device collectives run on."""

    rank: int = 0
    world_size: int = 1
    backend: str | None = None
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        """Where all-reduce buffers live: the rank's GPU for NCCL, else the CPU."""
        if self.backend == "nccl":
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    @staticmethod
    def current() -> DistributedContext:
        """The context of an already initialised process group (e.g. by Ray Train), or a
        single-process one."""
        if dist.is_available() and dist.is_initialized():
            return DistributedContext(dist.get_rank(), dist.get_world_size(),
                                      dist.get_backend(),
                                      int(os.environ.get("LOCAL_RANK", "0")))
        return DistributedContext()

    def close(self, *, synchronise: bool = True) -> None:
        """Leave the process group if this context created it; with ``synchronise`` (a
        clean finish) every rank first waits for the others, so no rank tears its
        connections down while a peer still uses them (gloo aborts the process then)."""
        if self.owns_group and dist.is_initialized():
            if synchronise and self.world_size > 1:
                try:
                    dist.barrier()
                except RuntimeError:
                    pass  # a peer is gone already: nothing left to wait for
            dist.destroy_process_group()
            self.owns_group = False


def default_backend() -> str:
    """``nccl`` when a GPU and NCCL are available, else ``gloo``."""
    if torch.cuda.is_available() and dist.is_nccl_available():
        return "nccl"
    return "gloo"


def init_distributed(backend: str | None = None, timeout_s: float = 300.0
                     ) -> DistributedContext:
    """Join the process group described by the environment ``torchrun`` sets (``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``, ``LOCAL_RANK``).

    Without ``WORLD_SIZE`` (or with 1) the run is single-process and no group is made; an
    already initialised group (Ray Train) is reused. ``timeout_s`` bounds both the
    rendezvous and every collective, so a failed rank ends the job with a
    :class:`DistributedError` instead of a hang.
    """
    if not dist.is_available():
        raise DistributedError("this torch build has no torch.distributed support")
    if dist.is_initialized():
        return DistributedContext.current()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise DistributedError(f"WORLD_SIZE={world_size} but {', '.join(missing)} not set: "
                               "launch with torchrun or set them for every process")
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = backend or default_backend()
    if backend not in ("gloo", "nccl", "mpi"):
        raise DistributedError(f"unknown backend {backend!r}; choose gloo (CPU) or nccl (GPU)")
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise DistributedError("backend nccl needs a GPU and none is visible: use gloo")
        torch.cuda.set_device(local_rank)
    where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    try:
        dist.init_process_group(backend, rank=rank, world_size=world_size,
                                timeout=timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as error:
        raise DistributedError(f"rank {rank} of {world_size} could not join the process group "
                               f"at {where} with {backend} within {timeout_s:g} s: "
                               f"{first_line(error)}") from error
    return DistributedContext(rank, world_size, backend, local_rank, owns_group=True)


def shard_indices(index: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """Rank ``rank``'s contiguous share of the global meta-batch ``index``: sizes differ
    by at most one, earlier ranks take the smaller shares, and a share may be empty."""
    n = len(index)
    return index[n * rank // world_size:n * (rank + 1) // world_size]


def first_difference(saved: Any, current: Any, where: str = "model") -> str | None:
    """Where two JSON-like configurations differ first, with both values (``None`` when
    they agree). Floats agree within a relative 1e-9: statistics summed over many rows
    (a field's mean) differ in their last bits with the number of threads."""
    if isinstance(saved, dict) and isinstance(current, dict):
        for key in sorted(set(saved) | set(current), key=str):
            if key not in saved or key not in current:
                return f"{where}.{key} is only in the {'run' if key in current else 'checkpoint'}"
            found = first_difference(saved[key], current[key], f"{where}.{key}")
            if found is not None:
                return found
        return None
    if isinstance(saved, list) and isinstance(current, list):
        for index, (a, b) in enumerate(zip(saved, current, strict=False)):
            found = first_difference(a, b, f"{where}[{index}]")
            if found is not None:
                return found
        if len(saved) != len(current):
            return (f"{where}: {len(saved)} values in the checkpoint, {len(current)} in this "
                    "run")
        return None
    if isinstance(saved, bool) != isinstance(current, bool):
        return f"{where}: {saved!r} in the checkpoint, {current!r} in this run"
    numbers = (int, float)
    if (isinstance(saved, numbers) and isinstance(current, numbers)
            and (isinstance(saved, float) or isinstance(current, float))
            and (math.isclose(saved, current, rel_tol=1e-9, abs_tol=1e-12)
                 or (math.isnan(saved) and math.isnan(current)))):
        return None
    if saved == current:
        return None
    shown = [repr(v) if len(repr(v)) <= 60 else repr(v)[:57] + "..." for v in (saved, current)]
    return f"{where}: {shown[0]} in the checkpoint, {shown[1]} in this run"


def task_digest(tasks: TaskSet) -> str:
    """A SHA-256 of ``tasks`` (users, support and query rows, offsets): a resumed run
    checks that it trains on what its checkpoint trained on."""
    digest = hashlib.sha256()
    for part in (tasks.users, tasks.support_offsets, tasks.query_offsets):
        digest.update(np.ascontiguousarray(part).tobytes())
    for rows in (tasks.support, tasks.query):
        for column in (rows.user, rows.item, rows.rating):
            digest.update(np.ascontiguousarray(column).tobytes())
    return digest.hexdigest()


class DistributedMetaTrainer:
    """Meta-trains ``learner`` on ``train`` with the meta-batches split across ranks.

    Equivalent to ``learner.fit(train, features, val)`` on one process (same epochs,
    validation, early stopping and restore of the best state), for any ``world_size``.
    ``max_steps`` stops early (counting resumed steps) without restoring the best state;
    rank 0 writes ``learner.save(checkpoint_dir)`` and :data:`STATE_FILE` there every
    ``checkpoint_every`` steps and at the end. ``on_step`` / ``progress`` are called on
    every rank: callers show them on rank 0 only.
    """

    def __init__(self, learner: MetaLearner, train: TaskSet, features: HasFeatures,
                 val: TaskSet | None = None, *, context: DistributedContext | None = None,
                 checkpoint_dir: str | Path | None = None, checkpoint_every: int = 100,
                 max_steps: int | None = None, on_step: StepCallback | None = None,
                 progress: Progress | None = None) -> None:
        if not isinstance(learner, MetaLearner):
            raise DistributedError(f"learner {learner.name!r} is not a meta-learner; "
                                   "distributed training supports maml, fomaml, reptile, "
                                   "metasgd, maml-r and anil")
        if checkpoint_every < 1:
            raise DistributedError("checkpoint_every must be >= 1")
        self.learner, self.train, self.features, self.val = learner, train, features, val
        self.context = context or DistributedContext.current()
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.checkpoint_every, self.max_steps = checkpoint_every, max_steps
        self.on_step, self.progress = on_step, progress
        self.step_ = 0
        self.epoch_ = 0
        self.epoch_losses_: list[float] = []
        self.best_val_ = float("inf")
        self.best_state_: dict[str, torch.Tensor] | None = None
        self.waited_ = 0
        self.finished_ = False
        self._started = False
        self._digest: str | None = None

    def _model_json(self) -> str:
        """The model's configuration as the trainer state keeps it (JSON text)."""
        return json.dumps(self.learner.model.config(), sort_keys=True, default=str)

    def _train_digest(self) -> str:
        if self._digest is None:
            self._digest = task_digest(self.train)
        return self._digest

    # ---- one meta-step --------------------------------------------------------------
    def step(self, index: np.ndarray, tasks: TaskSet | None = None) -> float:
        """One meta-step on the global meta-batch ``index`` of ``tasks`` (default: the
        training tasks): this rank's share, the weighted all-reduce, then the learner's
        update. Returns the global mean loss."""
        learner = self.learner
        tasks = self.train if tasks is None else tasks
        shard = shard_indices(index, self.context.rank, self.context.world_size)
        names = list(learner.meta_parameters())
        if len(shard):
            batch = learner.training_batch(tasks, shard, index, self.features, self.epoch_)
            loss, grads = learner.meta_gradients(batch)
        else:  # a short last batch can leave a rank without tasks
            loss, grads = 0.0, {n: torch.zeros_like(p)
                                for n, p in learner.meta_parameters().items()}
        if self.context.world_size == 1:
            learner.apply_gradients(grads)
            return loss
        count = float(len(shard))
        flat = torch.cat([grads[n].detach().reshape(-1).to(learner.dtype) * count
                          for n in names]
                         + [torch.tensor([loss * count], dtype=learner.dtype,
                                         device=learner.device)])
        flat = self._all_reduce(flat) / len(index)
        sizes = [grads[n].numel() for n in names]
        pieces = flat[:-1].split(sizes)
        averaged = {n: piece.view_as(grads[n]) for n, piece in zip(names, pieces, strict=True)}
        learner.apply_gradients(averaged)
        return float(flat[-1])

    def _all_reduce(self, buffer: torch.Tensor) -> torch.Tensor:
        return self._collective(buffer, "all-reduce")

    def _collective(self, buffer: torch.Tensor, kind: str) -> torch.Tensor:
        work = buffer.to(self.context.device)
        try:
            if kind == "broadcast":
                dist.broadcast(work, src=0)
            else:
                dist.all_reduce(work, op=dist.ReduceOp.SUM)
        except RuntimeError as error:
            raise DistributedError(
                f"rank {self.context.rank}: {kind} at step {self.step_ + 1} failed "
                f"({first_line(error)}); another rank probably stopped: see its log") from error
        return work.to(buffer.device)

    # ---- training -------------------------------------------------------------------
    def _start(self) -> None:
        if self._started:
            return
        self.learner.features_ = self.features
        self.learner.known_ = self.train.all_ratings()
        self.learner.average_ = None
        self.learner.start(self.train, self.features)
        if self.context.world_size > 1:
            self._broadcast_parameters()
        self._started = True

    def _broadcast_parameters(self) -> None:
        # Ranks that built their models from different seeds would silently diverge.
        params = list(self.learner.meta_parameters().values())
        flat = self._collective(torch.nn.utils.parameters_to_vector(params).detach(),
                                "broadcast")
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(flat.to(params[0].dtype), params)

    def fit(self) -> MetaLearner:
        """Train until every epoch is done, early stopping, or ``max_steps``."""
        learner, config = self.learner, self.learner.config
        if not self._started:
            torch.manual_seed(config.seed)
        self._start()
        with learner.while_training():
            if not self._train_epochs():
                return learner  # the step budget is spent: checkpointed, to be resumed
            self.finished_ = True
            last_state = learner.state_dict()
            learner.load_fitted_state(self.best_state_)
        learner.model.eval()
        learner.after_training(self.val)
        self._checkpoint(learner_state=last_state)
        return learner

    def _train_epochs(self) -> bool:
        """Meta-steps until every epoch is done or early stopping (True), or until
        ``max_steps`` (False, after a checkpoint)."""
        learner, config = self.learner, self.learner.config
        batcher = learner.batcher_
        assert batcher is not None
        while not self.finished_:
            if self.epoch_ >= config.epochs:
                break
            if self._budget_spent():
                self._checkpoint()
                return False
            learner.model.train()
            tasks = learner.epoch_tasks(self.train, self.epoch_)
            for index in batcher.batch_indices():
                loss = self.step(index, tasks)
                learner.update_average()
                self.step_ += 1
                self.epoch_losses_.append(loss)
                if self.on_step is not None:
                    self.on_step({"step": self.step_, "epoch": self.epoch_ + 1, "loss": loss,
                                  "tasks": len(index)})
                if self.step_ % self.checkpoint_every == 0:
                    self._checkpoint()
                if self._budget_spent() and batcher.position < len(batcher):
                    break  # mid-epoch; an epoch whose last step spent it still ends
            else:
                self._end_epoch()
        return True

    def _budget_spent(self) -> bool:
        return self.max_steps is not None and self.step_ >= self.max_steps

    def _end_epoch(self) -> None:
        learner, config = self.learner, self.learner.config
        record: dict[str, Any] = {
            "epoch": self.epoch_ + 1,
            "train_loss": float(np.mean(self.epoch_losses_)) if self.epoch_losses_
            else float("nan"), **learner.scalar_parameters()}
        if self.val is not None and len(self.val):
            with learner.averaged():
                record.update(validation_record(self.validation_errors(self.val),
                                                config.loss))
                if record["val_loss"] < self.best_val_ - 1e-6:
                    self.best_val_, self.waited_ = record["val_loss"], 0
                    self.best_state_ = copy.deepcopy(learner.state_dict())
                else:
                    self.waited_ += 1
        learner.history_.append(record)
        self.epoch_ += 1
        self.epoch_losses_ = []
        if self.progress is not None:
            self.progress(record)
        if config.patience is not None and self.waited_ >= config.patience:
            self.finished_ = True
        if self.context.is_main:
            logger.info("epoch %d: %s", record["epoch"], record)

    def validation_errors(self, tasks: TaskSet) -> dict[str, float]:
        """Query ``mse`` and ``mae`` after adaptation over ``tasks``, each rank predicting
        a contiguous share and the error sums added across ranks."""
        learner = self.learner
        learner.model.eval()
        share = shard_indices(np.arange(len(tasks)), self.context.rank,
                              self.context.world_size)
        sums = torch.zeros(3, dtype=torch.float64)  # squared, absolute, rows
        if len(share):
            part = tasks.select(share)
            error = learner.predict_tasks(part) - part.query.rating
            sums = torch.tensor([np.sum(error ** 2), np.sum(np.abs(error)), len(error)],
                                dtype=torch.float64)
        if self.context.world_size > 1:
            sums = self._all_reduce(sums)
        learner.model.train()
        sse, sae, rows = (float(x) for x in sums)
        if not rows:
            return {"mse": float("nan"), "mae": float("nan")}
        return {"mse": sse / rows, "mae": sae / rows}

    # ---- checkpoints ----------------------------------------------------------------
    def state_dict(self, learner_state: dict[str, torch.Tensor] | None = None
                   ) -> dict[str, Any]:
        """Everything a resumed run needs: learner weights, optimiser, the weights'
        moving average (``average_decay``), sampler position, step, epoch,
        early-stopping state and the torch RNG."""
        learner = self.learner
        assert learner.optimizer_ is not None and learner.batcher_ is not None
        return {
            "learner": learner.name,
            "config": learner.config.to_dict(),
            "step": self.step_,
            "epoch": self.epoch_,
            "epoch_losses": list(self.epoch_losses_),
            "history": copy.deepcopy(learner.history_),
            "best_val": self.best_val_,
            "best_state": self.best_state_,
            "waited": self.waited_,
            "finished": self.finished_,
            "learner_state": learner_state or learner.state_dict(),
            "optimizer": learner.optimizer_.state_dict(),
            "average": learner.average_,
            "batcher": learner.batcher_.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "world_size": self.context.world_size,
            "model": self._model_json(),
            "train_digest": self._train_digest(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (any world size may resume)."""
        learner = self.learner
        if state["learner"] != learner.name:
            raise CheckpointError(f"checkpoint holds learner {state['learner']!r}, not "
                                  f"{learner.name!r}")
        saved, current = state["config"], learner.config.to_dict()
        differ = [f"{k}={saved[k]!r} (this run: {current[k]!r})" for k in current
                  if k in saved and k not in MAY_CHANGE_ON_RESUME and saved[k] != current[k]]
        if differ:
            raise CheckpointError(f"checkpoint was trained with {', '.join(differ)}: resume "
                                  "with the same settings (only "
                                  f"{', '.join(sorted(MAY_CHANGE_ON_RESUME))} may change) "
                                  "or start a new --out")
        model = json.loads(self._model_json())
        where = first_difference(json.loads(state.get("model", "null")) or model, model)
        if where is not None:
            raise CheckpointError(f"checkpoint holds another model ({where}): resume with "
                                  "the same model and data, or start a new --out")
        if state.get("train_digest", self._train_digest()) != self._train_digest():
            raise CheckpointError("checkpoint was trained on other training tasks (the data "
                                  "set or the split differ from this run's): resume with the "
                                  "same data and split, or start a new --out")
        self._start()
        assert learner.optimizer_ is not None and learner.batcher_ is not None
        learner.load_state_dict(state["learner_state"])
        learner.optimizer_.load_state_dict(state["optimizer"])
        average = state.get("average")
        learner.average_ = None if average is None else [t.to(learner.device) for t in average]
        learner.batcher_.load_state_dict(state["batcher"])
        learner.history_ = list(state["history"])
        torch.set_rng_state(state["torch_rng"])
        self.step_, self.epoch_ = int(state["step"]), int(state["epoch"])
        self.epoch_losses_ = list(state["epoch_losses"])
        self.best_val_, self.best_state_ = float(state["best_val"]), state["best_state"]
        self.waited_ = int(state["waited"])
        # A finished run resumed with more epochs goes on training, unless it stopped
        # early (its patience ran out): then resuming it changes nothing.
        patience = learner.config.patience
        stopped_early = patience is not None and self.waited_ >= patience
        self.finished_ = bool(state["finished"]) and (
            self.epoch_ >= learner.config.epochs or stopped_early)

    def resume(self) -> bool:
        """Load :data:`STATE_FILE` from ``checkpoint_dir`` if there is one (every rank:
        with several, each must load the same file, or all of them stop)."""
        if self.checkpoint_dir is None:
            raise CheckpointError("resume needs a checkpoint_dir")
        path = self.checkpoint_dir / STATE_FILE
        self._start()  # every rank meets in its broadcast, with a checkpoint or without
        found, failure, digest = path.is_file(), None, 0.0
        if found:
            try:
                digest = self._load(path)
            except CheckpointError as error:  # raised after the other ranks hear of it
                failure = error
        if self.context.world_size > 1:
            self._check_same_start(found, failure is not None, digest)
        if failure is not None:
            raise failure
        if found and self.context.is_main:
            logger.info("resumed from %s at step %d (epoch %d)", path, self.step_, self.epoch_)
        return found

    def _load(self, path: Path) -> float:
        """Load the trainer state at ``path`` (on the CPU first, wherever it was saved);
        returns a number that names the file's bytes (48 bits of their SHA-256)."""
        try:
            data = path.read_bytes()
            if zipfile.is_zipfile(io.BytesIO(data)):  # torch.load does not check the CRCs
                damaged = zipfile.ZipFile(io.BytesIO(data)).testzip()
                if damaged is not None:
                    raise CheckpointError(f"{path}: damaged trainer state (bad checksum of "
                                          f"{damaged}); delete it to start over")
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except CheckpointError:
            raise
        except Exception as error:  # a damaged file fails in many ways inside torch.load
            raise CheckpointError(f"{path}: unreadable trainer state ({first_line(error)}); "
                                  "delete it to start over") from error
        try:
            self.load_state_dict(state)
        except CheckpointError as error:
            raise CheckpointError(f"{path}: {error}") from None
        except Exception as error:  # keys or values of the wrong kind
            raise CheckpointError(f"{path}: not a trainer state this run can resume "
                                  f"({first_line(error)})") from error
        return float(int.from_bytes(hashlib.sha256(data).digest()[:6], "big"))

    def _check_same_start(self, found: bool, failed: bool, digest: float) -> None:
        """Every rank must resume from the same checkpoint file (``checkpoint_dir`` on
        storage they share), and every rank must have loaded it: otherwise all stop,
        rather than sum gradients of different models or wait for a rank that left."""
        mine = torch.tensor([float(found), float(self.step_), digest], dtype=torch.float64)
        first = self._collective(mine.clone(), "broadcast")
        failures, differ = self._all_reduce(torch.tensor(
            [float(failed), float(not failed and not torch.equal(mine, first))],
            dtype=torch.float64)).tolist()
        rank = self.context.rank
        if failures and not failed:
            raise CheckpointError(f"rank {rank}: {int(failures)} other rank(s) could not load "
                                  "their checkpoint: see their message")
        if differ and not failed:
            at = f"step {int(first[1].item())}" if first[0].item() else "no checkpoint"
            raise CheckpointError(
                f"rank {rank}: the ranks resumed from different checkpoints (rank 0 from "
                f"{at}; {int(differ)} rank(s) differ): every rank must see the same "
                f"{self.checkpoint_dir} (storage they share)")

    def _checkpoint(self, learner_state: dict[str, torch.Tensor] | None = None) -> None:
        if self.checkpoint_dir is None or not self.context.is_main:
            return
        folder = self.learner.save(self.checkpoint_dir)
        with replacing(folder / STATE_FILE) as temporary:
            torch.save(self.state_dict(learner_state), temporary)
        logger.info("checkpoint at step %d in %s", self.step_, folder)

    def total_steps(self) -> int:
        """Meta-steps of the whole run if it does not stop early."""
        steps = self.learner.config.epochs * -(-len(self.train)
                                                // self.learner.config.meta_batch_size)
        return steps if self.max_steps is None else min(steps, self.max_steps)
