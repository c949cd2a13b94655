"""The service with models other than the default FeatureMLP: ``ridge`` over a
``FeatureMF``, with its neighbourhood term, serves exactly what the learner predicts for
the same support set, and a model without side features is refused with a clear
error."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_helpers import CONFIG_TOML, SMALL, TOKEN, auth

from metarec.data.dataset import Interactions
from metarec.data.splits import SplitConfig, split_dataset
from metarec.data.synthetic import SyntheticConfig, generate
from metarec.errors import CheckpointError
from metarec.learners.base import Learner
from metarec.learners.config import LearnerConfig
from metarec.learners.registry import learner_class
from metarec.models import BiasedMF
from metarec.serve.app import ServeSettings, create_app


def client(run_dir: Path) -> TestClient:
    return TestClient(create_app(ServeSettings(run_dir=run_dir, token=TOKEN)))


def test_ridge_over_feature_mf_serves_its_own_predictions(
        ridge_mf_run: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(ridge_mf_run, run_dir)
    dataset = generate(SyntheticConfig(**SMALL))
    user = str(dataset.user_ids.raw[0])
    items = np.array([2, 5, 7, 11, 13])
    rated = [str(r) for r in dataset.item_ids.raw[items]]
    ratings = [5.0, 1.0, 4.0, 2.0, 5.0]
    with client(run_dir) as c:
        before = c.get(f"/users/{user}/recommendations?k=80").json()
        events = [{"user": user, "item": item, "rating": rating, "timestamp": 10.0 + j}
                  for j, (item, rating) in enumerate(zip(rated, ratings, strict=True))]
        assert c.post("/events", json={"events": events}, headers=auth()).status_code == 200
        after = c.get(f"/users/{user}/recommendations?k=80&exclude_seen=false").json()
        # An item registered after training is scored from its features.
        c.post("/items", json={"id": "fresh", "features": {"year": 1999}}, headers=auth())
        fresh = c.get(f"/users/{user}/recommendations?k=1000").json()["items"]
        assert "fresh" in {r["item"] for r in fresh} and len(fresh) == 81 - 5
    assert before["source"] == "features" and after["source"] == "adapted"
    # The reference: the saved learner's batch prediction after adapting to the same
    # support (padded tasks, the term added by ``correct_predictions``).
    learner = Learner.load(run_dir / "checkpoints" / "ridge", features=dataset, device="cpu")
    assert learner.neighbour_scale == 1.0 and learner.neighbour_damping == 0.5
    support = Interactions(np.zeros(5, np.int64), items, np.asarray(ratings, np.float32),
                           10.0 + np.arange(5.0))
    every = np.arange(dataset.num_items)
    expected = learner.score_items(0, support, every)
    with learner.term("off"):
        plain = learner.score_items(0, support, every)
    assert np.abs(expected - plain).max() > 1e-3  # the term is on and moves scores
    served = {r["item"]: r["score"] for r in after["items"]}
    assert len(served) == dataset.num_items
    got = np.array([served[str(raw)] for raw in dataset.item_ids.raw])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert [r["score"] for r in before["items"]] != [r["score"] for r in after["items"][:80]]


def test_a_model_without_side_features_is_refused(tmp_path: Path) -> None:
    dataset = generate(SyntheticConfig(**SMALL))
    split = split_dataset(dataset, SplitConfig(seed=0))
    learner = learner_class("pretrain")(BiasedMF(dataset.num_users, dataset.num_items,
                                                 factors=2), LearnerConfig(epochs=1))
    learner.fit(split.train, dataset)
    (tmp_path / "config.toml").write_text(CONFIG_TOML)
    learner.save(tmp_path / "checkpoints" / "pretrain")
    with pytest.raises(CheckpointError, match="model over side features .*got 'BiasedMF'"):
        with client(tmp_path):
            pass
