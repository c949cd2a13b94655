"""``metarec datasets list|fetch|info`` through typer's CliRunner, and exit codes through
``python -m metarec``."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import threading
import types
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from metarec.cli import app
from metarec.data import registry
from metarec.data.dataset import build_dataset
from metarec.data.registry import DatasetInfo
from metarec.errors import ConfigError, DownloadError

runner = CliRunner()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("METAREC_DATA", str(root))
    monkeypatch.setenv("COLUMNS", "200")
    return root


@pytest.fixture
def archive_url():
    """A one-file HTTP server on 127.0.0.1 serving a zip of ml-tiny/u.data."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("ml-tiny/u.data", "1\t10\t4\t881250949\n")
    body = buffer.getvalue()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/tiny.zip", hashlib.sha256(body).hexdigest()
    httpd.shutdown()
    httpd.server_close()


def run_main(*args: str, env_data: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "METAREC_DATA": str(env_data), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "metarec", *args], capture_output=True,
                          text=True, env=env, timeout=60)


def test_list_shows_every_data_set_and_what_is_cached(cache: Path):
    (cache / "ml-1m").mkdir(parents=True)
    (cache / "ml-1m" / "ratings.dat").write_text("1::1::5::0\n")
    result = runner.invoke(app, ["datasets", "list"])
    assert result.exit_code == 0, result.output
    for name in registry.REGISTRY:
        assert name in result.output
    assert "yes" in result.output and "manual" in result.output


def test_fetch_downloads_then_reports_the_folder(cache, archive_url, monkeypatch):
    url, digest = archive_url
    info = DatasetInfo(name="tiny", title="Tiny", size="1 rating", source="tests",
                       licence="test", url="http://127.0.0.1:9/unused.zip", sha256=digest,
                       folder="ml-tiny", reader="ml100k")
    monkeypatch.setitem(registry.REGISTRY, "tiny", info)
    result = runner.invoke(app, ["datasets", "fetch", "tiny", "--url", url])
    assert result.exit_code == 0, result.output
    assert (cache / "ml-tiny" / "u.data").exists()
    assert "tiny is in" in result.output and "ml-tiny" in result.output
    again = runner.invoke(app, ["datasets", "fetch", "tiny"])
    assert again.exit_code == 0 and "already on disk" in again.output


def test_info_prints_summary_and_scenarios(cache, monkeypatch):
    ratings = pd.DataFrame({"user": [1, 1, 2], "item": [10, 20, 10], "rating": [4.0, 3.0, 5.0]})
    monkeypatch.setattr(registry, "load_dataset",
                        lambda name, data_dir=None: build_dataset("tiny-set", ratings))
    configs = []

    class SplitConfig:
        def __init__(self, **fields: object) -> None:
            configs.append(fields)

    class Split:
        def summary(self) -> list[dict[str, object]]:
            return [{"scenario": "warm", "users": 1, "support_ratings": 1, "query_ratings": 1},
                    {"scenario": "new_users", "users": 1, "support_ratings": 2,
                     "query_ratings": 12345}]

        def empty_note(self) -> str | None:
            return None

    splits = types.ModuleType("metarec.data.splits")
    splits.SplitConfig = SplitConfig
    splits.split_dataset = lambda dataset, config: Split()
    monkeypatch.setitem(sys.modules, "metarec.data.splits", splits)

    result = runner.invoke(app, ["datasets", "info", "whatever", "--seed", "7",
                                 "--protocol", "time"])
    assert result.exit_code == 0, result.output
    assert configs == [{"protocol": "time", "seed": 7}]
    assert "tiny-set" in result.output and "ratings" in result.output
    assert "new_users" in result.output and "12,345" in result.output


def test_manual_fetch_is_one_line_and_exit_2(tmp_path: Path):
    # the one real process: `python -m metarec` exits 2 with one line on stderr
    result = run_main("datasets", "fetch", "netflix", env_data=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "combined_data_1.txt" in lines[0] and str(tmp_path / "netflix") in lines[0]


def test_info_of_missing_data_set_is_one_line_and_exit_2(cache, monkeypatch, capsys):
    # in-process through main() (a subprocess pays the torch import again)
    import metarec.cli

    monkeypatch.setattr(sys, "argv", ["metarec", "datasets", "info", "movielens-100k"])
    with pytest.raises(SystemExit) as exited:
        metarec.cli.main()
    assert exited.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "metarec datasets fetch movielens-100k" in lines[0]


def test_info_passes_reader_options(cache, monkeypatch):
    calls = []

    def load_dataset(name, data_dir=None, **options):
        calls.append((name, options))
        ratings = pd.DataFrame({"user": [1], "item": [10], "rating": [4.0]})
        return build_dataset("tiny-set", ratings)

    monkeypatch.setattr(registry, "load_dataset", load_dataset)
    monkeypatch.setattr("metarec.data.splits.split_dataset", lambda dataset, config:
                        types.SimpleNamespace(summary=lambda: [], empty_note=lambda: None))
    result = runner.invoke(app, ["datasets", "info", "log.csv", "--option", "time_col=when",
                                 "--option", "sep=;", "--option", "keep_implicit=true"])
    assert result.exit_code == 0, result.output
    assert calls == [("log.csv", {"time_col": "when", "sep": ";", "keep_implicit": True})]
    bad = runner.invoke(app, ["datasets", "info", "log.csv", "--option", "time_col"])
    assert "--option 'time_col' must look like KEY=VALUE" in str(bad.exception)


def test_info_of_a_table_with_its_time_column_counts_scenarios(cache, tmp_path):
    rows = [f"u{u},i{i},{1 + (u + i) % 5},{1000 * i + u}"
            for u in range(6) for i in range(20)]
    log = tmp_path / "log.csv"
    log.write_text("who,what,stars,when\n" + "\n".join(rows) + "\n")
    result = runner.invoke(app, ["datasets", "info", str(log), "--protocol", "time",
                                 "--option", "user_col=who", "--option", "item_col=what",
                                 "--option", "rating_col=stars", "--option", "time_col=when"])
    assert result.exit_code == 0, result.output
    assert "Cold-start scenarios (time protocol, seed 0)" in result.output
    # 5 existing users (1 of 6 is new), each with 16 films first rated before the 80%
    # quantile of times: 10 query and 6 support ratings each
    warm = next(line for line in result.output.splitlines() if "│ warm " in line)
    assert [cell.strip() for cell in warm.split("│")[2:5]] == ["5", "30", "50"]


def test_another_data_sets_folder_is_not_on_disk(cache, tmp_path):
    small = tmp_path / "ml-latest-small"
    small.mkdir()
    (small / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4,0\n")
    (small / "movies.csv").write_text("movieId,title,genres\n1,A (1995),Drama\n")
    (small / "README.txt").write_text("This dataset (ml-latest-small) describes ...\n")
    listed = runner.invoke(app, ["datasets", "list", "--data-dir", str(small)])
    assert listed.exit_code == 0, listed.output
    rows = {line.split("│")[1].strip(): line for line in listed.output.splitlines()
            if line.count("│") > 2}
    assert "yes" in rows["movielens-latest-small"] and "yes" not in rows["movielens-25m"]
    info = runner.invoke(app, ["datasets", "info", "movielens-25m", "--data-dir", str(small)])
    assert isinstance(info.exception, DownloadError)
    assert "movielens-25m is not on disk" in str(info.exception)
    fetched = runner.invoke(app, ["datasets", "fetch", "movielens-25m", "--data-dir",
                                  str(small), "--url", "notaurl"])
    assert "already on disk" not in fetched.output
    assert isinstance(fetched.exception, DownloadError)


def test_info_says_why_scenarios_are_empty():
    result = runner.invoke(app, ["datasets", "info", "synthetic", "--option",
                                 "num_ratings=3000"])
    assert result.exit_code == 0, result.output
    assert "note: no user fits" in result.output and "split.min_ratings" in result.output


def test_datasets_info_refuses_a_negative_seed_before_loading(monkeypatch) -> None:
    def load_dataset(*args: object, **kwargs: object) -> None:
        raise AssertionError("the data set was loaded before the split was checked")

    monkeypatch.setattr(registry, "load_dataset", load_dataset)
    result = runner.invoke(app, ["datasets", "info", "synthetic", "--seed", "-1"])
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == "split seed must be >= 0, got -1"
