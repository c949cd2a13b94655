"""Helpers shared by the readers: decoding text, splitting delimited records, and turning
columns of raw cells into validated numbers, ids and dates.

Every helper raises :class:`~metarec.errors.DataError` naming the file, the 1-based line,
the field and what was expected; none lets a pandas or codec exception escape. Records
travel as a DataFrame of cells plus ``lines``, the 1-based line number of each row, so
that a bad value found after vectorised parsing can still be traced to its line.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from metarec.errors import DataError

_UNIT_SEP = "\x1f"
_YEAR_IN_TITLE = re.compile(r"\((\d{4})\)\s*$")
_PARSER_FIELDS = re.compile(
    r"Expected (?P<width>\d+) fields in line (?P<line>\d+), saw (?P<got>\d+)")


def find_file(folder: Path, *names: str, required: bool = True) -> Path | None:
    """The first of ``names`` present in ``folder``; a DataError when none is and
    ``required``."""
    for name in names:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    if required:
        raise DataError(f"expected a file named {' or '.join(names)} in this folder",
                        path=folder)
    return None


def as_folder(path: str | Path) -> Path:
    """``path`` as a folder that must exist."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataError("expected an existing folder", path=folder)
    return folder


def read_text(path: Path, encodings: str | Sequence[str] = "utf-8") -> str:
    """The decoded text of ``path`` with ``\\r\\n`` and a lone ``\\r`` (old Mac line
    endings) normalised to ``\\n``: each is one line break, as Python's universal newlines
    read them.

    ``encodings`` are tried in order; when all fail, the DataError names the encoding(s)
    tried and the line of the first undecodable byte. An empty (or blank) file is an error.
    """
    tried = [encodings] if isinstance(encodings, str) else list(encodings)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read file: {err.strerror or err}", path=path) from None
    # Before decoding: as latin-1 a UTF-8 byte order mark reads as three letters.
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    text = None
    failure: UnicodeDecodeError | None = None
    for encoding in tried:
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError as err:
            failure = failure or err
    if text is None:
        assert failure is not None
        head = raw[:failure.start]
        line = head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n") + 1
        raise DataError(
            f"cannot decode byte 0x{raw[failure.start]:02x} as {' or '.join(tried)}; "
            "is the file in another encoding?", path=path, line=line)
    if not text.strip():
        raise DataError("file is empty", path=path)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def column_list(columns: Sequence[object], limit: int = 8) -> str:
    """``columns`` for an error message, as a list of at most ``limit`` names of at most
    40 characters: a file read with the wrong separator can have one huge column name."""
    names = [str(c) if len(str(c)) <= 40 else f"{str(c)[:37]}..." for c in columns]
    shown = repr(names[:limit])
    return shown if len(names) <= limit else f"{shown[:-1]}, ... ({len(names)} in all)]"


def _line_layout(text: str, sep: str) -> tuple[np.ndarray, np.ndarray]:
    """Per physical line of ``text``: the number of ``sep`` characters, and whether the
    line is blank (only spaces and tabs other than ``sep``: pandas skips those lines).
    Counted on the UTF-8 bytes with numpy: about 0.1 s for ML-1M."""
    data = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    newlines = np.flatnonzero(data == 10)
    num_lines = len(newlines) + (0 if len(data) and data[-1] == 10 else 1)
    ends = np.append(newlines, len(data))[:num_lines]
    starts = np.concatenate(([0], newlines + 1))[:num_lines]

    def per_line(mask: np.ndarray) -> np.ndarray:
        line_of = np.searchsorted(newlines, np.flatnonzero(mask))
        return np.bincount(line_of, minlength=num_lines)[:num_lines]

    counts = per_line(data == ord(sep))
    # Spaces are rare in these files: count them per line, not the other bytes.
    space = np.zeros(len(data), dtype=bool)
    for char in " \t":
        if char != sep:
            space |= data == ord(char)
    spaces = per_line(space)
    return counts, spaces == ends - starts


def _record_spans(text: str, sep: str) -> Iterator[tuple[int, int, list[str]]]:
    """(first line, last line, fields) of each record of ``text``, header included, as
    the csv module reads them (a quoted cell may span lines); raises ``csv.Error``."""
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    end = 0
    for record in reader:
        start, end = end + 1, reader.line_num
        yield start, end, record


def _records(text: str, sep: str, blank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 1-based line on which each record after the header starts, and its number of
    fields, read by the csv module, for text whose quoted cells hold line breaks (a
    record then spans several lines) or separators. A record of one blank line is
    skipped, as pandas does. Both empty when the csv module cannot read the text."""
    starts: list[int] = []
    widths: list[int] = []
    try:
        for start, end, record in _record_spans(text, sep):
            if not (start == end and blank[start - 1]):
                starts.append(start)
                widths.append(len(record))
    except csv.Error:
        return np.array([], dtype=np.int64), np.array([], dtype=np.int64)
    return np.array(starts[1:], dtype=np.int64), np.array(widths[1:], dtype=np.int64)


def _last_record_line(text: str, sep: str) -> int | None:
    """The line on which the last record starts: where a quote that is never closed
    opens (its cell runs to the end of the file). None when the csv module cannot tell."""
    last = None
    try:
        for last in _record_spans(text, sep):  # noqa: B007 (the last one is wanted)
            pass
    except csv.Error:
        return None
    return last[0] if last else None


def read_delimited(
    path: Path,
    sep: str,
    names: Sequence[str],
    *,
    encodings: str | Sequence[str] = "latin-1",
    text_columns: Sequence[str] = (),
    min_fields: int | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Split a header-less, unquoted file of ``sep``-separated records (``sep`` may be
    several characters, as ML-1M's ``::``) into columns ``names``.

    Every non-blank line must have exactly ``len(names)`` fields (or at least
    ``min_fields``, the rest then empty). Columns in ``text_columns`` come back as strings
    (empty cells ``""``); the others are parsed as numbers by the C parser where they can
    be, and left as text otherwise for the validators below to report. Returns the frame
    and the 1-based line number of each row.
    """
    text = read_text(path, encodings)
    if len(sep) > 1 and _UNIT_SEP in text:
        line = text.count("\n", 0, text.index(_UNIT_SEP)) + 1
        raise DataError("unexpected control character 0x1f", path=path, line=line)
    if len(sep) > 1:
        text = text.replace(sep, _UNIT_SEP)
    one_char = _UNIT_SEP if len(sep) > 1 else sep
    counts, blank = _line_layout(text, one_char)
    low = (min_fields or len(names)) - 1
    wrong = ~blank & ((counts < low) | (counts > len(names) - 1))
    if wrong.any():
        at = int(np.flatnonzero(wrong)[0])
        expected = (f"{len(names)}" if min_fields is None
                    else f"{min_fields} to {len(names)}")
        raise DataError(
            f"expected {expected} fields separated by {sep!r} ({', '.join(names)}), "
            f"got {int(counts[at]) + 1}", path=path, line=at + 1)
    lines = np.flatnonzero(~blank) + 1
    dtypes = {name: str for name in text_columns}
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=one_char, header=None, names=list(names), dtype=dtypes,
            quoting=csv.QUOTE_NONE, keep_default_na=False, na_values=[""],
            skip_blank_lines=True, lineterminator="\n", engine="c",
        )
    except (pd.errors.ParserError, ValueError) as err:
        raise DataError(f"cannot parse: {err}", path=path) from None
    if len(frame) != len(lines):
        raise DataError(f"found {len(frame)} records on {len(lines)} non-blank lines; "
                        "does the file hold NUL bytes or stray line breaks?", path=path)
    for name in text_columns:
        frame[name] = frame[name].fillna("")
    return frame, lines


def read_quoted_csv(
    path: Path,
    *,
    sep: str | None = ",",
    encodings: str | Sequence[str] = "utf-8",
    required: Sequence[str] = (),
) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a CSV file with a header line and quoted cells into a frame of strings
    (empty cells ``""``) and the 1-based line number of each row.

    ``sep=None`` sniffs the separator among ``, ; tab |``. ``required`` columns must be
    present (a DataError lists the columns found, which usually reveals a wrong separator).
    A record with more or fewer fields than the header, or a quote that is never closed,
    is a DataError at its line.
    """
    text = read_text(path, encodings)
    if sep is None:
        sep = sniff_separator(text)
    try:
        with warnings.catch_warnings():
            # index_col=False: a row longer than the header must not become an index
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                io.StringIO(text), sep=sep, header=0, dtype=str, index_col=False,
                keep_default_na=False, na_values=[], skip_blank_lines=True, engine="c",
                lineterminator="\n",
            )
    except pd.errors.EmptyDataError:
        raise DataError("file is empty", path=path) from None
    except pd.errors.ParserWarning:
        line, width = _first_long_record(text, sep)
        raise DataError(f"expected {width} fields separated by {sep!r}, got more",
                        path=path, line=line) from None
    except (pd.errors.ParserError, ValueError) as err:
        match = _PARSER_FIELDS.search(str(err))
        if match:
            raise DataError(f"expected {match['width']} fields separated by {sep!r}, got "
                            f"{match['got']}", path=path, line=int(match["line"])) from None
        if "EOF inside string" in str(err):
            raise DataError("a quoted cell opened on this line is never closed (expected "
                            "a closing '\"')", path=path,
                            line=_last_record_line(text, sep)) from None
        raise DataError(f"cannot parse as {sep!r}-separated CSV: {err}", path=path) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(
            f"missing column(s) {missing}; found {column_list(frame.columns)} "
            f"(separator used: {sep!r})", path=path, line=1)
    counts, blank = _line_layout(text, sep)
    lines = (np.flatnonzero(~blank) + 1)[1:]
    if len(lines) != len(frame):  # quoted line breaks: follow the records
        lines, _ = _records(text, sep, blank)
    if len(lines) != len(frame):  # unforeseen: record numbers are the best guess
        lines = np.arange(len(frame)) + 2
    short = _first_short_record(text, sep, frame, lines, counts, blank)
    if short is not None:
        raise DataError(f"expected {len(frame.columns)} fields separated by {sep!r}, got "
                        f"{short[1]}", path=path, line=short[0])
    return frame, lines


def _first_short_record(text: str, sep: str, frame: pd.DataFrame, lines: np.ndarray,
                        counts: np.ndarray, blank: np.ndarray) -> tuple[int, int] | None:
    """(line, number of fields) of the first record with fewer fields than the header,
    which pandas pads with empty cells; None when there is none. Only rows whose last
    cell is empty can be one: their lines' separators tell, or where quotes make those
    unreliable, the csv module."""
    width = len(frame.columns)
    if width < 2:
        return None
    padded = np.flatnonzero((frame.iloc[:, -1] == "").to_numpy(dtype=bool))
    if not len(padded):
        return None
    at = lines[padded] - 1
    quotes, _ = _line_layout(text, '"')
    if not quotes[at].any():  # each of these records is one line: count its separators
        short = np.flatnonzero(counts[at] + 1 < width)
        return (int(at[short[0]]) + 1, int(counts[at[short[0]]]) + 1) if len(short) else None
    starts, widths = _records(text, sep, blank)
    short = np.flatnonzero(widths < width)
    return (int(starts[short[0]]), int(widths[short[0]])) if len(short) else None


def _first_long_record(text: str, sep: str) -> tuple[int | None, int | str]:
    """(line, header width) of the first record longer than the header; None and "the
    header's" when the csv module cannot tell."""
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    try:
        width = len(next(reader))
        for record in reader:
            if len(record) > width:
                return reader.line_num, width
    except csv.Error:
        pass
    return None, "the header's number of"


def sniff_separator(text: str) -> str:
    """The separator of a delimited text among ``, ; tab |`` (``,`` when unsure)."""
    sample = "\n".join(text[:20000].split("\n")[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def fail_first(mask: np.ndarray, cells: pd.Series, lines: np.ndarray, path: Path,
               field: str, expected: str) -> None:
    """Raise a DataError at the first row where ``mask`` holds, if any."""
    mask = np.asarray(mask, dtype=bool)
    if mask.any():
        at = int(np.flatnonzero(mask)[0])
        value = cells.iloc[at]
        if isinstance(value, np.generic):  # show 6, not np.int64(6)
            value = value.item()
        blank = value is None or value is pd.NA or (isinstance(value, float) and np.isnan(
            value)) or (isinstance(value, str) and not value.strip())
        shown = "nothing" if blank else repr(value)
        raise DataError(f"expected {expected}, got {shown}", path=path,
                        line=int(lines[at]), field=field)


def _blank(cells: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(cells.dtype):
        return cells.isna().to_numpy()
    text = cells.astype("string")
    return (text.isna() | (text.str.strip() == "")).to_numpy(dtype=bool)


def parse_numbers(
    cells: pd.Series, lines: np.ndarray, path: Path, field: str, *,
    integer: bool = False, low: float | None = None, high: float | None = None,
    allow_missing: bool = False, missing_tokens: Sequence[str] = (),
) -> np.ndarray:
    """``cells`` as float64, NaN where blank (or one of ``missing_tokens``) and
    ``allow_missing``; any other non-number, non-integer (when ``integer``) or value
    outside ``[low, high]`` is a DataError at its line."""
    if pd.api.types.is_numeric_dtype(cells.dtype) and not pd.api.types.is_bool_dtype(cells):
        values = cells.to_numpy(dtype=np.float64, na_value=np.nan)
        blank = np.isnan(values)
    else:
        text = cells.astype("string").str.strip()
        blank = (text.isna() | (text == "") | text.isin(list(missing_tokens))).to_numpy(
            dtype=bool)
        values = pd.to_numeric(text.where(~blank), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan)
    what = "an integer" if integer else "a number"
    if low is not None and high is not None:
        what += f" in [{low:g}, {high:g}]"
    if not allow_missing:
        fail_first(blank, cells, lines, path, field, what)
    bad = ~blank & ~np.isfinite(values)
    if integer:
        bad |= np.isfinite(values) & (values != np.round(values))
    if low is not None:
        bad |= values < low
    if high is not None:
        bad |= values > high
    fail_first(bad, cells, lines, path, field, what)
    return values


def parse_ids(cells: pd.Series, lines: np.ndarray, path: Path, field: str) -> np.ndarray:
    """Integer ids as exact int64; blank or non-integer cells, and ids outside int64, are
    a DataError. From 2**53 on float64 no longer holds every integer (2**53 + 1 would read
    as 2**53, merging two ids), so such ids are read again from their cells, exactly."""
    values = parse_numbers(cells, lines, path, field, integer=True)
    ids = np.zeros(len(values), dtype=np.int64)
    exact = np.abs(values) < 2.0**53
    ids[exact] = values[exact]
    large = np.flatnonzero(~exact)
    if len(large):
        exact_values = [_exact_integer(cells.iloc[at]) for at in large]
        wrong = np.zeros(len(values), dtype=bool)
        wrong[large] = [v is None or not -2**63 <= v < 2**63 for v in exact_values]
        fail_first(wrong, cells, lines, path, field,
                   "an integer id from -2**63 to 2**63 - 1")
        ids[large] = exact_values
    return ids


def _exact_integer(cell: object) -> int | None:
    """The integer a cell that :func:`parse_numbers` accepted as one holds, exactly; None
    when its text has a fraction that float64 had rounded away (``2**53 + 0.5``)."""
    if isinstance(cell, (int, float, np.integer, np.floating)):
        return int(cell)
    value = Decimal(str(cell).strip())  # text: every digit counts
    return int(value) if value == value.to_integral_value() else None


def parse_timestamps(cells: pd.Series, lines: np.ndarray, path: Path,
                     field: str) -> np.ndarray:
    """Unix seconds as float64, NaN where blank; a non-number, or a date outside
    :data:`DATE_RANGE`, is a DataError at its line."""
    seconds = parse_numbers(cells, lines, path, field, allow_missing=True)
    check_date_range(seconds, cells, lines, path, field, "in unix seconds ")
    return seconds


def parse_text_ids(cells: pd.Series, lines: np.ndarray, path: Path, field: str) -> np.ndarray:
    """Text ids (stripped strings); blank cells are a DataError."""
    text = cells.astype("string").str.strip()
    fail_first(_blank(text), cells, lines, path, field, "a non-empty id")
    return text.to_numpy(dtype=object)


def parse_dates(cells: pd.Series, lines: np.ndarray, path: Path, field: str,
                fmt: str, *, allow_missing: bool = True) -> np.ndarray:
    """Dates in ``fmt`` (a strptime format or ``"ISO8601"``) as float seconds since the
    epoch (UTC), NaN where blank and ``allow_missing``."""
    text = cells.astype("string").str.strip()
    blank = _blank(text)
    if not allow_missing:
        fail_first(blank, cells, lines, path, field, f"a date ({fmt})")
    try:
        stamps = pd.to_datetime(text.where(~blank), format=fmt, errors="coerce", utc=True)
    except (ValueError, TypeError, OverflowError):  # e.g. mixed ISO forms: cell by cell
        stamps = pd.Series([_one_date(v, fmt) for v in text.where(~blank)],
                           index=text.index, dtype="datetime64[us, UTC]")
    seconds = epoch_seconds(stamps)
    fail_first(~blank & np.isnan(seconds), cells, lines, path, field,
               f"a date in format {fmt}")
    check_date_range(seconds, cells, lines, path, field, f"in format {fmt} ")
    return seconds


DATE_RANGE = (pd.Timestamp.min.ceil("D"), pd.Timestamp.max.floor("D"))
"""The dates a timestamp may hold: those pandas can store in nanoseconds."""


def epoch_seconds(stamps: pd.Series) -> np.ndarray:
    """Time-zone aware datetimes as float seconds since the epoch, NaN for NaT; computed
    in their own unit, so a date out of nanosecond range does not overflow."""
    naive = stamps.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    return (naive - np.datetime64(0, "s")) / np.timedelta64(1, "s")


def check_date_range(seconds: np.ndarray, cells: pd.Series, lines: np.ndarray, path: Path,
                     field: str, how: str = "") -> None:
    """A DataError at the first of ``seconds`` outside :data:`DATE_RANGE`."""
    low, high = (t.timestamp() for t in DATE_RANGE)
    fail_first((seconds < low) | (seconds > high), cells, lines, path, field,
               f"a date {how}from {DATE_RANGE[0]:%Y-%m-%d} to {DATE_RANGE[1]:%Y-%m-%d}")


def _one_date(cell: object, fmt: str) -> pd.Timestamp:
    if not isinstance(cell, str):
        return pd.NaT
    try:
        return pd.Timestamp(pd.to_datetime(cell, format=fmt, utc=True)).as_unit("us")
    except (ValueError, TypeError, OverflowError):
        return pd.NaT


def check_unique(ids: np.ndarray, lines: np.ndarray, path: Path, field: str) -> None:
    """Raise a DataError at the second occurrence of a repeated id in a feature file."""
    dup = pd.Index(ids).duplicated(keep="first")
    if dup.any():
        at = int(np.flatnonzero(dup)[0])
        # Codes, not ``ids == ids[at]``: a missing id (NaN) equals no value, not even itself.
        codes, _ = pd.factorize(ids, use_na_sentinel=False)
        first = int(lines[int(np.flatnonzero(codes == codes[at])[0])])
        value = ids[at].item() if isinstance(ids[at], np.generic) else ids[at]
        raise DataError(f"id {value!r} appears again (first on line {first}); "
                        "expected one row per id", path=path, line=int(lines[at]), field=field)


def year_from_title(titles: pd.Series) -> np.ndarray:
    """The trailing ``(YYYY)`` of each title as float, NaN when absent."""
    years = titles.astype("string").str.extract(_YEAR_IN_TITLE, expand=False)
    return pd.to_numeric(years, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def split_list(cells: pd.Series, sep: str, *, none: Sequence[str] = ()) -> list[list[str]]:
    """Split each cell on ``sep`` into stripped, non-empty items; cells equal to one of
    ``none`` (e.g. ``"(no genres listed)"``, ``"N/A"``) are empty lists."""
    out: list[list[str]] = []
    for cell in cells.astype("string").fillna(""):
        cell = cell.strip()
        out.append([] if cell in none else [v.strip() for v in cell.split(sep) if v.strip()])
    return out


def ratings_frame(user: np.ndarray, item: np.ndarray, rating: np.ndarray,
                  timestamp: np.ndarray | None = None) -> pd.DataFrame:
    """The ``user, item, rating, timestamp`` frame :func:`build_dataset` expects."""
    if timestamp is None:
        timestamp = np.full(len(user), np.nan)
    return pd.DataFrame({"user": user, "item": item, "rating": rating,
                         "timestamp": np.asarray(timestamp, dtype=np.float64)})


def require_ratings(ratings: pd.DataFrame, path: Path, hint: str = "") -> None:
    """A DataError naming ``path`` when ``ratings`` is empty (a header-only file, or
    every row filtered out); ``hint`` says why, or what to do."""
    if not len(ratings):
        raise DataError("no ratings" + (f" ({hint})" if hint else ""), path=path)


def optional_text(cells: pd.Series, none: Sequence[str] = ("",)) -> np.ndarray:
    """Stripped strings as an object array (positional, so safe to put in a frame with
    another index), None where blank or one of ``none``."""
    text = cells.astype("string").str.strip()
    text = text.where(~text.isin(list(none)))
    return np.array([None if v is pd.NA else str(v) for v in text], dtype=object)


def movielens_users(frame: pd.DataFrame, ids: np.ndarray, age: np.ndarray) -> pd.DataFrame:
    """The MovieLens user table (gender, age group, occupation, zip) indexed by raw id;
    ``age`` holds the ML-1M age groups as numbers (NaN = missing)."""
    return pd.DataFrame({
        "gender": optional_text(frame["gender"]),
        "age": pd.array([None if np.isnan(a) else str(int(a)) for a in age], dtype="string"),
        "occupation": optional_text(frame["occupation"]),
        "zip": optional_text(frame["zip"]),
    }, index=pd.Index(ids, name="user"))
