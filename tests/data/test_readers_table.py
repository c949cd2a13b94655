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


@pytest.mark.parametrize(("text", "line", "message"), [
    ("user,item,rating,time\n1,2,3,2020-01-01\n2,2,3,9999-12-31\n", 3,
     "expected a date in format ISO8601 from 1677-09-22 to 2262-04-11, got '9999-12-31'"),
    ("user,item,rating,time\n1,2,3,2020-01-01\n2,2,3,1000-01-01\n", 3,
     "expected a date in format ISO8601 from 1677-09-22 to 2262-04-11, got '1000-01-01'"),
    # small unix seconds are not ISO years: the cell that is no number is the error
    ("user,item,rating,time\n1,10,4,1000\n2,10,3,oops\n", 3, "expected a number, got 'oops'"),
])
def test_out_of_range_date_is_a_data_error(write, text, line, message):
    with pytest.raises(DataError) as info:
        read_table(write("s.csv", text), time_col="time")
    assert str(info.value) == f"s.csv:{line}: field 'time': {message}"


def test_parquet_date_out_of_range_is_a_data_error(tmp_path):
    path = tmp_path / "log.parquet"
    pd.DataFrame({"user": [1, 2], "item": [1, 1], "rating": [3.0, 4.0],
                  "ts": pd.to_datetime(["2020-01-01", "9999-12-31"]).as_unit("us")}
                 ).to_parquet(path)
    with pytest.raises(DataError) as info:
        read_table(path, time_col="ts")
    assert str(info.value).startswith("log.parquet:2: field 'ts': expected a date from "
                                      "1677-09-22 to 2262-04-11, got Timestamp('9999-12-31")


def test_unix_seconds_column_blames_the_cell_that_is_no_number(write):
    path = write("t.csv", "user,item,rating,time\n1,10,4,964982703\n2,10,3,964982704\n"
                 "3,10,5,N/A\n")
    with pytest.raises(DataError) as info:
        read_table(path, time_col="time")
    assert str(info.value) == "t.csv:4: field 'time': expected a number, got 'N/A'"
    assert (info.value.line, info.value.field) == (4, "time")


def test_ids_with_leading_zeros_stay_strings(write):
    data = read_table(write("z.csv", "user,item,rating\n1,007,3\n1,7,5\n"))
    assert data.item_ids.raw.tolist() == ["007", "7"]
    assert data.user_ids.raw.tolist() == [1]
    assert data.interactions.rating.tolist() == [3, 5]
    assert data.notes == []
    signs = read_table(write("p.csv", "user,item,rating\n+1,-0,3\n-5,8,5\n"))
    assert signs.user_ids.raw.tolist() == ["+1", "-5"]
    assert signs.item_ids.raw.tolist() == ["-0", "8"]
    plain = read_table(write("q.csv", "user,item,rating\n-5,0,3\n"))
    assert (plain.user_ids.raw.tolist(), plain.item_ids.raw.tolist()) == ([-5], [0])


@pytest.mark.parametrize(("text", "line"), [
    ("user,item,rating\n1,10,4\n   \n2,11,x\n", 4),
    ("user,item,rating\n1,10,4\n\t\n2,11,x\n", 4),
    ('user,item,rating\n"1\n",10,4\n2,11,x\n', 4),
    ('user,item,rating\n1,"10\n\n",4\n\n  \n2,11,x\n', 7),
])
def test_error_line_after_blank_lines_and_quoted_line_breaks(write, text, line):
    with pytest.raises(DataError) as info:
        read_table(write("w.csv", text))
    assert str(info.value) == f"w.csv:{line}: field 'rating': expected a number, got 'x'"


def test_tab_separated_line_of_tabs_is_a_record(write):
    with pytest.raises(DataError) as info:
        read_table(write("w.tsv", "user\titem\trating\n1\t10\t4\n\t\t\n2\t11\tx\n"), sep="\t")
    assert (info.value.line, info.value.field) == (3, "rating")


def test_numpy_values_are_shown_as_python_values(tmp_path):
    path = tmp_path / "log.parquet"
    pd.DataFrame({"user": [1.0, 1.5], "item": [1, 2], "rating": [3.0, 4.0]}).to_parquet(path)
    with pytest.raises(DataError) as info:
        read_table(path)
    assert str(info.value) == "log.parquet:2: field 'user': expected an integer, got 1.5"
    pd.DataFrame({"user": [1, 2], "item": [1, 2], "rating": [True, False]}).to_parquet(path)
    with pytest.raises(DataError) as info:
        read_table(path)
    assert str(info.value) == "log.parquet:1: field 'rating': expected a number, got True"
