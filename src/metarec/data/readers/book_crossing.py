"""Book-Crossing (Ziegler et al., 2005).

Files (``;``-separated, cells quoted, latin-1, header line):
``BX-Book-Ratings.csv`` ("User-ID";"ISBN";"Book-Rating"), ``BX-Users.csv`` ("User-ID";
"Location";"Age", Age ``NULL`` when unknown) and ``BX-Books.csv`` ("ISBN";"Book-Title";
"Book-Author";"Year-Of-Publication";"Publisher";image URLs...). Ratings 1-10 are
explicit; 0 records an implicit interaction (the user read the book, gave no rating).
A backslash before a closing quote (``...Readers)\\";``) is a literal backslash, not an
escape: read that way, the known broken rows of BX-Books keep their columns aligned.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from metarec.data.dataset import Dataset, build_dataset
from metarec.data.readers._common import (
    as_folder,
    check_unique,
    find_file,
    optional_text,
    parse_ids,
    parse_numbers,
    parse_text_ids,
    ratings_frame,
    read_quoted_csv,
    require_ratings,
)

_CSV = {"sep": ";", "encodings": "latin-1"}


def read_book_crossing(path: str | Path, keep_implicit: bool = False) -> Dataset:
    """Read the Book-Crossing folder ``path`` into a :class:`Dataset`.

    Implicit rows (rating 0) are excluded unless ``keep_implicit`` (rating range then
    (0, 10) instead of (1, 10)); ``notes`` says how many were excluded. Users are integer
    ids, books are ISBN strings. User fields: ``age`` (numeric, NaN when ``NULL``) and
    ``country`` (categorical, the last comma-separated part of Location). Item fields:
    ``author`` and ``publisher`` (categorical, HTML entities decoded) and ``year``
    (numeric; 0 means unknown and becomes NaN).
    """
    folder = as_folder(path)
    ratings_path = find_file(folder, "BX-Book-Ratings.csv")
    assert ratings_path is not None
    frame, lines = read_quoted_csv(ratings_path, required=("User-ID", "ISBN", "Book-Rating"),
                                   **_CSV)
    rating = parse_numbers(frame["Book-Rating"], lines, ratings_path, "Book-Rating",
                           integer=True, low=0, high=10)
    ratings = ratings_frame(
        parse_ids(frame["User-ID"], lines, ratings_path, "User-ID"),
        parse_text_ids(frame["ISBN"], lines, ratings_path, "ISBN"),
        rating,
    )
    require_ratings(ratings, ratings_path, "only the header")
    notes = []
    implicit = rating == 0
    if not keep_implicit:
        ratings = ratings[~implicit]
        notes.append(f"excluded {int(implicit.sum())} implicit rating(s) (Book-Rating 0); "
                     "pass keep_implicit=True to keep them")
        require_ratings(ratings, ratings_path, "every rating is implicit (Book-Rating 0); "
                        "pass keep_implicit=True to keep them")
    users = _read_users(find_file(folder, "BX-Users.csv", required=False))
    items = _read_books(find_file(folder, "BX-Books.csv", required=False))
    dataset = build_dataset(
        "book-crossing", ratings, users=users, items=items,
        user_fields={"age": "numeric", "country": "categorical"} if users is not None
        else None,
        item_fields={"author": "categorical", "publisher": "categorical", "year": "numeric"}
        if items is not None else None,
        rating_range=(0.0, 10.0) if keep_implicit else (1.0, 10.0), source=str(ratings_path),
    )
    dataset.notes.extend(notes)
    return dataset


def _read_users(path: Path | None) -> pd.DataFrame | None:
    if path is None:
        return None
    frame, lines = read_quoted_csv(path, required=("User-ID", "Location", "Age"), **_CSV)
    ids = parse_ids(frame["User-ID"], lines, path, "User-ID")
    check_unique(ids, lines, path, "User-ID")
    country = frame["Location"].fillna("").str.rsplit(",", n=1).str[-1].str.strip()
    return pd.DataFrame({
        "age": parse_numbers(frame["Age"], lines, path, "Age", allow_missing=True,
                             missing_tokens=("NULL",), low=0, high=1000),
        "country": optional_text(country),
    }, index=pd.Index(ids, name="user"))


def _read_books(path: Path | None) -> pd.DataFrame | None:
    if path is None:
        return None
    frame, lines = read_quoted_csv(
        path, required=("ISBN", "Book-Author", "Year-Of-Publication", "Publisher"), **_CSV)
    ids = parse_text_ids(frame["ISBN"], lines, path, "ISBN")
    check_unique(ids, lines, path, "ISBN")
    year = parse_numbers(frame["Year-Of-Publication"], lines, path, "Year-Of-Publication",
                         integer=True, allow_missing=True, low=0, high=3000)
    return pd.DataFrame({
        "title": frame.get("Book-Title", pd.Series(index=frame.index, dtype=object))
        .to_numpy(dtype=object),
        "author": _clean(frame["Book-Author"]),
        "publisher": _clean(frame["Publisher"]),
        "year": np.where(year == 0, np.nan, year),
    }, index=pd.Index(ids, name="item"))


def _clean(cells: pd.Series) -> list[str | None]:
    # strip('"\\ ') drops the stray quote a broken row leaves (``James Buckley"``)
    return [(html.unescape(c).strip('"\\ ') or None) if isinstance(c, str) else None
            for c in cells]
