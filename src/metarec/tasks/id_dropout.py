"""Item-id dropout: hide some items' ids during training, so that a model with an
item-id embedding also learns to score items from their features alone -- all it has for
a new item (DropoutNet, Volkovs et al., NeurIPS 2017).

A hidden id is written as ``-1``, which every id embedding treats as an id it has never
seen (its all-zero row), exactly as it treats a new item at test time. Which ids are hidden
in a training step is a pure function of a seed key, so one process and several draw the
same ids for the same meta-batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from metarec.data.dataset import Fields
from metarec.tasks.batch import TaskBatch

HIDDEN = -1
"""The id written in place of a hidden one (outside every id table's range)."""


def hidden_ids(num_ids: int, rate: float, key: Sequence[int]) -> torch.Tensor:
    """Bool ``[num_ids]``: each id hidden with probability ``rate``, drawn from ``key``."""
    draws = np.random.default_rng([int(k) for k in key]).random(num_ids)
    return torch.from_numpy(draws < rate)


def hide_ids(fields: Fields, hidden: torch.Tensor) -> Fields:
    """``fields`` with ``"id"`` replaced by :data:`HIDDEN` where ``hidden[id]``; every
    other field (the features) unchanged."""
    ids = fields["id"]
    mask = hidden.to(ids.device)[ids]
    return {**fields, "id": torch.where(mask, torch.full_like(ids, HIDDEN), ids)}


def hide_item_ids(batch: TaskBatch, hidden: torch.Tensor) -> TaskBatch:
    """``batch`` with the hidden items' ids hidden in its support and query sets alike
    (an item is new or known for the whole meta-batch)."""
    return replace(batch, support_fields=hide_ids(batch.support_fields, hidden),
                   query_fields=hide_ids(batch.query_fields, hidden))
