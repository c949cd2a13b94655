"""read_ml_latest on hand-written files in the real MovieLens latest layout, bad input,
and the real latest-small data set when it is available."""

from __future__ import annotations

import numpy as np
import pytest

from metarec.data.readers import read_ml_latest
from metarec.errors import DataError

RATINGS = """userId,movieId,rating,timestamp
1,31,2.5,1260759144
1,1029,3.0,1260759179
2,31,0.5,1260759185
2,10,4.5,
"""
MOVIES = """movieId,title,genres
10,GoldenEye (1995),Action|Adventure|Thriller
31,Dangerous Minds (1995),Drama
1029,"American President, The (1995)",Comedy|Drama|Romance
149532,Marco Polo: One Hundred Eyes,(no genres listed)
"""


@pytest.fixture
def latest(write):
    write("ratings.csv", RATINGS)
    return write("movies.csv", MOVIES).parent


def test_counts_and_half_stars(latest):
    data = read_ml_latest(latest)
    assert (data.num_users, data.num_items, len(data.interactions)) == (2, 4, 4)
    assert data.interactions.rating.tolist() == [2.5, 3.0, 0.5, 4.5]
    assert data.rating_range == (0.5, 5.0)
    assert np.isnan(data.interactions.timestamp[3])
    assert data.item_ids.raw.tolist() == [31, 1029, 10, 149532]


def test_features(latest, decode):
    data = read_ml_latest(latest)
    president, marco = data.item_ids.index_of([1029, 149532])
    assert decode(data.items, "genres", president) == ["Comedy", "Drama", "Romance"]
    assert decode(data.items, "year", president) == 1995.0
    assert decode(data.items, "genres", marco) == []
    assert np.isnan(decode(data.items, "year", marco))
    assert "(no genres listed)" not in data.items.spec("genres").vocab


def test_duplicates_and_unknown_movie(latest):
    (latest / "ratings.csv").write_text(RATINGS + "1,31,5.0,1260760000\n2,777,3.5,1\n")
    data = read_ml_latest(latest)
    assert len(data.interactions) == 5
    frame = data.interactions.to_frame()
    pair = (frame.user == data.user_ids.index_of([1])[0]) & (
        frame.item == data.item_ids.index_of([31])[0])
    assert frame.rating[pair].tolist() == [5.0]
    assert "1 duplicate (user, item) rating(s): kept the latest of each" in data.notes
    assert 777 in data.item_ids


@pytest.mark.parametrize(("name", "text", "line", "field", "words"), [
    ("ratings.csv", RATINGS.replace(",", ";"), 1, None, "missing column(s)"),
    ("ratings.csv", "userId,movieId,timestamp\n1,2,3\n", 1, None, "['rating']"),
    ("ratings.csv", "userId,movieId,rating\n1,2,3,4\n5,6,7,8\n", 2, None, "got more"),
    ("ratings.csv", RATINGS + "3,10,5.5,1\n", 6, "rating", "[0.5, 5]"),
    ("ratings.csv", RATINGS + "3,10,,1\n", 6, "rating", "got nothing"),
    ("ratings.csv", RATINGS + "3,10,4,1,9\n", 6, None, "expected 4 fields separated by ',', got 5"),
    ("ratings.csv", RATINGS + "3,x10,4,1\n", 6, "movieId", "'x10'"),
    ("movies.csv", MOVIES + "10,Again (2000),Drama\n", 6, "movieId", "first on line 2"),
    ("ratings.csv", b"userId,movieId,rating,timestamp\n1,2,3,4\n\xe9,2,3,4\n", 3, None,
     "as utf-8"),
    ("movies.csv", "", None, None, "empty"),
])
def test_bad_input(latest, write, name, text, line, field, words):
    write(name, text)
    with pytest.raises(DataError) as info:
        read_ml_latest(latest)
    assert (info.value.line, info.value.field) == (line, field)
    assert name in str(info.value) and words in str(info.value)


def test_real_ml_latest_small(real_dataset):
    data = read_ml_latest(real_dataset("ml-latest-small"))
    summary = data.summary()
    assert (summary["ratings"], summary["users"], summary["rated_items"]) == (
        100_004, 671, 9_066)
    assert set(np.unique(data.interactions.rating).tolist()) == {
        0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0}
    assert "IMAX" in data.items.spec("genres").vocab


def test_error_line_after_a_title_with_a_line_break(latest, write):
    write("movies.csv", MOVIES.replace("The (1995)", "The\n(1995)") + "x,Bad,Drama\n")
    with pytest.raises(DataError) as info:
        read_ml_latest(latest)
    assert str(info.value) == "movies.csv:7: field 'movieId': expected an integer, got 'x'"


def test_header_only_ratings_is_no_ratings(latest, write):
    write("ratings.csv", "userId,movieId,rating,timestamp\n")
    with pytest.raises(DataError) as info:
        read_ml_latest(latest)
    assert str(info.value) == "ratings.csv: no ratings (only the header)"


def test_short_last_record_is_a_data_error_not_padded(latest, write):
    write("ratings.csv", RATINGS + "1,2,3")  # a truncated copy: no timestamp, no line break
    with pytest.raises(DataError) as info:
        read_ml_latest(latest)
    assert str(info.value) == "ratings.csv:6: expected 4 fields separated by ',', got 3"


def test_timestamp_out_of_date_range_is_a_data_error(latest, write):
    write("ratings.csv", RATINGS + "3,10,4.0,1e12\n")
    with pytest.raises(DataError) as info:
        read_ml_latest(latest)
    assert str(info.value) == ("ratings.csv:6: field 'timestamp': expected a date in unix "
                               "seconds from 1677-09-22 to 2262-04-11, got '1e12'")


def test_old_mac_line_endings_read_like_unix_ones(latest, write):
    write("ratings.csv", RATINGS.replace("\n", "\r"))
    write("movies.csv", MOVIES.replace("\n", "\r"))
    data = read_ml_latest(latest)
    assert data.interactions.rating.tolist() == [2.5, 3.0, 0.5, 4.5]
    assert data.item_ids.raw.tolist() == [31, 1029, 10, 149532]
    assert data.interactions.timestamp[:3].tolist() == [1260759144, 1260759179, 1260759185]


def test_columns_found_are_cut_short_in_the_message(latest, write):
    write("ratings.csv", ";".join(f"c{i}" for i in range(20)) + "\n")
    with pytest.raises(DataError) as info:
        read_ml_latest(latest)
    assert str(info.value) == (
        "ratings.csv:1: missing column(s) ['userId', 'movieId', 'rating', 'timestamp']; "
        "found ['c0;c1;c2;c3;c4;c5;c6;c7;c8;c9;c10;c11...'] (separator used: ',')")
