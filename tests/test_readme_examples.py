"""README's Python examples run as written, each in a fresh process and folder (an
example had used names no example defined, another stale results)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_the_readme_has_the_examples_this_test_runs() -> None:
    assert len(BLOCKS) == 5
    assert 'open("runs/demo/results.json")' in BLOCKS[0]  # make demo's output, not run here


@pytest.mark.parametrize("number", range(1, len(BLOCKS)), ids=lambda n: f"example{n + 1}")
def test_a_readme_example_runs(number: int, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", BLOCKS[number]], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
