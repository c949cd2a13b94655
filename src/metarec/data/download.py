"""Download registered data sets into the cache: streamed, checksummed, extracted atomically.

:func:`fetch` streams the official archive to a temporary file next to its destination,
checks its SHA-256 against the catalogue, unzips it into a temporary folder and moves
that folder into place with one ``os.replace``. Whatever goes wrong (no network, a wrong
checksum, a truncated or corrupt archive, Ctrl-C) leaves neither a partial file nor a
half-written folder behind, and every failure is one :class:`DownloadError` line that
says what to do next.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from metarec import __version__
from metarec.data.registry import DatasetInfo, default_folder, get_info, local_path
from metarec.errors import DownloadError

log = logging.getLogger(__name__)

Progress = Callable[[int, "int | None"], None]
"""Called with (bytes received so far, total bytes or ``None`` when the server did not say)."""

CHUNK_SIZE = 1 << 16


def cache_dir() -> Path:
    """The root folder of downloaded data sets: ``$METAREC_DATA``, else ``~/.cache/metarec``."""
    env = os.environ.get("METAREC_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "metarec"


def fetch(
    name: str,
    *,
    data_dir: Path | None = None,
    url: str | None = None,
    progress: Progress | None = None,
    timeout: float = 30,
) -> Path:
    """Download, verify and unzip registered data set ``name``; return its folder.

    The folder is ``<data_dir or cache_dir()>/<folder>``; if the data set is already
    there nothing is downloaded. ``url`` replaces the catalogue's archive URL (a mirror,
    or a local server in tests); the catalogue's SHA-256, when known, is still checked.
    When it is not known the archive's SHA-256 is logged as a warning so it can be
    compared by hand. ``timeout`` is in seconds, per network operation.
    """
    info = get_info(name)
    if info.built_in:
        raise DownloadError(f"{name} is generated, there is nothing to download: "
                            f"use it directly, e.g. `metarec datasets info {name}`")
    cached = local_path(name, data_dir)
    if cached is not None:
        return cached
    target = default_folder(info, data_dir)
    archive_url = url or info.url
    if archive_url is None:
        raise DownloadError(f"{name} cannot be downloaded: {info.manual} in {target}, "
                            "or pass --data-dir PATH to a folder that holds them")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DownloadError(f"{target} exists but does not hold the {info.title} files; "
                            f"move it away or delete it, then fetch {name} again")

    root = target.parent
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DownloadError(f"cannot create {root}: {error.strerror or error}; set "
                            "METAREC_DATA or pass --data-dir PATH to a writable folder") from None
    with _writable(root):
        handle, archive_name = tempfile.mkstemp(prefix=f".{info.folder}.",
                                                suffix=".zip.part", dir=root)
    archive = Path(archive_name)
    staging: Path | None = None
    try:
        with os.fdopen(handle, "wb") as sink:
            digest = _download(archive_url, sink, info, target, progress, timeout)
        _verify(info, archive_url, digest)
        with _writable(root):
            staging = Path(tempfile.mkdtemp(prefix=f".{info.folder}.", suffix=".unzip",
                                            dir=root))
        _extract(archive, staging, archive_url)
        _move_into_place(_content_folder(staging, info), target)
    finally:
        archive.unlink(missing_ok=True)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    found = local_path(name, data_dir)
    if found is None:
        shutil.rmtree(target, ignore_errors=True)
        raise DownloadError(f"the archive from {archive_url} does not hold the {info.title} "
                            f"files (expected a {info.folder}/ folder); check the URL")
    log.info("%s: extracted into %s", name, found)
    return found


@contextlib.contextmanager
def _writable(root: Path) -> Iterator[None]:
    """Turn an OSError while creating a file or folder in ``root`` (not writable, disk
    full) into the DownloadError that says where to download instead."""
    try:
        yield
    except OSError as error:
        raise DownloadError(f"cannot write in {root}: {error.strerror or error}; set "
                            "METAREC_DATA or pass --data-dir PATH to a writable folder") from None


def _download(url: str, sink: BinaryIO, info: DatasetInfo, target: Path, progress: Progress | None,
              timeout: float) -> str:
    """Stream ``url`` into ``sink``; return the SHA-256 of what was received."""
    digest = hashlib.sha256()
    received = 0
    connected = False
    try:
        request = urllib.request.Request(url, headers={"User-Agent": f"metarec/{__version__}"})
    except ValueError as error:  # "unknown url type"
        raise DownloadError(f"cannot download {info.name} from {url!r}: {error}; give an "
                            "http:// or https:// URL") from None
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            connected = True
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if progress is not None:
                progress(0, total)
            while chunk := response.read(CHUNK_SIZE):
                sink.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                if progress is not None:
                    progress(received, total)
    except urllib.error.HTTPError as error:
        raise DownloadError(
            f"downloading {info.name} failed: {url} answered HTTP {error.code} "
            f"{error.reason}; download the archive by hand and unzip it into {target}, "
            "or pass --data-dir PATH to use files already on disk") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        if connected:
            raise DownloadError(
                f"downloading {info.name} from {url} stopped after {received:,} bytes "
                f"({_describe(reason)}): the download is truncated; nothing was kept, run "
                "the same command again") from None
        raise DownloadError(
            f"downloading {info.name} from {url} failed ({_describe(reason)}): you appear "
            f"to be offline or the server is unreachable; download {url} by hand and unzip "
            f"it so that the files are in {target}, or pass --data-dir PATH to use files "
            "already on disk") from None
    if total is not None and received < total:
        raise DownloadError(
            f"downloading {info.name} from {url} stopped after {received:,} of {total:,} "
            "bytes (connection dropped); nothing was kept, run the same command again")
    return digest.hexdigest()


def _describe(reason: object) -> str:
    if isinstance(reason, http.client.IncompleteRead):
        return "the connection dropped before the end of the data"
    if isinstance(reason, socket.gaierror):
        return "host name not found"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _verify(info: DatasetInfo, url: str, digest: str) -> None:
    if info.sha256 is None:
        log.warning("%s: no known SHA-256 for this archive, so it could not be verified; "
                    "the downloaded archive's SHA-256 is %s", info.name, digest)
        return
    if digest != info.sha256.lower():
        raise DownloadError(
            f"the archive of {info.name} from {url} has SHA-256 {digest}, expected "
            f"{info.sha256}: the download is corrupt or the file changed upstream; "
            "nothing was kept, run the command again or fetch from another mirror with --url")


def _extract(archive: Path, staging: Path, url: str) -> None:
    try:
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(staging)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as error:
        raise DownloadError(f"the archive from {url} is not a valid zip file ({error}); "
                            "nothing was kept, run the command again") from None
    except OSError as error:
        raise DownloadError(f"cannot unzip into {staging.parent}: "
                            f"{error.strerror or error}") from None


def _content_folder(staging: Path, info: DatasetInfo) -> Path:
    """The folder inside the unzipped archive that holds the files."""
    named = staging / info.folder
    if named.is_dir():
        return named
    entries = list(staging.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return staging


def _move_into_place(source: Path, target: Path) -> None:
    try:
        os.replace(source, target)
    except OSError as error:
        # Another process may have finished the same download first; its copy is as good.
        if target.is_dir() and any(target.iterdir()):
            log.info("%s appeared while downloading; keeping it", target)
            return
        raise DownloadError(f"cannot move the unzipped files to {target}: "
                            f"{error.strerror or error}") from None
