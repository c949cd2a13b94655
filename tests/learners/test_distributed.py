"""Distributed meta-training: 2 processes equal 1, a resumed run equals an uninterrupted
one, and a failed rank ends the job with an error instead of a hang."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from metarec.data.splits import SplitConfig, split_dataset
from metarec.data.synthetic import SyntheticConfig, generate
from metarec.errors import CheckpointError
from metarec.learners import LearnerConfig, learner_class
from metarec.learners.distributed import (
    STATE_FILE,
    DistributedContext,
    DistributedError,
    DistributedMetaTrainer,
    first_difference,
    init_distributed,
    shard_indices,
)
from metarec.models import build_model
from metarec.tasks.batch import pad_tasks

LEARNERS = ("maml-r", "reptile")
STEPS = 20


def _data():
    dataset = generate(SyntheticConfig(num_users=300, num_items=200, num_ratings=15000))
    return dataset, split_dataset(dataset, SplitConfig(seed=0))


def _learner(name: str, dataset, seed: int = 0, item_ids: bool = False):
    torch.manual_seed(seed)
    model = build_model("FeatureMLP", dataset, embedding_dim=4, hidden=(8,),
                        item_id_embedding=item_ids)
    config = LearnerConfig(dtype="float64", meta_batch_size=32, epochs=30, inner_steps=2,
                           patience=None, seed=0)
    return learner_class(name)(model, config)


def _params(learner) -> dict[str, torch.Tensor]:
    return learner.state_dict()


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, out: str, resume: bool) -> None:
    """One rank: 20 meta-steps of each learner. With ``resume``: 10 steps and a checkpoint,
    continued in memory to 20, then a fresh learner resumed from the checkpoint to 20."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    context = init_distributed("gloo", timeout_s=60)
    try:
        dataset, split = _data()
        for name in LEARNERS:
            folder = Path(out) / name
            learner = _learner(name, dataset)
            trainer = DistributedMetaTrainer(learner, split.train, dataset, split.validation,
                                             context=context, checkpoint_dir=folder,
                                             checkpoint_every=1000,
                                             max_steps=STEPS // 2 if resume else STEPS)
            trainer.fit()
            result = {"straight": _params(learner), "history": learner.history_}
            if resume:
                context_barrier()  # rank 0 has written the step-10 checkpoint
                trainer.max_steps, trainer.checkpoint_dir = STEPS, None
                trainer.fit()
                # A fresh learner with other initial weights: all state comes from disk.
                resumed = DistributedMetaTrainer(_learner(name, dataset, seed=1), split.train,
                                                 dataset, split.validation, context=context,
                                                 checkpoint_dir=folder, max_steps=STEPS)
                assert resumed.resume()
                resumed.fit()
                result = {"straight": _params(learner), "history": learner.history_,
                          "resumed": _params(resumed.learner),
                          "resumed_history": resumed.learner.history_}
            if rank == 0:
                torch.save(result, Path(out) / f"{name}.pt")
            context_barrier()
    finally:
        context.close()


def context_barrier() -> None:
    torch.distributed.barrier()


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.fixture(scope="module")
def single(data):
    """1 process, meta-batch 32, 20 meta-steps: the reference."""
    dataset, split = data
    results = {}
    for name in LEARNERS:
        learner = _learner(name, dataset)
        DistributedMetaTrainer(learner, split.train, dataset, split.validation,
                               max_steps=STEPS).fit()
        results[name] = learner
    return results


def _spawn_two(out: Path, resume: bool) -> dict[str, dict]:
    mp.spawn(_worker, args=(2, _free_port(), str(out), resume), nprocs=2, join=True)
    return {name: torch.load(out / f"{name}.pt", weights_only=True) for name in LEARNERS}


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """2 processes (gloo), global meta-batch 32 (16 tasks each), 20 meta-steps."""
    return _spawn_two(tmp_path_factory.mktemp("distributed"), resume=False)


def test_shards_cover_the_batch_disjointly() -> None:
    index = np.arange(100, 115)
    shards = [shard_indices(index, r, 4) for r in range(4)]
    assert [len(s) for s in shards] == [3, 4, 4, 4]
    np.testing.assert_array_equal(np.concatenate(shards), index)
    assert [len(shard_indices(np.arange(1), r, 2)) for r in range(2)] == [0, 1]


@pytest.mark.parametrize("name", ["maml", "fomaml", "metasgd", "maml-r", "anil", "reptile"])
def test_share_weighted_mean_of_shard_gradients_is_the_batch_gradient(name, data) -> None:
    """What the all-reduce computes, in one process: sum_r n_r * mean_r / n == mean."""
    dataset, split = data
    learner = _learner(name, dataset)
    index = np.arange(11)
    full_loss, full = learner.meta_gradients(
        pad_tasks(split.train, index, dataset.users, dataset.items))
    combined = {k: torch.zeros_like(v) for k, v in full.items()}
    loss = 0.0
    for rank in range(3):
        shard = shard_indices(index, rank, 3)
        part_loss, part = learner.meta_gradients(
            pad_tasks(split.train, shard, dataset.users, dataset.items))
        loss += part_loss * len(shard) / len(index)
        for k in combined:
            combined[k] += part[k] * len(shard) / len(index)
    assert loss == pytest.approx(full_loss, abs=1e-12)
    assert _max_diff(combined, full) < 1e-12


@pytest.mark.parametrize("name", LEARNERS)
def test_two_processes_equal_one(name: str, single, two_processes) -> None:
    reference = _params(single[name])
    assert _max_diff(two_processes[name]["straight"], reference) < 1e-5
    # and the sharded validation gives the same per-epoch record
    for ours, theirs in zip(two_processes[name]["history"], single[name].history_,
                            strict=True):
        assert ours["epoch"] == theirs["epoch"]
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], abs=1e-9)
        for key in ("val_loss", "val_mse", "val_mae"):
            assert ours[key] == pytest.approx(theirs[key], abs=1e-9)
    assert len(single[name].history_) == 3  # 20 steps of 6 per epoch: 3 whole epochs


@pytest.mark.slow
def test_two_process_resume_equals_uninterrupted(single, tmp_path) -> None:
    runs = _spawn_two(tmp_path, resume=True)
    for name in LEARNERS:
        assert _max_diff(runs[name]["resumed"], runs[name]["straight"]) == 0.0
        assert runs[name]["resumed_history"] == runs[name]["history"]
        assert _max_diff(runs[name]["straight"], _params(single[name])) < 1e-5


def test_resume_after_10_steps_equals_20_uninterrupted(data, single, tmp_path) -> None:
    dataset, split = data
    folder = tmp_path / "checkpoints" / "reptile"
    first = DistributedMetaTrainer(_learner("reptile", dataset), split.train, dataset,
                                   split.validation, checkpoint_dir=folder,
                                   checkpoint_every=4, max_steps=10)
    first.fit()
    state = torch.load(folder / STATE_FILE, weights_only=True)
    assert (state["step"], state["epoch"], state["batcher"]["position"]) == (10, 1, 4)
    assert len(state["epoch_losses"]) == 4 and not state["finished"]
    assert (folder / "weights.safetensors").is_file()

    learner = _learner("reptile", dataset, seed=7)
    second = DistributedMetaTrainer(learner, split.train, dataset, split.validation,
                                    checkpoint_dir=folder, max_steps=STEPS)
    assert second.resume()
    second.fit()
    assert second.step_ == STEPS
    assert _max_diff(_params(learner), _params(single["reptile"])) == 0.0
    assert learner.history_ == single["reptile"].history_


@pytest.mark.parametrize(("redraw", "id_dropout"), [(False, 0.0), (True, 0.0), (False, 0.3)])
def test_trainer_on_one_process_equals_learner_fit(data, redraw: bool,
                                                   id_dropout: float) -> None:
    dataset, split = data
    fitted = _learner("reptile", dataset, item_ids=id_dropout > 0)
    fitted.config.epochs, fitted.config.redraw_query = 2, redraw
    fitted.config.item_id_dropout = id_dropout
    fitted.fit(split.train, dataset, split.validation)
    trained = _learner("reptile", dataset, item_ids=id_dropout > 0)
    trained.config.epochs, trained.config.redraw_query = 2, redraw
    trained.config.item_id_dropout = id_dropout
    trainer = DistributedMetaTrainer(trained, split.train, dataset, split.validation)
    trainer.fit()
    assert trainer.step_ == 12 and trainer.finished_
    assert _max_diff(_params(trained), _params(fitted)) == 0.0
    assert trained.history_ == fitted.history_


def test_trainer_fits_ridges_neighbourhood_term_as_learner_fit(data) -> None:
    """Trained without the term and its scale and damping chosen on validation after
    training, as ``Ridge.fit`` does."""
    dataset, split = data

    def ridge():
        torch.manual_seed(0)
        model = build_model("FeatureMF", dataset, embedding_dim=4, hidden=(8,), factors=3)
        config = LearnerConfig(dtype="float64", meta_batch_size=32, epochs=2, patience=None,
                               seed=0, neighbours=5)
        return learner_class("ridge")(model, config)

    fitted = ridge().fit(split.train, dataset, split.validation)
    trained = ridge()
    DistributedMetaTrainer(trained, split.train, dataset, split.validation).fit()
    assert _max_diff(_params(trained), _params(fitted)) == 0.0
    assert trained.history_ == fitted.history_
    assert fitted.neighbour_scale > 0  # chosen, and the same: the state holds it
    tasks = split.scenarios["warm"]
    np.testing.assert_array_equal(trained.predict_tasks(tasks), fitted.predict_tasks(tasks))


def test_a_step_budget_that_ends_an_epoch_still_ends_it(data) -> None:
    """--max-steps on an epoch boundary records that epoch; on the run's last step it
    finishes the run exactly as learner.fit does."""
    dataset, split = data

    def reptile(epochs: int):
        learner = _learner("reptile", dataset)
        learner.config.epochs = epochs
        return learner

    one = DistributedMetaTrainer(reptile(2), split.train, dataset, split.validation,
                                 max_steps=6)  # one epoch is 6 meta-steps
    one.fit()
    assert (one.step_, one.epoch_, one.finished_) == (6, 1, False)
    assert [h["epoch"] for h in one.learner.history_] == [1]
    fitted = reptile(2).fit(split.train, dataset, split.validation)
    whole = DistributedMetaTrainer(reptile(2), split.train, dataset, split.validation,
                                   max_steps=12)
    whole.fit()
    assert whole.finished_ and whole.learner.history_ == fitted.history_
    assert _max_diff(_params(whole.learner), _params(fitted)) == 0.0


def test_resuming_a_run_that_stopped_early_changes_nothing(data, tmp_path) -> None:
    dataset, split = data

    def early():
        learner = _learner("reptile", dataset)
        learner.config.patience, learner.config.meta_lr = 1, 0.3
        return learner

    first = DistributedMetaTrainer(early(), split.train, dataset, split.validation,
                                   checkpoint_dir=tmp_path)
    first.fit()
    assert first.finished_ and first.epoch_ < 30  # stopped by its patience
    again = DistributedMetaTrainer(early(), split.train, dataset, split.validation,
                                   checkpoint_dir=tmp_path)
    assert again.resume()
    again.fit()
    assert (again.step_, again.epoch_) == (first.step_, first.epoch_)
    assert _max_diff(_params(again.learner), _params(first.learner)) == 0.0


def test_an_unreadable_trainer_state_is_a_checkpoint_error(data, tmp_path) -> None:
    dataset, split = data
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / STATE_FILE).write_text("garbage")
    trainer = DistributedMetaTrainer(_learner("reptile", dataset), split.train, dataset,
                                     checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match="unreadable trainer state"):
        trainer.resume()


def test_resume_refuses_a_different_meta_batch_size(data, tmp_path) -> None:
    dataset, split = data
    DistributedMetaTrainer(_learner("reptile", dataset), split.train, dataset,
                           checkpoint_dir=tmp_path, max_steps=1).fit()
    learner = _learner("reptile", dataset)
    learner.config.meta_batch_size = 16
    with pytest.raises(Exception, match="meta_batch_size=32"):
        DistributedMetaTrainer(learner, split.train, dataset, checkpoint_dir=tmp_path).resume()
    assert not DistributedMetaTrainer(learner, split.train, dataset,
                                      checkpoint_dir=tmp_path / "none").resume()


@pytest.mark.parametrize("change", ["inner_steps", "model", "split", "epochs", "batch_size",
                                    "damaged", "weights"])
def test_resume_refuses_other_settings_model_or_tasks(data, tmp_path, change: str) -> None:
    """A resume had checked only meta_batch_size, seed and dtype: other settings, another
    model or another data set trained on silently (the sampler's old position included);
    a damaged state had been a KeyError."""
    dataset, split = data
    DistributedMetaTrainer(_learner("reptile", dataset), split.train, dataset,
                           checkpoint_dir=tmp_path, max_steps=2).fit()
    learner, train = _learner("reptile", dataset), split.train
    message = None
    if change == "inner_steps":
        learner.config.inner_steps = 3
        message = r"trained with inner_steps=2 \(this run: 3\)"
    elif change == "model":
        torch.manual_seed(0)
        model = build_model("FeatureMLP", dataset, embedding_dim=4, hidden=(16,))
        learner = learner_class("reptile")(model, learner.config)
        message = r"checkpoint holds another model \(model.hidden\[0\]: 8 in the checkpoint"
    elif change == "split":
        train = split_dataset(dataset, SplitConfig(seed=1)).train
        message = "trained on other training tasks"
    elif change == "epochs":  # may change: train longer
        learner.config.epochs = 31
    elif change == "batch_size":  # may change: pretrain's, which no meta-learner reads
        learner.config.batch_size = 7
    elif change == "damaged":
        state = torch.load(tmp_path / STATE_FILE, weights_only=True)
        del state["batcher"]
        torch.save(state, tmp_path / STATE_FILE)
        message = r"not a trainer state this run can resume \('batcher'\)"
    else:
        state = torch.load(tmp_path / STATE_FILE, weights_only=True)
        state["learner_state"] = [1, 2]
        torch.save(state, tmp_path / STATE_FILE)
        message = "not a trainer state this run can resume"
    trainer = DistributedMetaTrainer(learner, train, dataset, checkpoint_dir=tmp_path)
    if message is None:
        assert trainer.resume() and trainer.step_ == 2
    else:
        with pytest.raises(CheckpointError, match=message):
            trainer.resume()


def test_first_difference_names_the_field_and_forgives_the_last_bits() -> None:
    saved = {"hidden": [8], "numeric_stats": {"item.year": [1993.991775, 3.732372652149711]}}
    assert first_difference(saved, {"hidden": [8], "numeric_stats": {
        "item.year": [1993.991775, 3.7323726521495426]}}) is None  # 1 vs 2 threads
    assert first_difference(saved, {**saved, "hidden": [16]}) == (
        "model.hidden[0]: 8 in the checkpoint, 16 in this run")
    assert first_difference(saved, {**saved, "extra": 1}) == "model.extra is only in the run"
    assert first_difference({"a": float("nan")}, {"a": float("nan")}) is None
    assert first_difference({"a": True}, {"a": 1}) is not None
    assert first_difference({"n": 3_000_000_000}, {"n": 3_000_000_002}) is not None  # exact
    assert first_difference({"v": ["a", "b"]}, {"v": ["a", "b", "c"]}) == (
        "model.v: 2 values in the checkpoint, 3 in this run")
    assert first_difference({"v": ["a", "b"]}, {"v": ["a", "x", "c"]}) == (
        "model.v[1]: 'b' in the checkpoint, 'x' in this run")


def test_every_damaged_trainer_state_is_a_checkpoint_error(data, tmp_path) -> None:
    """Damaged files had raised ValueError, UnicodeDecodeError or KeyError from inside
    torch.load, or loaded silently with wrong values (torch.load does not check the
    archive's checksums)."""
    dataset, split = data
    DistributedMetaTrainer(_learner("reptile", dataset), split.train, dataset,
                           checkpoint_dir=tmp_path / "good", max_steps=2).fit()
    good = (tmp_path / "good" / STATE_FILE).read_bytes()
    rng = np.random.default_rng(0)
    damaged = [good[:cut] for cut in rng.integers(1, len(good), 15)]
    for _ in range(40):
        flipped = bytearray(good)
        at = int(rng.integers(0, len(good)))
        flipped[at] ^= 1 + int(rng.integers(0, 255))
        damaged.append(bytes(flipped))
    resumed = 0
    for number, content in enumerate(damaged):
        folder = tmp_path / f"d{number}"
        folder.mkdir()
        (folder / STATE_FILE).write_bytes(content)
        trainer = DistributedMetaTrainer(_learner("reptile", dataset), split.train, dataset,
                                         checkpoint_dir=folder)
        try:
            trainer.resume()
        except CheckpointError:
            continue
        # Only a flip the format ignores may load (zip padding, an unused header field):
        # then the weights are the checkpoint's own.
        first = DistributedMetaTrainer(_learner("reptile", dataset), split.train, dataset,
                                       checkpoint_dir=tmp_path / "good")
        first.resume()
        assert _max_diff(_params(trainer.learner), _params(first.learner)) == 0.0
        resumed += 1
    assert resumed < len(damaged) // 4


def _retag_storages_as_cuda(path: Path) -> None:
    """Make a trainer state look saved on a GPU: its tensors' storages say ``cuda:0``."""
    import zipfile

    source = zipfile.ZipFile(path)
    copy = path.with_suffix(".tmp")
    with zipfile.ZipFile(copy, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith("data.pkl"):
                assert b"X\x03\x00\x00\x00cpu" in data
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            target.writestr(info.filename, data)
    source.close()
    copy.replace(path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a host without a GPU")
def test_a_state_saved_on_a_gpu_resumes_on_the_cpu(data, tmp_path) -> None:
    """``device`` may change on resume, but the state had been loaded where it was saved:
    "unreadable trainer state ... delete it to start over" on a host without a GPU."""
    dataset, split = data
    first = DistributedMetaTrainer(_learner("reptile", dataset), split.train, dataset,
                                   checkpoint_dir=tmp_path, max_steps=3)
    first.fit()
    _retag_storages_as_cuda(tmp_path / STATE_FILE)
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(tmp_path / STATE_FILE, weights_only=True)
    again = DistributedMetaTrainer(_learner("reptile", dataset, seed=1), split.train, dataset,
                                   checkpoint_dir=tmp_path)
    assert again.resume() and again.step_ == 3
    assert _max_diff(_params(again.learner), _params(first.learner)) == 0.0


def test_resume_forgives_the_last_bits_of_a_models_statistics(data, tmp_path) -> None:
    """A model's numeric statistics differ in their last bits with torch's thread count:
    a run continued with other threads (or under torchrun) had been refused."""
    import json

    dataset, split = data
    DistributedMetaTrainer(_learner("reptile", dataset), split.train, dataset,
                           checkpoint_dir=tmp_path, max_steps=2).fit()
    state = torch.load(tmp_path / STATE_FILE, weights_only=True)
    model = json.loads(state["model"])
    stats = model["numeric_stats"]
    field = next(iter(stats))
    stats[field] = [stats[field][0] * (1 + 1e-15), stats[field][1]]
    state["model"] = json.dumps(model)
    torch.save(state, tmp_path / STATE_FILE)
    assert DistributedMetaTrainer(_learner("reptile", dataset), split.train, dataset,
                                  checkpoint_dir=tmp_path).resume()


def _resume_worker(rank: int, port: int, out: str) -> None:
    """Each rank resumes from a folder of its own (``out/rankR``), as ranks without a
    shared ``--out`` would; what each raised goes to ``out/errorR.txt``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE="2", LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    context = init_distributed("gloo", timeout_s=60)
    try:
        dataset, split = _data()
        trainer = DistributedMetaTrainer(_learner("reptile", dataset), split.train, dataset,
                                         context=context,
                                         checkpoint_dir=Path(out) / f"rank{rank}")
        try:
            trainer.resume()
        except CheckpointError as error:
            Path(out, f"error{rank}.txt").write_text(str(error))
    finally:
        context.close()
    # Leave without the interpreter's teardown, which can abort in gloo's threads now and
    # then ("terminate called without an active exception") after a clean close.
    os._exit(0)


@pytest.mark.parametrize("case", ["one rank has none", "same step, other weights",
                                  "one rank's is damaged"])
def test_ranks_that_cannot_resume_from_one_checkpoint_all_stop(data, tmp_path,
                                                              case: str) -> None:
    """Ranks without shared storage had resumed from different steps (or from files of
    one step) and summed the gradients of different models; a rank that could not load
    its file had left the others waiting in a collective until the timeout."""
    dataset, split = data
    DistributedMetaTrainer(_learner("reptile", dataset), split.train, dataset,
                           checkpoint_dir=tmp_path / "rank0", max_steps=3).fit()
    if case == "same step, other weights":
        DistributedMetaTrainer(_learner("reptile", dataset, seed=1), split.train, dataset,
                               checkpoint_dir=tmp_path / "rank1", max_steps=3).fit()
        expected = ["resumed from different checkpoints (rank 0 from step 3; 1 rank(s)"] * 2
    elif case == "one rank's is damaged":
        (tmp_path / "rank1").mkdir()
        (tmp_path / "rank1" / STATE_FILE).write_text("garbage")
        expected = ["1 other rank(s) could not load their checkpoint",
                    "unreadable trainer state"]
    else:
        expected = ["resumed from different checkpoints (rank 0 from step 3; 1 rank(s)"] * 2
    began = time.perf_counter()
    mp.spawn(_resume_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    assert time.perf_counter() - began < 50  # no rank waited for the 60 s timeout
    for rank in (0, 1):
        assert expected[rank] in (tmp_path / f"error{rank}.txt").read_text()


def test_pretrain_is_refused(data) -> None:
    dataset, split = data
    model = build_model("FeatureMLP", dataset, embedding_dim=4, hidden=(8,))
    with pytest.raises(DistributedError, match="not a meta-learner"):
        DistributedMetaTrainer(learner_class("pretrain")(model), split.train, dataset)


def test_single_process_needs_no_group(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_distributed() == DistributedContext()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(DistributedError, match="MASTER_ADDR"):
        init_distributed()


def _failing_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE="2", LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    context = init_distributed("gloo", timeout_s=20)
    dataset, split = _data()

    def die(record: dict) -> None:
        if rank == 1 and record["step"] == 2:
            os._exit(3)  # a crash: no clean shutdown of the group

    trainer = DistributedMetaTrainer(_learner("reptile", dataset), split.train, dataset,
                                     context=context, max_steps=5, on_step=die)
    try:
        trainer.fit()
    except DistributedError as error:
        Path(out, "error.txt").write_text(str(error))
        # Leave at once: the interpreter's teardown of a process group whose peer died can
        # abort in gloo's threads ("terminate called without an active exception").
        os._exit(4)


@pytest.mark.slow
def test_a_failed_rank_ends_the_job_with_a_message(tmp_path) -> None:
    spawn = mp.get_context("spawn")
    port = _free_port()
    ranks = [spawn.Process(target=_failing_worker, args=(r, port, str(tmp_path)))
             for r in range(2)]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(timeout=120)
    alive = [p.is_alive() for p in ranks]
    for process in ranks:
        if process.is_alive():
            process.kill()
    assert alive == [False, False]
    assert [p.exitcode for p in ranks] == [4, 3]
    assert "another rank probably stopped" in (tmp_path / "error.txt").read_text()
