"""read_ml100k on hand-written files in the real ML-100k layout, bad input, and the
real data set when it is available."""

from __future__ import annotations

import numpy as np
import pytest

from metarec.data.readers import read_ml100k
from metarec.data.readers.ml100k import ML1M_OCCUPATIONS, age_group
from metarec.errors import ConfigError, DataError

DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t5\t881250950\n"
USERS = "196|49|M|writer|55105\n186|39|F|executive|00000\n7|17|M|student|55413\n"
FLAGS_242 = "|".join(["0"] * 5 + ["1"] + ["0"] * 13)  # Comedy
FLAGS_302 = "|".join(["0"] * 6 + ["1", "0", "0", "0", "1"] + ["0"] * 5 + ["1", "0", "0"])
ITEMS = (
    f"242|Kolya (1996)|24-Jan-1997||http://us.imdb.com/M/title-exact?Kolya%20(1996)|{FLAGS_242}\n"
    f"302|L.A. Confidential (1997)|01-Jan-1997||http://x|{FLAGS_302}\n"
    f"267|unknown||||1|{'|'.join(['0'] * 18)}\n"
)


@pytest.fixture
def ml100k(write):
    write("u.data", DATA)
    write("u.user", USERS)
    return write("u.item", ITEMS, "latin-1").parent


def test_counts_and_ratings(ml100k):
    data = read_ml100k(ml100k)
    assert (data.num_users, data.num_items, len(data.interactions)) == (3, 3, 3)
    assert data.interactions.rating.tolist() == [3, 3, 5]
    assert data.interactions.timestamp.tolist() == [881250949, 891717742, 881250950]
    assert data.user_ids.raw.tolist() == [196, 186, 7]
    assert data.item_ids.raw_of(data.interactions.item).tolist() == [242, 302, 302]


def test_features(ml100k, decode):
    data = read_ml100k(ml100k)
    kolya, confidential, unknown = data.item_ids.index_of([242, 302, 267])
    assert decode(data.items, "genres", kolya) == ["Comedy"]
    assert decode(data.items, "genres", confidential) == ["Crime", "Film-Noir", "Thriller"]
    assert decode(data.items, "genres", unknown) == ["unknown"]
    assert decode(data.items, "year", kolya) == 1997.0  # from the release date
    assert np.isnan(decode(data.items, "year", unknown))
    users = [data.user_ids.index_of([u])[0] for u in (196, 186, 7)]
    assert [decode(data.users, "age", u) for u in users] == ["45", "35", "1"]
    assert decode(data.users, "occupation", users[0]) == "writer"
    assert decode(data.users, "zip", users[1]) == "00000"
    assert data.items.names == ["genres", "year"]


def test_occupations_as_ml1m_codes(write, decode):
    write("u.data", DATA + "9\t242\t4\t881250951\n")
    write("u.user", USERS + "9|30|F|Librarian|12345\n")
    folder = write("u.item", ITEMS, "latin-1").parent
    data = read_ml100k(folder, occupations="ml-1m")
    users = data.user_ids.index_of([196, 186, 7, 9])
    # writer -> 20, executive -> 7, student -> 4 (college/grad), librarian -> 1 (educator)
    assert [decode(data.users, "occupation", u) for u in users] == ["20", "7", "4", "1"]
    assert set(data.users.spec("occupation").vocab) == {"20", "7", "4", "1"}
    with pytest.raises(ConfigError, match="occupations must be"):
        read_ml100k(folder, occupations="codes")


def test_every_ml100k_occupation_has_an_ml1m_code():
    words = ("administrator artist doctor educator engineer entertainment executive "
             "healthcare homemaker lawyer librarian marketing none other programmer retired "
             "salesman scientist student technician writer").split()  # u.occupation
    assert sorted(ML1M_OCCUPATIONS) == sorted(words)
    assert all(0 <= int(code) <= 20 for code in ML1M_OCCUPATIONS.values())


def test_age_groups_match_ml1m():
    ages = np.array([1, 17, 18, 24, 25, 34, 35, 44, 45, 49, 50, 55, 56, 73, np.nan])
    assert age_group(ages)[:-1].tolist() == [1, 1, 18, 18, 25, 25, 35, 35, 45, 45, 50, 50,
                                             56, 56]
    assert np.isnan(age_group(ages)[-1])


def test_item_absent_from_u_item_kept(ml100k):
    (ml100k / "u.data").write_text(DATA + "7\t999\t4\t881250951\n")
    data = read_ml100k(ml100k)
    assert len(data.interactions) == 4
    assert data.items.values["genres"][data.item_ids.index_of([999])[0]].sum() == 0


def test_duplicates_noted(ml100k):
    (ml100k / "u.data").write_text(DATA + "196\t242\t1\t881250000\n")
    data = read_ml100k(ml100k)
    assert data.interactions.rating[0] == 3  # the later timestamp wins
    assert data.notes == ["1 duplicate (user, item) rating(s): kept the latest of each"]


@pytest.mark.parametrize(("name", "text", "line", "field", "words"), [
    ("u.data", "196 242 3 881250949\n", 1, None, "separated by '\\t'"),
    ("u.data", DATA + "1\t2\t0\t3\n", 4, "rating", "[1, 5]"),
    ("u.data", "1\t2\tgood\t3\n", 1, "rating", "'good'"),
    ("u.user", "196|49|M|writer\n", 1, None, "expected 5 fields"),
    ("u.user", "196|old|M|writer|1\n", 1, "age", "'old'"),
    ("u.item", ITEMS.replace("24-Jan-1997", "1997-01-24"), 1, "release date", "1997-01-24"),
    ("u.item", ITEMS.replace(f"|{FLAGS_242}", f"|{FLAGS_242.replace('1', '2')}"), 1,
     "Comedy", "[0, 1]"),
    ("u.data", "", None, None, "file is empty"),
])
def test_bad_input(ml100k, write, name, text, line, field, words):
    write(name, text)
    with pytest.raises(DataError) as info:
        read_ml100k(ml100k)
    assert (info.value.line, info.value.field) == (line, field)
    assert name in str(info.value) and words in str(info.value)


def test_real_ml100k(real_dataset, decode):
    data = read_ml100k(real_dataset("ml-100k"))
    summary = data.summary()
    assert (summary["ratings"], summary["users"], summary["items"]) == (100_000, 943, 1_682)
    assert summary["with_timestamp"] == 100_000
    assert len(data.items.spec("genres").vocab) == 19
    toy_story = data.item_ids.index_of([1])[0]
    assert decode(data.items, "genres", toy_story) == ["Animation", "Children's", "Comedy"]
    assert decode(data.items, "year", toy_story) == 1995.0


def test_release_date_out_of_range_is_a_data_error(ml100k, write):
    write("u.item", ITEMS.replace("24-Jan-1997", "01-Jan-9999"), "latin-1")
    with pytest.raises(DataError) as info:
        read_ml100k(ml100k)
    assert str(info.value) == ("u.item:1: field 'release date': expected a date in format "
                               "%d-%b-%Y from 1677-09-22 to 2262-04-11, got '01-Jan-9999'")


def test_utf8_byte_order_mark_is_dropped(ml100k, write):
    write("u.data", b"\xef\xbb\xbf" + DATA.encode())
    data = read_ml100k(ml100k)
    assert data.user_ids.raw.tolist() == [196, 186, 7]
    assert data.interactions.rating.tolist() == [3, 3, 5]


def test_rating_out_of_range_shows_the_number(ml100k, write):
    write("u.data", DATA + "1\t2\t0\t3\n")
    with pytest.raises(DataError) as info:
        read_ml100k(ml100k)
    assert str(info.value) == "u.data:4: field 'rating': expected a number in [1, 5], got 0"


def test_timestamp_out_of_date_range_is_a_data_error(ml100k, write):
    write("u.data", DATA + "1\t2\t3\t-99999999999999\n")
    with pytest.raises(DataError) as info:
        read_ml100k(ml100k)
    assert str(info.value) == ("u.data:4: field 'timestamp': expected a date in unix "
                               "seconds from 1677-09-22 to 2262-04-11, got -99999999999999")
