"""read_ml1m on hand-written files in the real ML-1M layout, bad input, and the real
data set when it is available."""

from __future__ import annotations

import numpy as np
import pytest

from metarec.data.readers import read_ml1m
from metarec.errors import DataError

RATINGS = """1::1193::5::978300760
1::661::3::978302109
2::1193::4::978298413
3::661::2::
3::2000::1::
"""
USERS = """1::F::1::10::48067
2::M::56::16::70072
"""
MOVIES = """661::James and the Giant Peach (1996)::Animation|Children's|Musical
1193::One Flew Over the Cuckoo's Nest (1975)::Drama
2000::Lethal Weapon (1987)::Action|Comedy|Crime|Drama
3000::Princess Mononoke, The (Mononoke Hime) (1997)::Action|Adventure|Animation
2172::Strawberry and Chocolate (Fresa y chocolate) (1993)::Drama
3176::Café au lait (1993)::Comedy
"""
EXTRAS = """661::James and the Giant Peach::1996::PG::12 Apr 1996::Animation, Family::\
Henry Selick::Roald Dahl (book), Karey Kirkpatrick (screenplay), Jonathan Roberts \
(screenplay), Steve Bloom (screenplay), Roald Dahl::Simon Callow, Richard Dreyfuss::\
A boy and his peach.::https://example.org/p.jpg\r
1193::One Flew Over the Cuckoo's Nest::1975::R::19 Nov 1975::Drama::Milos Forman::\
Lawrence Hauben (screenplay), Bo Goldman (screenplay), Ken Kesey (novel)::Michael Berryman, \
Peter Brocco::Ward drama.::N/A\r
2000::Lethal Weapon::1987::N/A::06 Mar 1987::Action, Crime, Thriller::N/A::N/A::Mel Gibson, \
Danny Glover::Two cops.::N/A\r
"""


@pytest.fixture
def ml1m(write):
    write("ratings.dat", RATINGS, "latin-1")
    write("users.dat", USERS, "latin-1")
    return write("movies.dat", MOVIES, "latin-1").parent


def test_counts_ratings_and_missing_timestamps(ml1m):
    data = read_ml1m(ml1m)
    assert (data.num_users, data.num_items, len(data.interactions)) == (3, 6, 5)
    inter = data.interactions
    assert inter.rating.tolist() == [5, 3, 4, 2, 1]
    assert inter.timestamp[0] == 978300760
    assert np.isnan(inter.timestamp[3:]).all()
    assert data.rating_range == (1.0, 5.0)
    assert data.user_ids.raw_of(inter.user).tolist() == [1, 1, 2, 3, 3]
    assert data.item_ids.raw_of(inter.item).tolist() == [1193, 661, 1193, 661, 2000]
    # movies nobody rated are appended after the rated ones, in file order
    assert data.item_ids.raw.tolist() == [1193, 661, 2000, 3000, 2172, 3176]


def test_features(ml1m, decode):
    data = read_ml1m(ml1m)
    user = data.user_ids.index_of([2])[0]
    assert [decode(data.users, f, user) for f in ("gender", "age", "occupation", "zip")] == [
        "M", "56", "16", "70072"]
    item = data.item_ids.index_of([661])[0]
    assert decode(data.items, "genres", item) == ["Animation", "Children's", "Musical"]
    assert decode(data.items, "year", item) == 1996.0
    mononoke = data.item_ids.index_of([3000])[0]
    assert decode(data.items, "year", mononoke) == 1997.0
    assert decode(data.items, "genres", data.item_ids.index_of([3176])[0]) == ["Comedy"]
    assert data.items.names == ["genres", "year"]


def test_user_absent_from_users_file_keeps_rows(ml1m, decode):
    data = read_ml1m(ml1m)
    user = data.user_ids.index_of([3])[0]
    assert (data.interactions.user == user).sum() == 2
    assert decode(data.users, "gender", user) is None
    assert decode(data.users, "age", user) is None


def test_latin1_title_is_decoded(ml1m):
    (ml1m / "ratings.dat").write_text("1::3176::4::1\n", encoding="latin-1")
    assert read_ml1m(ml1m).num_items == 6  # the é did not break the read


def test_duplicate_pairs_keep_latest_with_note(ml1m):
    (ml1m / "ratings.dat").write_text("1::661::3::200\n1::661::5::100\n2::661::4::1\n")
    data = read_ml1m(ml1m)
    assert len(data.interactions) == 2
    assert data.interactions.rating.tolist() == [3, 4]
    assert any("1 duplicate" in note for note in data.notes)


def test_extras_add_fields(ml1m, write, decode):
    write("movies_extrainfos.dat", EXTRAS)
    data = read_ml1m(ml1m)
    assert data.items.names == ["genres", "year", "rate", "directors", "writers", "actors"]
    peach = data.item_ids.index_of([661])[0]
    assert decode(data.items, "genres", peach) == ["Animation", "Family"]
    assert decode(data.items, "rate", peach) == "PG"
    assert decode(data.items, "directors", peach) == ["Henry Selick"]
    assert decode(data.items, "writers", peach) == [
        "Roald Dahl", "Karey Kirkpatrick", "Jonathan Roberts", "Steve Bloom"]
    assert decode(data.items, "actors", peach) == ["Simon Callow", "Richard Dreyfuss"]
    weapon = data.item_ids.index_of([2000])[0]
    assert decode(data.items, "rate", weapon) is None
    assert decode(data.items, "directors", weapon) == []
    # a movie absent from the extras keeps its ML-1M genres
    assert decode(data.items, "genres", data.item_ids.index_of([3176])[0]) == ["Comedy"]
    assert any("absent from the extras" in note for note in data.notes)


def test_extras_passed_explicitly(ml1m, tmp_path, write, decode):
    extras = write("side/other.dat", EXTRAS)
    data = read_ml1m(ml1m, extras=extras)
    assert decode(data.items, "rate", data.item_ids.index_of([1193])[0]) == "R"


@pytest.mark.parametrize(("ratings", "line", "field", "words"), [
    ("1\t1193\t5\t978300760\n", 1, None, "expected 4 fields"),
    ("1::1193::5::1\n1::661::x::2\n", 2, "rating", "'x'"),
    ("1::1193::5::1\n\n1::661::6::2\n", 3, "rating", "[1, 5]"),
    ("1::1193::5::1\n1::661::::2\n", 2, "rating", "nothing"),
    ("1::1193::5::1::9\n", 1, None, "got 5"),
    ("1.5::1193::5::1\n", 1, "user", "integer"),
    ("1::1193::5::yesterday\n", 1, "timestamp", "number"),
])
def test_bad_ratings_name_line_and_field(ml1m, ratings, line, field, words):
    (ml1m / "ratings.dat").write_text(ratings)
    with pytest.raises(DataError) as info:
        read_ml1m(ml1m)
    err = info.value
    assert (err.line, err.field) == (line, field)
    assert "ratings.dat" in str(err) and words in str(err)


def test_empty_and_missing_files(ml1m):
    (ml1m / "ratings.dat").write_text("\n")
    with pytest.raises(DataError, match="ratings.dat: file is empty"):
        read_ml1m(ml1m)
    (ml1m / "ratings.dat").unlink()
    with pytest.raises(DataError, match="ratings.dat"):
        read_ml1m(ml1m)
    with pytest.raises(DataError, match="existing folder"):
        read_ml1m(ml1m / "nope")


def test_duplicate_user_in_users_file(ml1m):
    (ml1m / "users.dat").write_text(USERS + "1::M::25::3::12345\n")
    with pytest.raises(DataError, match=r"users.dat:3: field 'id'.*first on line 1"):
        read_ml1m(ml1m)


def test_undecodable_extras_names_encoding(ml1m, write):
    write("movies_extrainfos.dat", EXTRAS.encode() + b"3000::Mononoke \xff::1997::PG-13::x"
          b"::Anime::M::W::A::P::U\n")
    with pytest.raises(DataError, match=r"movies_extrainfos.dat:4: .*utf-8") as info:
        read_ml1m(ml1m)
    assert info.value.line == 4


@pytest.mark.slow
def test_real_ml1m(real_dataset):
    data = read_ml1m(real_dataset("ml-1m"))
    summary = data.summary()
    assert (summary["ratings"], summary["users"], summary["rated_items"]) == (
        1_000_209, 6_040, 3_706)
    assert data.num_items == 3_883
    values, counts = np.unique(data.interactions.rating, return_counts=True)
    assert dict(zip(values.tolist(), counts.tolist(), strict=True)) == {
        1: 56_174, 2: 107_557, 3: 261_197, 4: 348_971, 5: 226_310}
    assert summary["with_timestamp"] == 487_650  # rows with an empty timestamp kept
    assert set(data.users.spec("age").vocab) == {"1", "18", "25", "35", "45", "50", "56"}
    assert len(data.items.spec("genres").vocab) == 18


@pytest.mark.slow
def test_real_ml1m_with_melu_extras(real_dataset, decode):
    extras = real_dataset("melu-ml1m") / "movies_extrainfos.dat"
    data = read_ml1m(real_dataset("ml-1m"), extras=extras)
    assert data.items.spec("rate").vocab == ("G", "NC-17", "PG", "PG-13", "R", "UNRATED")
    toy_story = data.item_ids.index_of([1])[0]
    assert decode(data.items, "genres", toy_story) == ["Animation", "Adventure", "Comedy"]
    assert decode(data.items, "directors", toy_story) == ["John Lasseter"]
    assert not any("(" in w for w in data.items.spec("writers").vocab)
    assert any("2 movie(s) absent" in note for note in data.notes)


def test_timestamp_out_of_date_range_is_a_data_error(ml1m):
    (ml1m / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::99999999999999\n")
    with pytest.raises(DataError) as info:
        read_ml1m(ml1m)
    assert str(info.value) == ("ratings.dat:2: field 'timestamp': expected a date in unix "
                               "seconds from 1677-09-22 to 2262-04-11, got 99999999999999")


def test_ids_beyond_2_53_stay_exact(ml1m):
    (ml1m / "ratings.dat").write_text("9007199254740993::661::3::1\n"
                                      "9007199254740992::661::4::2\n")
    data = read_ml1m(ml1m)
    assert data.user_ids.raw[data.interactions.user].tolist() == [9007199254740993,
                                                                  9007199254740992]
    assert data.interactions.rating.tolist() == [3, 4]


def test_old_mac_line_endings_read_like_unix_ones(ml1m):
    (ml1m / "ratings.dat").write_text(RATINGS.replace("\n", "\r"), newline="")
    data = read_ml1m(ml1m)
    assert data.interactions.rating.tolist() == [5, 3, 4, 2, 1]
    (ml1m / "ratings.dat").write_text("1::1193::5::1\r1::661::x::2\r", newline="")
    with pytest.raises(DataError) as info:
        read_ml1m(ml1m)
    assert str(info.value) == "ratings.dat:2: field 'rating': expected a number in [1, 5], got 'x'"
