"""``learner.device``: the setting, and (where a GPU is visible) CUDA == CPU for every
learner's meta-gradients, adaptation, training, save/load and online serving."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from metarec.data.dataset import Interactions
from metarec.data.splits import SplitConfig, split_dataset
from metarec.data.synthetic import SyntheticConfig, generate
from metarec.errors import ConfigError
from metarec.learners import Learner, LearnerConfig, MetaLearner, learner_class
from metarec.learners.online import OnlineConfig, OnlineRecommender
from metarec.learners.registry import LEARNERS
from metarec.models import FeatureMF, FeatureMLP
from metarec.tasks.batch import pad_tasks

pytestmark = pytest.mark.usefixtures("one_thread")

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("value", ["tpu", "cuda:x", "", "gpu0"])
def test_an_unknown_device_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match="device"):
        LearnerConfig(device=value)


def test_auto_is_the_cpu_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert LearnerConfig(device="auto").torch_device() == torch.device("cpu")
    assert LearnerConfig().torch_device() == torch.device("cpu")


def test_a_missing_gpu_is_a_config_error_naming_the_setting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for value in ("cuda", "cuda:0"):
        with pytest.raises(ConfigError, match=r"learner.device='cuda.*0 visible CUDA"):
            LearnerConfig(device=value).torch_device()


def test_the_model_and_every_learned_tensor_live_on_the_learner_device() -> None:
    ds = generate(SyntheticConfig(num_users=40, num_items=30, num_ratings=800))
    for name in ("metasgd", "ridge"):  # learner-owned tensors too
        learner = learner_class(name)(FeatureMLP.for_dataset(ds, embedding_dim=4,
                                                              hidden=(8,)),
                                      LearnerConfig(device="cpu"))
        assert learner.device == torch.device("cpu")
        assert {t.device for t in learner.state_dict().values()} == {torch.device("cpu")}


def test_a_gpu_trained_checkpoint_loads_on_a_cpu_host(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path) -> None:
    ds = generate(SyntheticConfig(num_users=40, num_items=30, num_ratings=800))
    split = split_dataset(ds, SplitConfig(seed=0))
    learner = learner_class("maml-r")(FeatureMLP.for_dataset(ds, embedding_dim=4,
                                                              hidden=(8,)),
                                      LearnerConfig(epochs=1, patience=None))
    learner.fit(split.train, ds)
    folder = learner.save(tmp_path / "ckpt")
    meta = json.loads((folder / "learner.json").read_text())
    meta["config"]["device"] = "cuda"  # as written by a run on a GPU
    (folder / "learner.json").write_text(json.dumps(meta))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    loaded = Learner.load(folder, ds)
    assert loaded.device == torch.device("cpu") and loaded.config.device == "cpu"
    tasks = split.scenarios["new_users"]
    np.testing.assert_array_equal(loaded.predict_tasks(tasks), learner.predict_tasks(tasks))
    with pytest.raises(ConfigError, match="0 visible CUDA"):  # asked for explicitly
        Learner.load(folder, ds, device="cuda")


def test_cli_names_a_bad_device_in_one_line(tmp_path) -> None:
    done = subprocess.run([sys.executable, "-m", "metarec", "run", "--set",
                           "learner.device=tpu", "--out", str(tmp_path / "x")],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: learner.device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got 'tpu'"]


# ---- CUDA == CPU (run where a GPU is visible) ----------------------------------------

@pytest.fixture(scope="module")
def data():
    ds = generate(SyntheticConfig(num_users=80, num_items=60, num_ratings=3000))
    split = split_dataset(ds, SplitConfig(seed=0))
    return ds, split


def _pair(name: str, ds, kind: str = "FeatureMLP", **settings):
    """The same learner (same initial weights) on the CPU and on the GPU, float64."""
    learners = []
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = (FeatureMF.for_dataset(ds, embedding_dim=4, hidden=(8,), factors=3)
                 if kind == "FeatureMF" else FeatureMLP.for_dataset(ds, embedding_dim=4,
                                                                    hidden=(8,)))
        config = LearnerConfig(dtype="float64", inner_steps=2, inner_lr=0.1, epochs=2,
                               patience=None, meta_batch_size=8, batch_size=256,
                               device=device, **settings)
        learners.append(learner_class(name)(model, config))
    return learners


@needs_cuda
@pytest.mark.parametrize("kind", ["FeatureMLP", "FeatureMF"])
@pytest.mark.parametrize("name", sorted(n for n, c in LEARNERS.items()
                                        if issubclass(c, MetaLearner)))
def test_cuda_meta_gradients_equal_the_cpu(name: str, kind: str, data) -> None:
    ds, split = data
    cpu, gpu = _pair(name, ds, kind)
    batch = pad_tasks(split.train, np.array([0, 3, 5, 7]), ds.users, ds.items)
    loss_cpu, grads_cpu = cpu.meta_gradients(batch)
    loss_gpu, grads_gpu = gpu.meta_gradients(batch)
    assert loss_gpu == pytest.approx(loss_cpu, rel=1e-9)
    assert grads_gpu.keys() == grads_cpu.keys()
    for key, grad in grads_cpu.items():
        assert grads_gpu[key].device.type == "cuda"
        torch.testing.assert_close(grads_gpu[key].cpu(), grad, rtol=1e-8, atol=1e-10)


@needs_cuda
@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_cuda_training_and_predictions_equal_the_cpu(name: str, data, tmp_path) -> None:
    ds, split = data
    cpu, gpu = _pair(name, ds)
    # No validation set: early stopping could pick different epochs on a near tie.
    cpu.fit(split.train, ds)
    gpu.fit(split.train, ds)
    for entry_cpu, entry_gpu in zip(cpu.history_, gpu.history_, strict=True):
        assert entry_gpu["train_loss"] == pytest.approx(entry_cpu["train_loss"], rel=1e-6)
    tasks = split.scenarios["new_users"]
    expected = cpu.predict_tasks(tasks)
    np.testing.assert_allclose(gpu.predict_tasks(tasks), expected, rtol=1e-6)
    # Saved on the GPU, loaded on the CPU: the same predictions.
    loaded = type(gpu).load(gpu.save(tmp_path / name), ds, device="cpu")
    assert loaded.device == torch.device("cpu")
    np.testing.assert_allclose(loaded.predict_tasks(tasks), expected, rtol=1e-6)


@needs_cuda
@pytest.mark.parametrize("name", ["maml-r", "ridge", "maml"])
def test_cuda_online_serving_equals_the_cpu(name: str, data) -> None:
    ds, split = data
    cpu, gpu = _pair(name, ds)
    cpu.fit(split.train, ds)
    gpu.load_state_dict(copy.deepcopy(cpu.state_dict()))
    stream = Interactions(np.array([3, 3, 3, 9]), np.array([1, 4, 7, 2]),
                          np.array([5.0, 1.0, 4.0, 2.0], np.float32), np.arange(4.0))
    scores = []
    for learner in (cpu, gpu):
        online = OnlineRecommender(learner, ds, OnlineConfig())
        online.learn(stream)
        scores.append((online.score(3), online.predict(np.array([3, 9]), np.array([5, 6]))))
    np.testing.assert_allclose(scores[1][0], scores[0][0], rtol=1e-8)
    np.testing.assert_allclose(scores[1][1], scores[0][1], rtol=1e-8)
