"""`ridge_speed.py`: its switches turn the written-out design and the cached item
vectors off, as the library's fallbacks, and back on afterwards."""

from __future__ import annotations

import pytest
import torch

from metarec.learners.inner_loop import Forward
from metarec.learners.online import OnlineRecommender


def test_switches_turn_each_speed_up_off_and_back_on(benchmarks) -> None:
    bench = pytest.importorskip("ridge_speed")
    original = OnlineRecommender._score_every_item
    model = torch.nn.Module()
    model.head = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(),
                                     torch.nn.Linear(2, 1))
    forward = Forward(model, head_only=True)
    params = dict(model.head.named_parameters())
    x = torch.randn(4, 3)
    names = ["2.weight", "2.bias"]
    assert forward.linearised(params, names, x) is not None
    with bench.switched(design="jacfwd"):
        assert forward.linearised(params, names, x) is None
    with bench.switched(item_vectors="per item"):
        assert forward.linearised(params, names, x) is not None
        assert OnlineRecommender._score_every_item(None, None, None) is None
    assert OnlineRecommender._score_every_item is original
    design, pred = forward.linearised(params, names, x)
    assert design.shape == (4, 3)
    torch.testing.assert_close(pred, forward(params, None, x))
