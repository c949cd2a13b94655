"""The console entry point ``metarec.cli.main``: exit codes and one-line messages."""

from __future__ import annotations

import sys

import pytest

import metarec.cli


def _main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["metarec", *args])
    with pytest.raises(SystemExit) as exited:
        metarec.cli.main()
    return exited.value.code


@pytest.mark.parametrize("args", [("train", "--seed", "0"), ("run", "--epochs", "abc"),
                                  ("evaluate",), ("nosuchcmd",)])
def test_a_usage_error_is_clicks_short_message_and_exit_2(monkeypatch, capsys,
                                                          args: tuple[str, ...]) -> None:
    """Newer typers carry their own copy of click, whose usage errors had fallen through
    to a full traceback and exit 1."""
    assert _main(monkeypatch, *args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert sum(line.startswith("Error:") for line in err.splitlines()) == 1, err


def test_ctrl_c_exits_130_not_0(monkeypatch, capsys) -> None:
    """click turns a KeyboardInterrupt into an exit code of 130 that it returns (without
    standalone mode), which had been dropped: `metarec run ... && next` went on."""
    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("metarec.experiment.run_experiment", interrupted)
    assert _main(monkeypatch, "run", "--learners", "", "--baselines", "global-mean",
                 "--out", "unused") == 130
    assert "interrupted" in capsys.readouterr().err


def test_help_returns_normally(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["metarec", "--help"])
    metarec.cli.main()  # exit status 0
    assert "Usage" in capsys.readouterr().out
