"""Fixtures of the service tests: a tiny trained learner saved as a run folder (with a
config.toml naming a small generated data set, which seeds the catalogue), and helpers
that start the real server (uvicorn) in a subprocess."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from serve_helpers import CONFIG_TOML, SMALL, Server

from metarec.data.splits import SplitConfig, split_dataset
from metarec.data.synthetic import SyntheticConfig, generate
from metarec.learners.config import LearnerConfig
from metarec.learners.registry import learner_class
from metarec.models import FeatureMF, FeatureMLP


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder: config.toml + checkpoints/maml-r/{learner.json,weights.safetensors}."""
    dataset = generate(SyntheticConfig(**SMALL))
    split = split_dataset(dataset, SplitConfig(seed=0))
    torch.manual_seed(0)  # the same model whichever tests ran before
    model = FeatureMLP.for_dataset(dataset, embedding_dim=8, hidden=(16, 16))
    learner = learner_class("maml-r")(model, LearnerConfig(epochs=1, inner_steps=3,
                                                           patience=None, seed=0))
    learner.fit(split.train, dataset)
    run = tmp_path_factory.mktemp("run")
    (run / "config.toml").write_text(CONFIG_TOML)
    learner.save(run / "checkpoints" / "maml-r")
    return run


@pytest.fixture(scope="session")
def ridge_mf_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder whose learner is ``ridge`` over a ``FeatureMF`` with item ids, the
    neighbourhood term on (checkpoints/ridge/)."""
    dataset = generate(SyntheticConfig(**SMALL))
    split = split_dataset(dataset, SplitConfig(seed=0))
    torch.manual_seed(0)
    model = FeatureMF.for_dataset(dataset, embedding_dim=8, hidden=(16,), factors=4,
                                  item_id_embedding=True)
    learner = learner_class("ridge")(model, LearnerConfig(epochs=1, patience=None, seed=0,
                                                          neighbours=5))
    learner.fit(split.train, dataset, split.validation)
    learner.neighbour_scale, learner.neighbour_damping = 1.0, 0.5  # on, whatever was chosen
    run = tmp_path_factory.mktemp("ridge_run")
    (run / "config.toml").write_text(CONFIG_TOML)
    learner.save(run / "checkpoints" / "ridge")
    return run


@pytest.fixture
def run_dir(trained_run: Path, tmp_path: Path) -> Path:
    """A private copy of the run folder (each test gets its own database)."""
    target = tmp_path / "run"
    shutil.copytree(trained_run, target)
    return target


@pytest.fixture
def server_factory() -> Iterator:
    """Start servers with ``server_factory(run_dir, db_url=None)``; all are stopped."""
    started: list[Server] = []

    def make(run_dir: Path, db_url: str | None = None) -> Server:
        server = Server(run_dir, db_url).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
