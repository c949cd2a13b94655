"""Item-id dropout: which ids a step hides, how they are hidden, and that a hidden id is
scored exactly like a new item's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metarec.data.splits import SplitConfig, split_dataset
from metarec.data.synthetic import SyntheticConfig, generate
from metarec.errors import ConfigError
from metarec.learners import LearnerConfig, learner_class
from metarec.models import BiasedMF, FeatureMF, FeatureMLP
from metarec.tasks.batch import pad_tasks
from metarec.tasks.id_dropout import HIDDEN, hidden_ids, hide_ids, hide_item_ids


@pytest.fixture(scope="module")
def data():
    ds = generate(SyntheticConfig(num_users=80, num_items=60, num_ratings=3000))
    return ds, split_dataset(ds, SplitConfig(seed=0))


def test_hidden_ids_are_a_function_of_the_key() -> None:
    first = hidden_ids(10_000, 0.3, (0, 1, 2))
    assert first.dtype == torch.bool and first.shape == (10_000,)
    assert torch.equal(first, hidden_ids(10_000, 0.3, (0, 1, 2)))
    assert not torch.equal(first, hidden_ids(10_000, 0.3, (0, 1, 3)))
    assert abs(float(first.float().mean()) - 0.3) < 0.02
    assert not hidden_ids(100, 0.0, (5,)).any()


def test_hide_ids_rewrites_only_the_hidden_ids() -> None:
    fields = {"id": torch.tensor([[0, 1], [2, 1]]), "genre": torch.tensor([[3, 4], [5, 4]])}
    out = hide_ids(fields, torch.tensor([False, True, False]))
    assert out["id"].tolist() == [[0, HIDDEN], [2, HIDDEN]]
    assert out["genre"] is fields["genre"] and fields["id"].tolist() == [[0, 1], [2, 1]]


@pytest.mark.parametrize("kind", [FeatureMLP, FeatureMF])
def test_a_hidden_id_scores_like_an_item_never_trained_on(kind, data) -> None:
    ds, _ = data
    torch.manual_seed(0)
    model = kind.for_dataset(ds, embedding_dim=4, hidden=(8,), item_id_embedding=True)
    table = model.body.item_fields["id"].embedding.weight
    with torch.no_grad():
        table.normal_()  # trained rows: every item's id now matters
        table[0].zero_()  # the padding row (unknown ids) never trains
    users = ds.users.take(torch.tensor([0, 1, 2]))
    items = ds.items.take(torch.tensor([4, 7, 4]))
    hidden = torch.zeros(ds.items.num_rows, dtype=torch.bool)
    hidden[4] = True
    with torch.no_grad():
        pred = model(users, hide_ids(items, hidden))
        before = model(users, items)
        table[4 + 1].zero_()  # id i is row i + 1; a new item's row is zero
        expected = model(users, items)
    torch.testing.assert_close(pred, expected)
    assert pred[0] != before[0] and pred[1] == before[1]


def test_every_share_of_a_meta_batch_hides_the_same_items(data) -> None:
    ds, split = data
    learner = learner_class("maml-r")(
        FeatureMLP.for_dataset(ds, embedding_dim=4, hidden=(8,), item_id_embedding=True),
        LearnerConfig(item_id_dropout=0.5))
    index = np.arange(8)
    whole = learner.training_batch(split.train, index, index, ds, epoch=3)
    plain = pad_tasks(split.train, index, ds.users, ds.items)
    hidden = whole.support_items == HIDDEN
    assert hidden.any() and (~hidden & plain.support_mask).any()
    # Hidden wherever the item is hidden: support and query alike, every task.
    mask = learner.hidden_item_ids(ds, (3, 0, 8))
    assert torch.equal(hidden, mask[plain.support_items])
    assert torch.equal(whole.query_items == HIDDEN, mask[plain.query_items])
    assert torch.equal(hide_item_ids(plain, mask).support_items, whole.support_items)
    for share in (index[:3], index[3:]):  # one process's part of the meta-batch
        part = learner.training_batch(split.train, share, index, ds, epoch=3)
        assert torch.equal(part.support_items, whole.select(torch.from_numpy(share))
                           .support_items[:, :part.support_items.shape[1]])
    # Another meta-batch or epoch hides other items; no dropout hides none.
    assert not torch.equal(learner.hidden_item_ids(ds, (4, 0, 8)), mask)
    learner.config.item_id_dropout = 0.0
    assert learner.hidden_item_ids(ds, (3, 0, 8)) is None


def test_training_with_hidden_ids_changes_training_and_learns(data) -> None:
    ds, split = data
    results = {}
    for rate in (0.0, 0.5):
        torch.manual_seed(0)
        learner = learner_class("pretrain")(
            FeatureMLP.for_dataset(ds, embedding_dim=4, hidden=(8,), item_id_embedding=True),
            LearnerConfig(epochs=3, patience=None, item_id_dropout=rate, inner_steps=0))
        learner.fit(split.train, ds)
        results[rate] = [h["train_loss"] for h in learner.history_]
    assert results[0.5] != results[0.0]
    assert results[0.5][-1] < results[0.5][0]


def test_a_model_without_item_ids_refuses_id_dropout(data) -> None:
    ds, _ = data
    with pytest.raises(ConfigError, match="item-id embedding"):
        learner_class("pretrain")(BiasedMF(10, 10), LearnerConfig(item_id_dropout=0.2))
    with pytest.raises(ConfigError, match="item-id embedding"):
        learner_class("maml-r")(FeatureMLP.for_dataset(ds, item_id_embedding=False),
                                LearnerConfig(item_id_dropout=0.2))
    for rate in (-0.1, 1.0):
        with pytest.raises(ConfigError, match="item_id_dropout"):
            LearnerConfig(item_id_dropout=rate)
