"""read_table on hand-written CSV and Parquet logs and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metarec.data.readers import read_table
from metarec.errors import DataError


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_sniffed_separator(write, sep):
    text = "user,item,rating\nu1,i1,4\nu2,i1,2.5\nu1,i2,5\n".replace(",", sep)
    data = read_table(write("log.csv", text))
    assert (data.name, data.num_users, data.num_items, len(data.interactions)) == (
        "log", 2, 2, 3)
    assert data.interactions.rating.tolist() == [4, 2.5, 5]
    assert data.rating_range == (2.5, 5.0)
    assert data.user_ids.raw.tolist() == ["u1", "u2"]
    assert np.isnan(data.interactions.timestamp).all()


def test_columns_integer_ids_and_unix_times(write):
    path = write("log.txt", "who;what;stars;when\n10;7;1;100\n11;7;3;\n")
    data = read_table(path, user_col="who", item_col="what", rating_col="stars",
                      time_col="when", sep=";", name="mine")
    assert data.name == "mine"
    assert data.user_ids.raw.tolist() == [10, 11]
    assert data.interactions.timestamp[0] == 100
    assert np.isnan(data.interactions.timestamp[1])


def test_iso_dates(write):
    path = write("log.csv", "user,item,rating,time\n1,2,3,1970-01-02\n1,3,4,"
                 "1970-01-01T00:01:00Z\n")
    data = read_table(path, time_col="time")
    assert data.interactions.timestamp.tolist() == [86_400, 60]


def test_parquet(tmp_path):
    path = tmp_path / "log.parquet"
    pd.DataFrame({"user": [1, 2, 1], "item": ["a", "a", "b"], "rating": [1.0, 2.0, 3.0],
                  "ts": pd.to_datetime(["1970-01-01", "1970-01-02", None])}).to_parquet(path)
    data = read_table(path, time_col="ts")
    assert data.user_ids.raw.tolist() == [1, 2]
    assert data.item_ids.raw.tolist() == ["a", "b"]
    assert data.interactions.timestamp[:2].tolist() == [0, 86_400]
    assert np.isnan(data.interactions.timestamp[2])


def test_duplicates_and_notes(write):
    data = read_table(write("log.csv", "user,item,rating,t\n1,2,3,5\n1,2,4,1\n"),
                      time_col="t")
    assert data.interactions.rating.tolist() == [3]
    assert data.notes == ["1 duplicate (user, item) rating(s): kept the latest of each"]


@pytest.mark.parametrize(("text", "kwargs", "line", "field", "words"), [
    ("user,item\n1,2\n", {}, 1, None, "['rating']"),
    ("user item rating\n1 2 3\n", {}, 1, None, "missing column(s)"),
    ("user,item,rating\n1,2,3\n1,3,high\n", {}, 3, "rating", "'high'"),
    ("user,item,rating,t\n1,2,3,2020-13-45\n", {"time_col": "t"}, 2, "t", "ISO8601"),
    ("user,item,rating\n1,,3\n", {}, 2, "item", "non-empty id"),
    ("user,item,rating\n1,2,3,4\n", {}, 2, None, "expected 3 fields"),
    ("user,item,rating\n", {}, None, None, "no rating rows"),
    ("", {}, None, None, "empty"),
    (b"user,item,rating\n1,\xff,3\n", {}, 2, None, "utf-8"),
])
def test_bad_input(write, text, kwargs, line, field, words):
    with pytest.raises(DataError) as info:
        read_table(write("log.csv", text), **kwargs)
    assert (info.value.line, info.value.field) == (line, field)
    assert "log.csv" in str(info.value) and words in str(info.value)


def test_corrupt_parquet(write):
    with pytest.raises(DataError, match="log.parquet: cannot read as Parquet"):
        read_table(write("log.parquet", b"PAR1 not really"))


def test_check_unique_names_both_lines_also_for_a_missing_id() -> None:
    from metarec.data.readers._common import check_unique

    lines = np.array([2, 3, 4, 5])
    with pytest.raises(DataError, match=r"id 'b' appears again \(first on line 3\)") as err:
        check_unique(np.array(["a", "b", "c", "b"], dtype=object), lines, Path("x.csv"), "isbn")
    assert str(err.value).startswith("x.csv:5: field 'isbn'")
    with pytest.raises(DataError, match=r"id nan appears again \(first on line 2\)"):
        check_unique(np.array([np.nan, "b", np.nan, "c"], dtype=object), lines, Path("x.csv"),
                     "isbn")
    check_unique(np.array(["a", "b", "c"], dtype=object), lines[:3], Path("x.csv"), "isbn")
