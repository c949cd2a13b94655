"""localise / gather / scatter: per-task rows of embedding tables, exact on hand-made
batches, and a learner's predictions through them equal the full-table route."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metarec.data.splits import SplitConfig, split_dataset
from metarec.data.synthetic import SyntheticConfig, generate
from metarec.learners import LearnerConfig, learner_class
from metarec.models import FeatureMLP
from metarec.tasks.batch import TaskBatch, pad_tasks
from metarec.tasks.local_rows import gather, localise, scatter, scatter_mean


def _batch() -> TaskBatch:
    # 2 tasks; user field "job" (categorical), item fields "genre" (multi, 0 = padding)
    # and "id" (never localised).
    return TaskBatch(
        users=torch.tensor([0, 1]),
        user_fields={"job": torch.tensor([7, 3]), "id": torch.tensor([0, 1])},
        support_fields={"genre": torch.tensor([[[5, 2], [9, 0]], [[2, 2], [4, 0]]]),
                        "id": torch.tensor([[10, 11], [12, 13]])},
        support_ratings=torch.ones(2, 2), support_mask=torch.ones(2, 2, dtype=torch.bool),
        query_fields={"genre": torch.tensor([[[9, 6]], [[0, 0]]]),
                      "id": torch.tensor([[14], [15]])},
        query_ratings=torch.ones(2, 1), query_mask=torch.ones(2, 1, dtype=torch.bool))


def test_localise_lists_each_tasks_rows_and_rewrites_codes() -> None:
    tables = {"user.job": ("user", "job"), "item.genre": ("item", "genre")}
    local, rows = localise(_batch(), tables)
    assert rows["user.job"].tolist() == [[0, 7], [0, 3]]
    # Task 0 uses genres 5, 2, 9, 6 (+ padding 0); task 1 uses 2, 4: padded with 0.
    assert rows["item.genre"].tolist() == [[0, 2, 5, 6, 9], [0, 2, 4, 0, 0]]
    assert local.user_fields["job"].tolist() == [1, 1]
    assert local.support_fields["genre"].tolist() == [[[2, 1], [4, 0]], [[1, 1], [2, 0]]]
    assert local.query_fields["genre"].tolist() == [[[4, 3]], [[0, 0]]]
    # Codes map back: rows[local code] == original code, everywhere.
    original = _batch()
    for part in ("support_fields", "query_fields"):
        codes, back = getattr(original, part)["genre"], getattr(local, part)["genre"]
        for t in range(2):
            assert torch.equal(rows["item.genre"][t][back[t]], codes[t])
    assert torch.equal(local.support_fields["id"], original.support_fields["id"])
    assert localise(original, {})[1] == {}


def test_gather_scatter_and_scatter_mean() -> None:
    table = torch.arange(20.0).reshape(10, 2)
    rows = {"t": torch.tensor([[0, 2, 5], [0, 7, 0]])}
    local = gather({"t": table}, rows)["t"]
    assert local[0].tolist() == [[0, 1], [4, 5], [10, 11]]
    changed = local + torch.tensor([[[0.0], [1.0], [2.0]], [[0.0], [3.0], [0.0]]])
    full = scatter({"t": table}, {"t": changed}, rows)["t"]
    assert full.shape == (2, 10, 2)
    assert full[0, 5].tolist() == [12, 13] and full[0, 7].tolist() == [14, 15]
    assert full[1, 7].tolist() == [17, 18] and torch.equal(full[1, :7], table[:7])
    mean = scatter_mean({"t": table}, {"t": changed - local}, rows)["t"]
    expected = torch.zeros(10, 2)
    expected[2], expected[5], expected[7] = 0.5, 1.0, 1.5
    assert torch.equal(mean, expected)


@pytest.mark.parametrize("name", ["maml", "reptile", "finetune"])
def test_predictions_through_local_rows_equal_the_full_tables(name: str) -> None:
    torch.manual_seed(0)
    ds = generate(SyntheticConfig(num_users=80, num_items=60, num_ratings=3000))
    split = split_dataset(ds, SplitConfig(seed=0))
    model = FeatureMLP.for_dataset(ds, embedding_dim=4, hidden=(8,))
    if name == "finetune":
        learner = learner_class("pretrain")(model, LearnerConfig(dtype="float64"))
    else:
        learner = learner_class(name)(model, LearnerConfig(dtype="float64", inner_lr=0.5))
    learner.features_ = ds
    assert learner.localise(pad_tasks(split.train, np.arange(3), ds.users, ds.items))[1]
    tasks = split.scenarios["new_users"]
    got = learner.predict_tasks(tasks)
    # The public route: full per-task tables (adapt) and the original codes (predict).
    expected = np.empty(len(tasks.query))
    for t in range(len(tasks)):
        batch = pad_tasks(tasks, np.array([t]), ds.users, ds.items).to(dtype=torch.float64)
        pred = learner.predict(learner.adapt(batch), batch.user_fields, batch.query_fields)
        start = tasks.query_offsets[t]
        expected[start:start + tasks.query_sizes[t]] = pred[batch.query_mask].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
