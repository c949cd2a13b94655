"""Netflix Prize.

Rating files are ``combined_data_*.txt`` (several movies each) or ``training_set/
mv_*.txt`` (one movie each), both in the same layout: a ``MovieID:`` line, then
``CustomerID,Rating,YYYY-MM-DD`` lines for that movie. Titles, optional, are
``movie_titles.txt`` / ``movie_titles.csv`` (latin-1, ``id,year,title`` with commas
allowed in the title, year ``NULL`` when unknown; a ``MovieID,Year,Title`` header is
tolerated).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from metarec.data.dataset import Dataset, build_dataset
from metarec.data.readers._common import (
    check_unique,
    fail_first,
    parse_dates,
    parse_ids,
    parse_numbers,
    ratings_frame,
    read_delimited,
    read_text,
    require_ratings,
)
from metarec.errors import DataError

TITLE_FILES = ("movie_titles.txt", "movie_titles.csv", "movie-titles.csv")


def read_netflix(path: str | Path) -> Dataset:
    """Read Netflix Prize ratings from ``path``, a folder (all ``combined_data_*.txt``
    and ``training_set/mv_*.txt`` in it, plus its title file) or one rating file, into a
    :class:`Dataset` with rating range (1, 5). Dates become unix seconds (UTC midnight);
    an empty date is a missing timestamp (NaN). Item field: ``year`` (numeric, NaN for ``NULL``)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("combined_data_*.txt")) + sorted(
            path.glob("training_set/mv_*.txt")) + sorted(path.glob("mv_*.txt"))
        if not files:
            raise DataError("expected combined_data_*.txt or training_set/mv_*.txt files "
                            "in this folder", path=path)
        titles = next((path / n for n in TITLE_FILES if (path / n).is_file()), None)
    elif path.is_file():
        files, titles = [path], None
    else:
        raise DataError("expected an existing file or folder", path=path)
    ratings = pd.concat([_read_ratings(f) for f in files], ignore_index=True)
    require_ratings(ratings, path, "only 'MovieID:' lines")
    items = None if titles is None else _read_titles(titles)
    return build_dataset(
        "netflix", ratings, items=items,
        item_fields={"year": "numeric"} if items is not None else None,
        rating_range=(1.0, 5.0), source=str(files[0]),
    )


def _read_ratings(path: Path) -> pd.DataFrame:
    names = ("customer", "rating", "date")
    frame, lines = read_delimited(path, ",", names, encodings="latin-1",
                                  text_columns=("customer", "date"), min_fields=1)
    customer = frame["customer"].str.strip()
    is_movie = customer.str.endswith(":").to_numpy(dtype=bool)
    header = frame.loc[is_movie]
    fail_first(header["rating"].notna().to_numpy() | (header["date"] != "").to_numpy(),
               header["customer"], lines[is_movie], path, "MovieID",
               "a 'MovieID:' line with nothing after the colon")
    fail_first(~is_movie & frame["rating"].isna().to_numpy(), frame["customer"], lines, path,
               "line", "'CustomerID,Rating,YYYY-MM-DD'")
    if len(frame) and not is_movie[0]:
        raise DataError("expected the file to start with a 'MovieID:' line", path=path,
                        line=int(lines[0]), field="MovieID")
    movie = parse_ids(customer[is_movie].str[:-1], lines[is_movie], path, "MovieID")
    movie_of_row = np.repeat(movie, np.diff(np.append(np.flatnonzero(is_movie), len(frame))))
    keep = ~is_movie
    rows, rows_lines = frame.loc[keep], lines[keep]
    return ratings_frame(
        parse_ids(rows["customer"], rows_lines, path, "CustomerID"),
        movie_of_row[keep],
        parse_numbers(rows["rating"], rows_lines, path, "Rating", integer=True, low=1,
                      high=5),
        parse_dates(rows["date"], rows_lines, path, "Date", "%Y-%m-%d"),
    )


def _read_titles(path: Path) -> pd.DataFrame:
    text = read_text(path, "latin-1")
    records = [line.split(",", 2) for line in text.split("\n")]
    lines = np.array([i + 1 for i, r in enumerate(records) if r != [""]], dtype=np.int64)
    records = [r for r in records if r != [""]]
    if records and records[0][0].strip().lower() == "movieid":
        records, lines = records[1:], lines[1:]
    short = [i for i, r in enumerate(records) if len(r) < 3]
    if short:
        raise DataError(f"expected 3 fields 'id,year,title', got {len(records[short[0]])}",
                        path=path, line=int(lines[short[0]]))
    frame = pd.DataFrame(records, columns=["id", "year", "title"], dtype=object)
    ids = parse_ids(frame["id"], lines, path, "id")
    check_unique(ids, lines, path, "id")
    year = parse_numbers(frame["year"], lines, path, "year", integer=True, low=1000,
                         high=3000, allow_missing=True, missing_tokens=("NULL",))
    return pd.DataFrame({"title": frame["title"].to_numpy(dtype=object), "year": year},
                        index=pd.Index(ids, name="item"))
