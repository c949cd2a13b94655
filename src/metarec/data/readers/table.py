"""Any interaction log in one table: CSV (separator sniffed or given) or Parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from metarec.data.dataset import Dataset, build_dataset
from metarec.data.readers._common import (
    check_date_range,
    column_list,
    epoch_seconds,
    fail_first,
    parse_dates,
    parse_ids,
    parse_numbers,
    parse_text_ids,
    parse_timestamps,
    ratings_frame,
    read_quoted_csv,
)
from metarec.errors import ConfigError, DataError

PARQUET_SUFFIXES = (".parquet", ".pq")


def read_table(
    path: str | Path,
    *,
    user_col: str = "user",
    item_col: str = "item",
    rating_col: str = "rating",
    time_col: str | None = None,
    sep: str | None = None,
    name: str | None = None,
) -> Dataset:
    """Read a log of (user, item, rating[, time]) rows from a CSV file with a header (or
    a Parquet file, by suffix ``.parquet``/``.pq``) into a :class:`Dataset` without side
    features.

    ``sep`` is sniffed among ``, ; tab |`` when not given. Ids that are all integers
    written plainly (``7``, not ``007`` or ``+7``) become ints, otherwise strings.
    ``time_col`` holds unix seconds or ISO 8601 dates (empty = missing; a column that is
    mostly numbers is unix seconds). The rating range is the observed (min, max).
    ``name`` defaults to the file name without suffix. Binary Parquet columns are read
    as UTF-8 text.
    """
    path = Path(path)
    parquet = path.suffix.lower() in PARQUET_SUFFIXES
    if parquet:
        frame, lines = _read_parquet(path)
    else:
        if sep is not None and (len(sep) != 1 or sep in '"\r\n'):
            raise ConfigError(f"sep must be one character other than a quote or a line "
                              f"break, got {sep!r}")
        frame, lines = read_quoted_csv(path, sep=sep)
    wanted = [user_col, item_col, rating_col] + ([time_col] if time_col else [])
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise DataError(f"missing column(s) {missing}; found {column_list(frame.columns)}",
                        path=path, line=1)
    if not len(frame):
        raise DataError("no rating rows after the header", path=path)
    if parquet:
        for column in wanted:
            frame[column] = _utf8(frame[column], lines, path, column)
    rating = parse_numbers(frame[rating_col], lines, path, rating_col)
    ratings = ratings_frame(
        _ids(frame[user_col], lines, path, user_col),
        _ids(frame[item_col], lines, path, item_col),
        rating,
        None if time_col is None else _times(frame[time_col], lines, path, time_col),
    )
    return build_dataset(name or path.stem, ratings,
                         rating_range=(float(rating.min()), float(rating.max())),
                         source=str(path))


def _read_parquet(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    try:
        frame = pd.read_parquet(path)
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except Exception as err:  # pyarrow raises many types for a corrupt file
        raise DataError(f"cannot read as Parquet: {err}", path=path) from None
    frame.columns = [str(c) for c in frame.columns]
    return frame.reset_index(drop=True), np.arange(1, len(frame) + 1)


def _utf8(cells: pd.Series, lines: np.ndarray, path: Path, field: str) -> pd.Series:
    """``cells`` with binary values decoded as UTF-8, strictly: other bytes are a
    DataError at their row (pandas would raise a UnicodeDecodeError on them later)."""
    categorical = isinstance(cells.dtype, pd.CategoricalDtype)  # dictionary-encoded
    distinct = cells.cat.categories if categorical else cells
    if pd.api.types.infer_dtype(distinct, skipna=True) not in ("bytes", "mixed"):
        return cells
    values = cells.to_list()
    bad = np.zeros(len(values), dtype=bool)
    for at, value in enumerate(values):
        if isinstance(value, bytes):
            try:
                values[at] = value.decode("utf-8")
            except UnicodeDecodeError:
                bad[at] = True
    fail_first(bad, cells, lines, path, field, "UTF-8 text")
    return pd.Series(values, index=cells.index, dtype=object)


def _ids(cells: pd.Series, lines: np.ndarray, path: Path, field: str) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(cells.dtype) or _all_integers(cells):
        return parse_ids(cells, lines, path, field)
    return parse_text_ids(cells, lines, path, field)


def _all_integers(cells: pd.Series) -> bool:
    # Only cells that read back the same (str(int(x)) == x): ``007`` and ``7`` stay apart.
    text = cells.astype("string").str.strip()
    return bool(text.str.fullmatch(r"0|-?[1-9]\d{0,17}").fillna(False).all())


def _times(cells: pd.Series, lines: np.ndarray, path: Path, field: str) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(cells.dtype):
        seconds = epoch_seconds(pd.to_datetime(cells, utc=True))
        check_date_range(seconds, cells, lines, path, field)
        return seconds
    if pd.api.types.is_numeric_dtype(cells.dtype):
        return parse_timestamps(cells, lines, path, field)
    text = cells.astype("string").str.strip()
    given = text.notna() & (text != "")
    numeric = pd.to_numeric(text.where(given), errors="coerce").notna()
    # Mostly numbers: unix seconds, and the odd cell out is the error (not the numbers).
    if 2 * int(numeric.sum()) >= int(given.sum()):
        return parse_timestamps(cells, lines, path, field)
    return parse_dates(cells, lines, path, field, "ISO8601")
