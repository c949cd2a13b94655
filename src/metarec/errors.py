"""Project exceptions: every user-facing failure raises one of these with a message a
user can act on (file, line, field, what was expected)."""

from __future__ import annotations

from pathlib import Path


class MetarecError(Exception):
    """Base class of every error metarec raises on purpose."""


class DataError(MetarecError):
    """A data file or table is malformed.

    The message names the file, the 1-based line number, the field and what was
    expected, e.g. ``ratings.dat:17: field 'rating': expected a number 1-5, got 'x'``.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        self.reason = message
        where = ""
        if self.path is not None:
            where = Path(self.path).name if line is None else f"{Path(self.path).name}:{line}"
        parts = [p for p in (where, f"field '{field}'" if field else "") if p]
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class DownloadError(MetarecError):
    """A data set could not be downloaded, verified or extracted."""


class ConfigError(MetarecError):
    """A configuration value is invalid or inconsistent."""


class InputError(MetarecError, ValueError):
    """An argument of a call is out of range: an unknown user index, a negative ``k``."""


class CheckpointError(MetarecError):
    """A saved model or run folder is missing or incompatible."""


class DistributedError(MetarecError):
    """Joining the process group failed, or a collective failed because a rank stopped."""


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message (its type's name when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
