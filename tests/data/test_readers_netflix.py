"""read_netflix on hand-written files in the Netflix Prize layout, bad input, and the
real sample when it is available."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metarec.data.readers import read_netflix
from metarec.errors import DataError

COMBINED = """1:
1488844,3,2005-09-06
822109,5,2005-05-13
2:
1488844,4,1970-01-02
"""
MOVIE_3 = "3:\n822109,1,2004-12-31\n"
TITLES = "1,2003,Dinosaur Planet\n2,NULL,Ancient Civilizations: Rome, and Pompeii\n" \
         "3,1997,Caf\xe9 Character\n"


@pytest.fixture
def netflix(write):
    write("combined_data_1.txt", COMBINED)
    write("training_set/mv_0000003.txt", MOVIE_3)
    return write("movie_titles.txt", TITLES, "latin-1").parent


def test_counts_ratings_and_dates(netflix):
    data = read_netflix(netflix)
    assert (data.num_users, data.num_items, len(data.interactions)) == (2, 3, 4)
    assert data.interactions.rating.tolist() == [3, 5, 4, 1]
    assert data.interactions.timestamp[3] == pd.Timestamp("2004-12-31", tz="UTC").timestamp()
    assert data.interactions.timestamp[2] == 86_400
    assert data.user_ids.raw.tolist() == [1488844, 822109]
    assert data.item_ids.raw_of(data.interactions.item).tolist() == [1, 1, 2, 3]


def test_year_from_titles(netflix, decode):
    data = read_netflix(netflix)
    first, second = data.item_ids.index_of([1, 2])
    assert decode(data.items, "year", first) == 2003.0
    assert np.isnan(decode(data.items, "year", second))  # NULL


def test_one_file_and_header_in_titles(netflix, write):
    data = read_netflix(netflix / "combined_data_1.txt")
    assert (len(data.interactions), data.items.names) == (3, [])
    (netflix / "movie_titles.txt").unlink()
    write("movie-titles.csv", "MovieID,Year,Title\n" + TITLES, "latin-1")
    assert read_netflix(netflix).items.names == ["year"]


def test_duplicates_noted(netflix, write):
    write("combined_data_2.txt", "1:\n1488844,1,2006-01-01\n")
    data = read_netflix(netflix)
    assert len(data.interactions) == 4
    assert data.interactions.rating.tolist() == [5, 4, 1, 1]  # the later date wins
    assert any("1 duplicate" in note for note in data.notes)


@pytest.mark.parametrize(("name", "text", "line", "field", "words"), [
    ("combined_data_1.txt", "1488844,3,2005-09-06\n", 1, "MovieID", "start with"),
    ("combined_data_1.txt", "1:\n1488844,3,06/09/2005\n", 2, "Date", "'06/09/2005'"),
    ("combined_data_1.txt", "1:\n1488844,3,2005-02-30\n", 2, "Date", "%Y-%m-%d"),
    ("combined_data_1.txt", "1:\n1488844,6,2005-09-06\n", 2, "Rating", "[1, 5]"),
    ("combined_data_1.txt", "1:\n1488844;3;2005-09-06\n", 2, "line", "CustomerID,Rating"),
    ("combined_data_1.txt", "x:\n1488844,3,2005-09-06\n", 1, "MovieID", "integer"),
    ("combined_data_1.txt", "1:\n1,3,2005-09-06,extra\n", 2, None, "got 4"),
    ("combined_data_1.txt", "  \n", None, None, "empty"),
    ("movie_titles.txt", "1;2003;Dinosaur Planet\n", 1, None, "3 fields"),
    ("movie_titles.txt", "1,around 2003,Dinosaur Planet\n", 1, "year", "'around 2003'"),
])
def test_bad_input(netflix, write, name, text, line, field, words):
    write(name, text)
    with pytest.raises(DataError) as info:
        read_netflix(netflix)
    assert (info.value.line, info.value.field) == (line, field)
    assert name in str(info.value) and words in str(info.value)


def test_no_rating_files(tmp_path):
    with pytest.raises(DataError, match="combined_data"):
        read_netflix(tmp_path)


def test_real_netflix_sample(real_dataset):
    folder = real_dataset("netflix-sample")
    data = read_netflix(folder)
    assert len(data.interactions) == 10_000
    assert data.num_items == 17_770  # every title, rated or not
    # the combined layout holds exactly the ratings of the flat CSV sample
    flat = pd.read_csv(folder / "netflix-user-ratings-10k.csv")
    frame = data.interactions.to_frame()
    ours = pd.DataFrame({
        "UserID": data.user_ids.raw_of(frame.user), "MovieID": data.item_ids.raw_of(frame.item),
        "Rating": frame.rating.astype(int),
        "Date": pd.to_datetime(frame.timestamp, unit="s").dt.strftime("%Y-%m-%d")})
    key = ["UserID", "MovieID"]
    pd.testing.assert_frame_equal(
        ours.sort_values(key).reset_index(drop=True),
        flat[list(ours.columns)].sort_values(key).reset_index(drop=True), check_dtype=False)


def test_out_of_range_date_is_a_data_error(tmp_path, write):
    write("nf/combined_data_1.txt", "1:\n10,3,2005-01-01\n11,4,9999-12-31\n")
    with pytest.raises(DataError) as info:
        read_netflix(tmp_path / "nf")
    assert str(info.value) == ("combined_data_1.txt:3: field 'Date': expected a date in "
                               "format %Y-%m-%d from 1677-09-22 to 2262-04-11, got "
                               "'9999-12-31'")


def test_empty_date_is_a_missing_timestamp(tmp_path, write):
    write("nf/combined_data_1.txt", "1:\n10,3,2005-01-01\n12,3,\n")
    data = read_netflix(tmp_path / "nf")
    assert data.user_ids.raw.tolist() == [10, 12]
    assert data.interactions.rating.tolist() == [3, 3]
    assert data.interactions.timestamp[0] == pd.Timestamp("2005-01-01", tz="UTC").timestamp()
    assert np.isnan(data.interactions.timestamp[1])


def test_utf8_byte_order_mark_is_dropped(tmp_path, write):
    write("nf/combined_data_1.txt", b"\xef\xbb\xbf1:\n10,3,2005-01-01\n")
    data = read_netflix(tmp_path / "nf")
    assert data.item_ids.raw.tolist() == [1]
    assert data.interactions.rating.tolist() == [3]


@pytest.mark.parametrize("text", ["1:\n", "1:\n2:\n\n"])
def test_only_movie_lines_is_no_ratings(tmp_path, write, text):
    path = write("nf/combined_data_1.txt", text)
    with pytest.raises(DataError) as info:
        read_netflix(path)
    assert str(info.value) == "combined_data_1.txt: no ratings (only 'MovieID:' lines)"


def test_rating_out_of_range_shows_the_number(tmp_path, write):
    path = write("nf/combined_data_1.txt", "1:\n10,6,2005-01-01\n")
    with pytest.raises(DataError) as info:
        read_netflix(path)
    assert str(info.value) == ("combined_data_1.txt:2: field 'Rating': expected an integer "
                               "in [1, 5], got 6.0")
