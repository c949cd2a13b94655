"""MovieLens 1M (GroupLens), optionally with MeLU's OMDb side file.

Files (``::``-separated, latin-1): ``ratings.dat`` (user::movie::rating::timestamp),
``users.dat`` (id::gender::age::occupation::zip), ``movies.dat`` (id::Title (Year)::
Genre|Genre). An empty timestamp (``3000::2987::4::``) is kept as NaN. The optional
``movies_extrainfos.dat`` from the MeLU paper (UTF-8, ``::``-separated: id, title, year,
rate, released, genre, director, writer, actors, plot, poster; lists ``, ``-separated,
``N/A`` = missing) adds the item fields ``rate``, ``directors``, ``writers``, ``actors``
and replaces ``genres`` with its OMDb genres.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from metarec.data.dataset import Dataset, build_dataset
from metarec.data.readers._common import (
    as_folder,
    check_unique,
    find_file,
    movielens_users,
    optional_text,
    parse_ids,
    parse_numbers,
    parse_timestamps,
    ratings_frame,
    read_delimited,
    split_list,
    year_from_title,
)

# ML-1M is documented as latin-1, but MeLU's copy of movies.dat is UTF-8: valid UTF-8
# wins, anything else is read as latin-1 (which never fails).
_ENCODINGS = ("utf-8", "latin-1")
EXTRAS_COLUMNS = ("id", "title", "year", "rate", "released", "genre", "director", "writer",
                  "actors", "plot", "poster")
_PARENTHETICAL = re.compile(r"\s*\([^)]*\)")
_NONE = ("N/A", "")


def read_ml1m(path: str | Path, extras: str | Path | None = None) -> Dataset:
    """Read the MovieLens 1M folder ``path`` into a :class:`Dataset`.

    User fields: ``gender``, ``age`` (the ML-1M age group code 1, 18, 25, 35, 45, 50,
    56, categorical), ``occupation`` (code 0-20), ``zip``. Item fields: ``genres``
    (multi) and ``year`` (numeric, from the title's trailing ``(YYYY)``). The MeLU side
    file ``extras`` (default: ``movies_extrainfos.dat`` in the folder when present) adds
    ``rate`` (MPAA, categorical), ``directors``, ``writers``, ``actors`` (multi) and takes
    ``genres`` from OMDb; movies it lacks keep their ML-1M genres (noted in ``notes``).
    Writer credits lose their parenthetical role, ``Name (screenplay)`` -> ``Name``.
    """
    folder = as_folder(path)
    ratings_path = find_file(folder, "ratings.dat")
    assert ratings_path is not None
    frame, lines = read_delimited(ratings_path, "::", ("user", "item", "rating", "timestamp"),
                                  encodings=_ENCODINGS)
    ratings = ratings_frame(
        parse_ids(frame["user"], lines, ratings_path, "user"),
        parse_ids(frame["item"], lines, ratings_path, "item"),
        parse_numbers(frame["rating"], lines, ratings_path, "rating", low=1, high=5),
        parse_timestamps(frame["timestamp"], lines, ratings_path, "timestamp"),
    )
    users = _read_users(find_file(folder, "users.dat", required=False))
    items = _read_movies(find_file(folder, "movies.dat", required=False))
    item_fields: dict[str, str] = {"genres": "multi", "year": "numeric"}
    notes: list[str] = []
    extras_path = Path(extras) if extras is not None else find_file(
        folder, "movies_extrainfos.dat", required=False)
    if extras_path is not None:
        items, note = _merge_extras(items, read_melu_extras(extras_path))
        notes += [note] if note else []
        item_fields.update(rate="categorical", directors="multi", writers="multi",
                           actors="multi")
    dataset = build_dataset(
        "ml-1m", ratings, users=users, items=items,
        user_fields={"gender": "categorical", "age": "categorical",
                     "occupation": "categorical", "zip": "categorical"} if users is not None
        else None,
        item_fields=item_fields if items is not None else None,
        rating_range=(1.0, 5.0), source=str(ratings_path),
    )
    dataset.notes.extend(notes)
    return dataset


def _read_users(path: Path | None) -> pd.DataFrame | None:
    if path is None:
        return None
    names = ("id", "gender", "age", "occupation", "zip")
    frame, lines = read_delimited(path, "::", names, encodings=_ENCODINGS,
                                  text_columns=names)
    ids = parse_ids(frame["id"], lines, path, "id")
    check_unique(ids, lines, path, "id")
    age = parse_numbers(frame["age"], lines, path, "age", integer=True, low=0, high=200,
                        allow_missing=True)
    return movielens_users(frame, ids, age)


def _read_movies(path: Path | None) -> pd.DataFrame | None:
    if path is None:
        return None
    names = ("id", "title", "genres")
    frame, lines = read_delimited(path, "::", names, encodings=_ENCODINGS,
                                  text_columns=names)
    ids = parse_ids(frame["id"], lines, path, "id")
    check_unique(ids, lines, path, "id")
    return pd.DataFrame({
        "title": frame["title"].to_numpy(dtype=object),
        "genres": split_list(frame["genres"], "|"),
        "year": year_from_title(frame["title"]),
    }, index=pd.Index(ids, name="item"))


def read_melu_extras(path: Path) -> pd.DataFrame:
    """MeLU's ``movies_extrainfos.dat`` as a frame indexed by movie id with columns
    ``rate`` (str or None) and ``genres``, ``directors``, ``writers``, ``actors`` (lists)."""
    frame, lines = read_delimited(path, "::", EXTRAS_COLUMNS, encodings="utf-8",
                                  text_columns=EXTRAS_COLUMNS)
    ids = parse_ids(frame["id"], lines, path, "id")
    check_unique(ids, lines, path, "id")
    writers = frame["writer"].str.replace(_PARENTHETICAL, "", regex=True)
    return pd.DataFrame({
        "rate": optional_text(frame["rate"], _NONE),
        "genres": split_list(frame["genre"], ",", none=_NONE),
        "directors": split_list(frame["director"], ",", none=_NONE),
        "writers": [_unique(w) for w in split_list(writers, ",", none=_NONE)],
        "actors": split_list(frame["actors"], ",", none=_NONE),
    }, index=pd.Index(ids, name="item"))


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _merge_extras(items: pd.DataFrame | None, extras: pd.DataFrame
                  ) -> tuple[pd.DataFrame, str | None]:
    if items is None:
        return extras.assign(year=np.nan), None
    merged = items.join(extras.rename(columns={"genres": "omdb_genres"}), how="outer")
    has_extras = merged.index.isin(extras.index)
    has_movie = merged.index.isin(items.index)
    merged["genres"] = [omdb if known else (ml if isinstance(ml, list) else [])
                        for omdb, ml, known in zip(merged["omdb_genres"], merged["genres"],
                                                   has_extras, strict=True)]
    for name in ("directors", "writers", "actors"):
        merged[name] = [v if isinstance(v, list) else [] for v in merged[name]]
    lacking = int((has_movie & ~has_extras).sum())
    note = None
    if lacking:
        note = (f"{lacking} movie(s) absent from the extras file keep their ML-1M genres "
                "and have no rate, directors, writers or actors")
    return merged.drop(columns=["omdb_genres"]), note
