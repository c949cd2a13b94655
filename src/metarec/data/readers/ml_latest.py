"""MovieLens "latest" and its small variant (and ML-20M/25M, same layout).

Files (UTF-8 CSV with a header): ``ratings.csv`` (userId, movieId, rating, timestamp;
half-star ratings 0.5-5.0) and ``movies.csv`` (movieId, title, genres separated by ``|``,
``(no genres listed)`` meaning none; titles with commas are quoted).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from metarec.data.dataset import Dataset, build_dataset
from metarec.data.readers._common import (
    as_folder,
    check_unique,
    find_file,
    parse_ids,
    parse_numbers,
    parse_timestamps,
    ratings_frame,
    read_quoted_csv,
    require_ratings,
    split_list,
    year_from_title,
)


def read_ml_latest(path: str | Path) -> Dataset:
    """Read a MovieLens latest folder ``path`` (``ratings.csv``, optional ``movies.csv``)
    into a :class:`Dataset` with rating range (0.5, 5.0). Item fields: ``genres`` (multi)
    and ``year`` (numeric, from the title's trailing ``(YYYY)``, NaN when absent)."""
    folder = as_folder(path)
    ratings_path = find_file(folder, "ratings.csv")
    assert ratings_path is not None
    frame, lines = read_quoted_csv(ratings_path,
                                   required=("userId", "movieId", "rating", "timestamp"))
    require_ratings(frame, ratings_path, "only the header")
    ratings = ratings_frame(
        parse_ids(frame["userId"], lines, ratings_path, "userId"),
        parse_ids(frame["movieId"], lines, ratings_path, "movieId"),
        parse_numbers(frame["rating"], lines, ratings_path, "rating", low=0.5, high=5.0),
        parse_timestamps(frame["timestamp"], lines, ratings_path, "timestamp"),
    )
    items = _read_movies(find_file(folder, "movies.csv", required=False))
    return build_dataset(
        "ml-latest", ratings, items=items,
        item_fields={"genres": "multi", "year": "numeric"} if items is not None else None,
        rating_range=(0.5, 5.0), source=str(ratings_path),
    )


def _read_movies(path: Path | None) -> pd.DataFrame | None:
    if path is None:
        return None
    frame, lines = read_quoted_csv(path, required=("movieId", "title", "genres"))
    ids = parse_ids(frame["movieId"], lines, path, "movieId")
    check_unique(ids, lines, path, "movieId")
    return pd.DataFrame({
        "title": frame["title"].to_numpy(dtype=object),
        "genres": split_list(frame["genres"], "|", none=("(no genres listed)", "")),
        "year": year_from_title(frame["title"]),
    }, index=pd.Index(ids, name="item"))
