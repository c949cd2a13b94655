"""MovieLens 100k (GroupLens).

Files: ``u.data`` (tab: user, item, rating, unix seconds), ``u.user`` (``|``: id, age,
gender, occupation, zip), ``u.item`` (``|``, latin-1: id, title, release date
``01-Jan-1995`` or empty, video date, IMDb url, then 19 genre flags 0/1 in the order of
``u.genre``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from metarec.data.dataset import Dataset, build_dataset
from metarec.data.readers._common import (
    as_folder,
    check_unique,
    find_file,
    movielens_users,
    parse_dates,
    parse_ids,
    parse_numbers,
    parse_timestamps,
    ratings_frame,
    read_delimited,
)
from metarec.errors import ConfigError

GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
          "Romance", "Sci-Fi", "Thriller", "War", "Western")
"""The 19 genres of ``u.item``'s flag columns, in file order (as listed in ``u.genre``)."""

ML1M_AGE_GROUPS = (1, 18, 25, 35, 45, 50, 56)
"""ML-1M's age group codes: under 18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+."""


def age_group(age: np.ndarray) -> np.ndarray:
    """Map ages in years to ML-1M's age group codes (the group's lower bound, 1 for
    under 18); NaN stays NaN."""
    bounds = np.array(ML1M_AGE_GROUPS[1:], dtype=np.float64)
    codes = np.array(ML1M_AGE_GROUPS, dtype=np.float64)[np.searchsorted(bounds, age,
                                                                         side="right")]
    return np.where(np.isnan(age), np.nan, codes)


ML1M_OCCUPATIONS = {
    "other": "0", "educator": "1", "librarian": "1", "artist": "2", "entertainment": "2",
    "administrator": "3", "student": "4", "doctor": "6", "healthcare": "6",
    "executive": "7", "homemaker": "9", "lawyer": "11", "programmer": "12", "retired": "13",
    "marketing": "14", "salesman": "14", "scientist": "15", "engineer": "17",
    "technician": "17", "none": "19", "writer": "20"}
"""ML-100k's 21 occupation words -> ML-1M's occupation codes (0 other, 1
academic/educator, 2 artist, 3 clerical/admin, 4 college/grad student, 6 doctor/health
care, 7 executive/managerial, 9 homemaker, 11 lawyer, 12 programmer, 13 retired, 14
sales/marketing, 15 scientist, 17 technician/engineer, 19 unemployed, 20 writer). Several
words share a code (educator and librarian, artist and entertainment, doctor and
healthcare, marketing and salesman, engineer and technician)."""


def read_ml100k(path: str | Path, occupations: str = "words") -> Dataset:
    """Read the MovieLens 100k folder ``path`` into a :class:`Dataset`.

    User fields: ``gender``, ``age``, ``occupation``, ``zip`` (all categorical). ``age`` is
    not the raw age: it is mapped to ML-1M's age groups (1 = under 18, 18 = 18-24,
    25 = 25-34, 35 = 35-44, 45 = 45-49, 50 = 50-55, 56 = 56+) so that ML-100k and ML-1M
    share the field and its vocabulary. ``occupation`` holds the file's words, or with
    ``occupations="ml-1m"`` ML-1M's codes (:data:`ML1M_OCCUPATIONS`; a word outside that
    list is kept as it is), so that the field is shared with ML-1M too. Item fields:
    ``genres`` (multi, from the 19 flags) and ``year`` (numeric, from the release date;
    NaN when it is empty). Titles are not features.
    """
    if occupations not in ("words", "ml-1m"):
        raise ConfigError(f"occupations must be 'words' or 'ml-1m', got {occupations!r}")
    folder = as_folder(path)
    data_path = find_file(folder, "u.data")
    assert data_path is not None
    frame, lines = read_delimited(data_path, "\t", ("user", "item", "rating", "timestamp"))
    ratings = ratings_frame(
        parse_ids(frame["user"], lines, data_path, "user"),
        parse_ids(frame["item"], lines, data_path, "item"),
        parse_numbers(frame["rating"], lines, data_path, "rating", low=1, high=5),
        parse_timestamps(frame["timestamp"], lines, data_path, "timestamp"),
    )
    users = _read_users(find_file(folder, "u.user", required=False), occupations == "ml-1m")
    items = _read_items(find_file(folder, "u.item", required=False))
    return build_dataset(
        "ml-100k", ratings, users=users, items=items,
        user_fields={"gender": "categorical", "age": "categorical",
                     "occupation": "categorical", "zip": "categorical"} if users is not None
        else None,
        item_fields={"genres": "multi", "year": "numeric"} if items is not None else None,
        rating_range=(1.0, 5.0), source=str(data_path),
    )


def _read_users(path: Path | None, ml1m_occupations: bool) -> pd.DataFrame | None:
    if path is None:
        return None
    names = ("id", "age", "gender", "occupation", "zip")
    frame, lines = read_delimited(path, "|", names, text_columns=names)
    if ml1m_occupations:
        words = frame["occupation"]
        frame["occupation"] = words.map(
            lambda w: ML1M_OCCUPATIONS.get(w.strip().lower(), w) if isinstance(w, str) else w)
    ids = parse_ids(frame["id"], lines, path, "id")
    check_unique(ids, lines, path, "id")
    age = age_group(parse_numbers(frame["age"], lines, path, "age", low=0, high=150,
                                  allow_missing=True))
    return movielens_users(frame, ids, age)


def _read_items(path: Path | None) -> pd.DataFrame | None:
    if path is None:
        return None
    names = ("id", "title", "release_date", "video_date", "url", *GENRES)
    frame, lines = read_delimited(path, "|", names, text_columns=names[:5])
    ids = parse_ids(frame["id"], lines, path, "id")
    check_unique(ids, lines, path, "id")
    released = parse_dates(frame["release_date"], lines, path, "release date", "%d-%b-%Y")
    flags = np.column_stack([
        parse_numbers(frame[genre], lines, path, genre, integer=True, low=0, high=1)
        for genre in GENRES
    ])
    year = pd.to_datetime(released, unit="s", utc=True).year.to_numpy(dtype=np.float64,
                                                                     na_value=np.nan)
    return pd.DataFrame({
        "title": frame["title"].to_numpy(dtype=object),
        "genres": [[g for g, on in zip(GENRES, row, strict=True) if on == 1] for row in flags],
        "year": year,
    }, index=pd.Index(ids, name="item"))
