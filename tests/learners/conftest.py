"""Fixtures of the learner tests.

``one_thread``: tiny models run several times faster with one intra-op thread than with
two on a shared 2-core machine, and their results do not depend on it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
