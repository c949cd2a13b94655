"""fetch() against a real HTTP server on 127.0.0.1: good, corrupt, truncated and absent."""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
import socket
import threading
import zipfile
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from metarec.data import download, registry
from metarec.data.registry import DatasetInfo
from metarec.errors import DownloadError

U_DATA = "1\t10\t4\t881250949\n1\t20\t3\t881250950\n2\t10\t5\t881250951\n"


def make_zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, text in files.items():
            bundle.writestr(name, text)
    return buffer.getvalue()


ARCHIVE = make_zip({"ml-tiny/u.data": U_DATA, "ml-tiny/README": "tiny\n"})
ARCHIVE_SHA256 = hashlib.sha256(ARCHIVE).hexdigest()


class Server:
    """Serves ``routes[path] = (body, mode)``; mode ``full``, ``truncate`` (announces the
    whole length, sends half, hangs up) or ``chunked`` (chunked transfer encoding: announces
    one chunk of the whole body, sends half of it, hangs up). Counts requests per path."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[bytes, str]] = {}
        self.hits: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                if self.path not in server.routes:
                    self.send_error(404)
                    return
                body, mode = server.routes[self.path]
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                if mode == "chunked":
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.write(f"{len(body):x}\r\n".encode() + body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body if mode == "full" else body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,),
                                       daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def server():
    running = Server()
    running.thread.start()
    yield running
    running.httpd.shutdown()
    running.httpd.server_close()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("METAREC_DATA", str(root))
    return root


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> DatasetInfo:
    """A registered data set ``tiny`` whose archive is ARCHIVE (URL set per test)."""
    info = DatasetInfo(name="tiny", title="Tiny", size="3 ratings", source="tests",
                       licence="test", url="http://127.0.0.1:9/none.zip",
                       sha256=ARCHIVE_SHA256, folder="ml-tiny", reader="ml100k")
    monkeypatch.setitem(registry.REGISTRY, "tiny", info)
    return info


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_cache_dir_reads_env_then_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("METAREC_DATA", str(tmp_path / "x"))
    assert download.cache_dir() == tmp_path / "x"
    monkeypatch.delenv("METAREC_DATA")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert download.cache_dir() == tmp_path / ".cache" / "metarec"


def test_good_archive_is_extracted_and_cached(server, cache, tiny):
    server.routes["/tiny.zip"] = (ARCHIVE, "full")
    calls: list[tuple[int, int | None]] = []
    folder = download.fetch("tiny", url=server.url("/tiny.zip"),
                            progress=lambda got, total: calls.append((got, total)))
    assert folder == cache / "ml-tiny"
    assert (folder / "u.data").read_text() == U_DATA
    assert leftovers(cache) == ["ml-tiny"]
    assert calls[0] == (0, len(ARCHIVE)) and calls[-1] == (len(ARCHIVE), len(ARCHIVE))
    assert registry.is_cached("tiny")

    again = download.fetch("tiny", url=server.url("/tiny.zip"))
    assert again == folder
    assert server.hits == {"/tiny.zip": 1}


def test_registry_url_is_used_without_override(server, cache, tiny, monkeypatch):
    monkeypatch.setitem(registry.REGISTRY, "tiny", replace(tiny, url=server.url("/a.zip")))
    server.routes["/a.zip"] = (ARCHIVE, "full")
    assert download.fetch("tiny") == cache / "ml-tiny"


def test_data_dir_replaces_the_cache(server, cache, tiny, tmp_path):
    server.routes["/tiny.zip"] = (ARCHIVE, "full")
    folder = download.fetch("tiny", data_dir=tmp_path / "mine", url=server.url("/tiny.zip"))
    assert folder == tmp_path / "mine" / "ml-tiny"
    assert not cache.exists()


def test_wrong_checksum_keeps_nothing(server, cache, tiny):
    other = make_zip({"ml-tiny/u.data": "9\t9\t1\t0\n"})
    server.routes["/tiny.zip"] = (other, "full")
    with pytest.raises(DownloadError) as caught:
        download.fetch("tiny", url=server.url("/tiny.zip"))
    message = str(caught.value)
    assert "SHA-256" in message and ARCHIVE_SHA256 in message and "\n" not in message
    assert leftovers(cache) == []


def test_truncated_download_keeps_nothing(server, cache, tiny):
    server.routes["/tiny.zip"] = (ARCHIVE, "truncate")
    with pytest.raises(DownloadError, match="stopped after") as caught:
        download.fetch("tiny", url=server.url("/tiny.zip"))
    assert "\n" not in str(caught.value)
    assert leftovers(cache) == []


def test_corrupt_archive_without_checksum_keeps_nothing(server, cache, tiny, monkeypatch):
    monkeypatch.setitem(registry.REGISTRY, "tiny", replace(tiny, sha256=None))
    server.routes["/tiny.zip"] = (ARCHIVE[: len(ARCHIVE) // 2], "full")
    with pytest.raises(DownloadError, match="not a valid zip"):
        download.fetch("tiny", url=server.url("/tiny.zip"))
    assert leftovers(cache) == []


def test_unknown_checksum_warns_with_the_digest(server, cache, tiny, monkeypatch, caplog):
    monkeypatch.setitem(registry.REGISTRY, "tiny", replace(tiny, sha256=None))
    server.routes["/tiny.zip"] = (ARCHIVE, "full")
    with caplog.at_level(logging.WARNING, logger="metarec.data.download"):
        folder = download.fetch("tiny", url=server.url("/tiny.zip"))
    assert (folder / "u.data").exists()
    assert ARCHIVE_SHA256 in caplog.text and "could not be verified" in caplog.text


def test_archive_without_the_expected_files_keeps_nothing(server, cache, tiny, monkeypatch):
    monkeypatch.setitem(registry.REGISTRY, "tiny", replace(tiny, sha256=None))
    server.routes["/tiny.zip"] = (make_zip({"other/notes.txt": "x"}), "full")
    with pytest.raises(DownloadError, match="does not hold"):
        download.fetch("tiny", url=server.url("/tiny.zip"))
    assert leftovers(cache) == []


def test_http_error_names_the_status(server, cache, tiny):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download.fetch("tiny", url=server.url("/missing.zip"))
    assert leftovers(cache) == []


def test_server_down_says_offline_and_where_to_put_files(cache, tiny):
    url = f"http://127.0.0.1:{closed_port()}/tiny.zip"
    with pytest.raises(DownloadError) as caught:
        download.fetch("tiny", url=url, timeout=2)
    message = str(caught.value)
    assert "\n" not in message
    assert "offline" in message and "failed" in message
    assert str(cache / "ml-tiny") in message and url in message and "--data-dir" in message
    assert leftovers(cache) == []


def test_stale_non_empty_folder_is_not_overwritten(server, cache, tiny):
    (cache / "ml-tiny").mkdir(parents=True)
    (cache / "ml-tiny" / "mine.txt").write_text("keep me")
    server.routes["/tiny.zip"] = (ARCHIVE, "full")
    with pytest.raises(DownloadError, match="move it away"):
        download.fetch("tiny", url=server.url("/tiny.zip"))
    assert (cache / "ml-tiny" / "mine.txt").read_text() == "keep me"
    assert server.hits == {}


def test_manual_data_sets_say_where_to_put_the_files(cache):
    with pytest.raises(DownloadError) as caught:
        download.fetch("netflix")
    message = str(caught.value)
    assert "combined_data_1.txt" in message and str(cache / "netflix") in message
    with pytest.raises(DownloadError, match="BX-Book-Ratings.csv"):
        download.fetch("book-crossing")


def test_synthetic_and_unknown_names_are_refused(cache):
    with pytest.raises(DownloadError, match="nothing to download"):
        download.fetch("synthetic")
    with pytest.raises(DownloadError, match="unknown data set 'nope'"):
        download.fetch("nope")


def test_registered_movielens_entries_are_complete():
    for name in ("movielens-100k", "movielens-1m", "movielens-latest-small", "movielens-25m"):
        info = registry.get_info(name)
        assert info.url == f"https://files.grouplens.org/datasets/movielens/{info.folder}.zip"
        assert info.sha256 is not None and len(info.sha256) == 64
        int(info.sha256, 16)


def test_chunked_download_cut_off_says_truncated_not_offline(server, cache, tiny):
    server.routes["/tiny.zip"] = (ARCHIVE, "chunked")
    url = server.url("/tiny.zip")
    with pytest.raises(DownloadError) as caught:
        download.fetch("tiny", url=url)
    assert str(caught.value) == (
        f"downloading tiny from {url} stopped after 0 bytes (the connection dropped before "
        "the end of the data): the download is truncated; nothing was kept, run the same "
        "command again")
    assert leftovers(cache) == []


def test_url_that_is_no_url_is_a_download_error(cache, tiny):
    with pytest.raises(DownloadError) as caught:
        download.fetch("tiny", url="notaurl")
    assert str(caught.value) == ("cannot download tiny from 'notaurl': unknown url type: "
                                 "'notaurl'; give an http:// or https:// URL")
    assert leftovers(cache) == []


def test_target_that_is_a_file_is_a_download_error(server, cache, tiny):
    cache.mkdir()
    (cache / "ml-tiny").write_text("not a folder\n")
    server.routes["/tiny.zip"] = (ARCHIVE, "full")
    with pytest.raises(DownloadError) as caught:
        download.fetch("tiny", url=server.url("/tiny.zip"))
    assert str(caught.value) == (f"{cache / 'ml-tiny'} exists but does not hold the Tiny "
                                 "files; move it away or delete it, then fetch tiny again")
    assert server.hits == {}


WRITABLE_HINT = "; set METAREC_DATA or pass --data-dir PATH to a writable folder"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="chmod does not restrict root (the test below covers root)")
def test_cache_folder_not_writable_is_a_download_error(server, cache, tiny):
    server.routes["/tiny.zip"] = (ARCHIVE, "full")
    cache.mkdir()
    cache.chmod(0o500)
    try:
        with pytest.raises(DownloadError) as caught:
            download.fetch("tiny", url=server.url("/tiny.zip"))
    finally:
        cache.chmod(0o700)
    assert str(caught.value) == f"cannot write in {cache}: Permission denied{WRITABLE_HINT}"
    assert server.hits == {}
    assert leftovers(cache) == []


@pytest.mark.parametrize(("call", "error", "hits"), [
    ("mkstemp", PermissionError(errno.EACCES, "Permission denied"), {}),
    ("mkdtemp", OSError(errno.ENOSPC, "No space left on device"), {"/tiny.zip": 1}),
])
def test_cache_folder_refusing_a_file_or_folder_is_a_download_error(server, cache, tiny,
                                                                    monkeypatch, call, error,
                                                                    hits):
    """What a read-only folder (also when running as root) or a full disk does: the
    download file (before anything is fetched) or the unzip folder (after); nothing is
    left behind."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(download.tempfile, call, refuse)
    server.routes["/tiny.zip"] = (ARCHIVE, "full")
    with pytest.raises(DownloadError) as caught:
        download.fetch("tiny", url=server.url("/tiny.zip"))
    assert str(caught.value) == f"cannot write in {cache}: {error.strerror}{WRITABLE_HINT}"
    assert server.hits == hits
    assert leftovers(cache) == []
