"""`ridge_linearise.py`: its switch to forward-mode AD is the one the library falls back
to, and it leaves the written-out design in place afterwards."""

from __future__ import annotations

import pytest
import torch

from metarec.learners.inner_loop import Forward


def test_switch_turns_the_written_design_off_and_back_on(benchmarks) -> None:
    bench = pytest.importorskip("ridge_linearise")
    model = torch.nn.Module()
    model.head = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(),
                                     torch.nn.Linear(2, 1))
    forward = Forward(model, head_only=True)
    params = dict(model.head.named_parameters())
    x = torch.randn(4, 3)
    names = ["2.weight", "2.bias"]
    assert forward.linearised(params, names, x) is not None
    with bench.linearise_with("jacfwd"):
        assert forward.linearised(params, names, x) is None
    with bench.linearise_with("written"):
        assert forward.linearised(params, names, x) is not None
    design, pred = forward.linearised(params, names, x)
    assert design.shape == (4, 3)
    torch.testing.assert_close(pred, forward(params, None, x))
