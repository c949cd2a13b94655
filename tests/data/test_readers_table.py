"""read_table on hand-written CSV and Parquet logs and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metarec.data.readers import read_table
from metarec.errors import ConfigError, DataError


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


def test_integer_ids_beyond_2_53_stay_exact(write, tmp_path):
    # float64 reads 2**53 + 1 as 2**53: the two users would merge into one
    data = read_table(write("big.csv", "user,item,rating\n9007199254740993,1,3\n"
                            "9007199254740992,1,4\n-9007199254740993,1,5\n"))
    assert data.user_ids.raw.tolist() == [9007199254740993, 9007199254740992,
                                          -9007199254740993]
    assert data.interactions.rating.tolist() == [3, 4, 5]
    path = tmp_path / "big.parquet"
    pd.DataFrame({"user": np.array([2**53 + 1, 2**53, 2**63 - 1], dtype=np.int64),
                  "item": [1, 1, 1], "rating": [3.0, 4.0, 5.0]}).to_parquet(path)
    assert read_table(path).user_ids.raw.tolist() == [2**53 + 1, 2**53, 2**63 - 1]
    pd.DataFrame({"user": np.array([5, 2**64 - 1], dtype=np.uint64), "item": [1, 1],
                  "rating": [3.0, 4.0]}).to_parquet(path)
    with pytest.raises(DataError) as info:
        read_table(path)
    assert str(info.value) == ("big.parquet:2: field 'user': expected an integer id from "
                               "-2**63 to 2**63 - 1, got 18446744073709551615")


def test_a_large_id_written_with_a_fraction_is_no_integer_id(tmp_path):
    """float64 rounds 2**53 + 1.5 to an integer: the text says otherwise."""
    from metarec.data.readers._common import parse_ids

    cells = pd.Series(["9007199254740993", "9007199254740993.5"], dtype=object)
    with pytest.raises(DataError) as info:
        parse_ids(cells, np.array([2, 3]), tmp_path / "r.csv", "user")
    assert str(info.value) == ("r.csv:3: field 'user': expected an integer id from -2**63 "
                               "to 2**63 - 1, got '9007199254740993.5'")


def test_ids_beyond_int64_in_a_csv_stay_strings(write):
    data = read_table(write("big.csv", "user,item,rating\n9223372036854775808,1,3\n"
                            "9223372036854775807,1,4\n"))
    assert data.user_ids.raw.tolist() == ["9223372036854775808", "9223372036854775807"]


@pytest.mark.parametrize(("text", "shown"), [
    ("user,item,rating,ts\n1,2,3,1000\n1,3,4,40000000000\n", "'40000000000'"),
    ("user,item,rating,ts\n1,2,3,1000\n1,3,4,-1e12\n", "'-1e12'"),
])
def test_unix_seconds_out_of_date_range_is_a_data_error(write, text, shown):
    with pytest.raises(DataError) as info:
        read_table(write("s.csv", text), time_col="ts")
    assert str(info.value) == ("s.csv:3: field 'ts': expected a date in unix seconds from "
                               f"1677-09-22 to 2262-04-11, got {shown}")


def test_parquet_unix_seconds_out_of_date_range_is_a_data_error(tmp_path):
    path = tmp_path / "log.parquet"
    pd.DataFrame({"user": [1, 2], "item": [1, 1], "rating": [3.0, 4.0],
                  "ts": np.array([0, 10**12], dtype=np.int64)}).to_parquet(path)
    with pytest.raises(DataError) as info:
        read_table(path, time_col="ts")
    assert str(info.value) == ("log.parquet:2: field 'ts': expected a date in unix seconds "
                               "from 1677-09-22 to 2262-04-11, got 1000000000000")


@pytest.mark.parametrize(("text", "line", "got"), [
    ("user,item,rating,ts\n1,2,3,4\n1,2,3", 3, 3),  # last line, no line break
    ("user,item,rating,ts\n1,2,3,4\n\n5,6\n7,8,9,10\n", 4, 2),
    ('user,item,rating,ts\n1,2,3,4\n"a,b",2,3\n', 3, 3),  # a quoted separator
    ('user,item,rating,ts\n"a\nb",2,3,4\n1,2,3\n', 4, 3),  # after a quoted line break
])
def test_short_record_is_a_data_error_not_padded(write, text, line, got):
    with pytest.raises(DataError) as info:
        read_table(write("s.csv", text), time_col="ts")
    assert str(info.value) == f"s.csv:{line}: expected 4 fields separated by ',', got {got}"


def test_empty_last_cell_is_a_missing_value_not_a_short_record(write):
    data = read_table(write("s.csv", 'user,item,rating,ts\n"a,b",2,3,\n1,2,3,5\n'),
                      time_col="ts")
    assert data.user_ids.raw.tolist() == ["a,b", "1"]
    assert np.isnan(data.interactions.timestamp[0])
    assert data.interactions.timestamp[1] == 5


def test_old_mac_line_endings_are_line_breaks(write):
    data = read_table(write("cr.csv", "user,item,rating,ts\r1,2,3,10\r2,3,4,20\r\r"),
                      time_col="ts")
    assert data.user_ids.raw.tolist() == [1, 2]
    assert data.interactions.rating.tolist() == [3, 4]
    assert data.interactions.timestamp.tolist() == [10, 20]
    with pytest.raises(DataError) as info:
        read_table(write("cr.csv", "user,item,rating\r1,2,3\r\n2,3,x\r"))
    assert str(info.value) == "cr.csv:3: field 'rating': expected a number, got 'x'"
    with pytest.raises(DataError) as info:
        read_table(write("cr.csv", b"user,item,rating\r1,2,3\r2,\xff,4\r"))
    assert info.value.line == 3


def test_columns_found_are_cut_short_in_the_message(write):
    header = ",".join(f"column_{i}" for i in range(5000))
    with pytest.raises(DataError) as info:
        read_table(write("wide.csv", header + "\n" + ",".join(["1"] * 5000) + "\n"))
    assert str(info.value) == (
        "wide.csv:1: missing column(s) ['user', 'item', 'rating']; found ['column_0', "
        "'column_1', 'column_2', 'column_3', 'column_4', 'column_5', 'column_6', "
        "'column_7', ... (5000 in all)]")
    with pytest.raises(DataError) as info:
        read_table(write("long.csv", "x" * 1000 + "\n1\n"))
    assert str(info.value) == ("long.csv:1: missing column(s) ['user', 'item', 'rating']; "
                               f"found ['{'x' * 37}...']")


def test_binary_parquet_ids_are_utf8_text(tmp_path):
    path = tmp_path / "bin.parquet"
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"user": pa.array([b"caf\xc3\xa9", b"12"]), "item": [3, 4],
                             "rating": [3.0, 4.0]}), path)
    assert read_table(path).user_ids.raw.tolist() == ["café", "12"]
    pq.write_table(pa.table({"user": pa.array([b"a", b"\xff"]), "item": [3, 4],
                             "rating": [3.0, 4.0]}), path)
    with pytest.raises(DataError) as info:
        read_table(path)
    assert str(info.value) == "bin.parquet:2: field 'user': expected UTF-8 text, got b'\\xff'"
    pq.write_table(pa.table({"user": [1, 2], "item": pa.array([b"a", b"\xfe"])
                             .dictionary_encode(), "rating": [3.0, 4.0]}), path)
    with pytest.raises(DataError) as info:
        read_table(path)
    assert str(info.value) == "bin.parquet:2: field 'item': expected UTF-8 text, got b'\\xfe'"


@pytest.mark.parametrize("sep", [";;", "", '"', "\n"])
def test_separator_of_other_than_one_character_is_a_config_error(write, sep):
    with pytest.raises(ConfigError) as info:
        read_table(write("log.csv", "user,item,rating\n1,2,3\n"), sep=sep)
    assert str(info.value) == ("sep must be one character other than a quote or a line "
                               f"break, got {sep!r}")


@pytest.mark.parametrize(("text", "line"), [
    ('user,item,rating\n1,2,3\n2,"unterminated,3\n', 3),
    ('user,item,rating\n\n1,2,3\n"a\nb",1,2\n2,"unterminated,3\n4,5,6\n', 6),
])
def test_unterminated_quote_names_its_line(write, text, line):
    with pytest.raises(DataError) as info:
        read_table(write("q.csv", text))
    assert str(info.value) == (f"q.csv:{line}: a quoted cell opened on this line is never "
                               "closed (expected a closing '\"')")
