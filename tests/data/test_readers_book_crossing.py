"""read_book_crossing on hand-written files in the real Book-Crossing layout and bad
input (the data set itself is not in the shared folder)."""

from __future__ import annotations

import numpy as np
import pytest

from metarec.data.readers import read_book_crossing
from metarec.errors import DataError

RATINGS = '''"User-ID";"ISBN";"Book-Rating"
"276725";"034545104X";"0"
"276726";"0155061224";"5"
"276727";"0446520802";"0"
"276729";"052165615X";"3"
"276726";"034545104X";"10"
'''
USERS = '''"User-ID";"Location";"Age"
"276725";"tyler, texas, usa";NULL
"276726";"seattle, washington, usa";"18"
"276729";"rijeka, n/a, croatia";"16"
'''
BOOKS = '''"ISBN";"Book-Title";"Book-Author";"Year-Of-Publication";"Publisher";"Image-URL-S"
"034545104X";"Flesh Tones: A Novel";"M. J. Rose";"2002";"Ballantine Books";"http://s"
"0155061224";"Rites of Passage";"Judith Rae";"0";"Heinle";"http://s"
"052165615X";"Help!: Level 1";"Philip Prowse";"1999";"Cambridge &amp; Co";"http://s"
"0789466953";"DK Readers: X-Men (Level 4)\\";James Buckley";"2000";"DK Publishing Inc";"s"
"078946697X";"DK Readers: Began (Level 4)\\";"Michael Teitelbaum";"2000";"DK Publishing Inc";"s"
'''


@pytest.fixture
def bx(write):
    write("BX-Book-Ratings.csv", RATINGS, "latin-1")
    write("BX-Users.csv", USERS, "latin-1")
    return write("BX-Books.csv", BOOKS, "latin-1").parent


def test_explicit_only_by_default(bx):
    data = read_book_crossing(bx)
    assert len(data.interactions) == 3
    assert data.interactions.rating.tolist() == [5, 3, 10]
    assert data.rating_range == (1.0, 10.0)
    assert data.notes == ["excluded 2 implicit rating(s) (Book-Rating 0); "
                          "pass keep_implicit=True to keep them"]
    assert data.item_ids.raw_of(data.interactions.item).tolist() == [
        "0155061224", "052165615X", "034545104X"]
    assert np.isnan(data.interactions.timestamp).all()


def test_keep_implicit(bx):
    data = read_book_crossing(bx, keep_implicit=True)
    assert data.interactions.rating.tolist() == [0, 5, 0, 3, 10]
    assert data.rating_range == (0.0, 10.0)
    assert data.notes == []
    assert 276727 in data.user_ids  # rated only implicitly, absent from BX-Users


def test_features(bx, decode):
    data = read_book_crossing(bx)
    tyler, seattle = data.user_ids.index_of([276725, 276726])
    assert np.isnan(decode(data.users, "age", tyler))
    assert decode(data.users, "age", seattle) == 18.0
    assert decode(data.users, "country", tyler) == "usa"
    assert data.users.spec("country").vocab == ("croatia", "usa")
    help_, rites, xmen = data.item_ids.index_of(["052165615X", "0155061224", "0789466953"])
    assert decode(data.items, "publisher", help_) == "Cambridge & Co"
    assert decode(data.items, "author", help_) == "Philip Prowse"
    assert decode(data.items, "year", help_) == 1999.0
    assert np.isnan(decode(data.items, "year", rites))  # 0 means unknown
    # the two known broken rows of BX-Books: a backslash before the closing quote
    assert decode(data.items, "author", xmen) == "James Buckley"
    assert decode(data.items, "year", xmen) == 2000.0
    began = data.item_ids.index_of(["078946697X"])[0]
    assert decode(data.items, "publisher", began) == "DK Publishing Inc"


@pytest.mark.parametrize(("name", "text", "line", "field", "words"), [
    ("BX-Book-Ratings.csv", RATINGS.replace(";", ","), 1, None, "missing column(s)"),
    ("BX-Book-Ratings.csv", RATINGS + '"1";"x";"11"\n', 7, "Book-Rating", "[0, 10]"),
    ("BX-Book-Ratings.csv", RATINGS + '"1";"x";"7.5"\n', 7, "Book-Rating", "integer"),
    ("BX-Book-Ratings.csv", RATINGS + '"1";"";"7"\n', 7, "ISBN", "non-empty id"),
    ("BX-Users.csv", USERS + '"5";"x";"old"\n', 5, "Age", "'old'"),
    ("BX-Books.csv", BOOKS.replace('"1999"', '"ninety"'), 4, "Year-Of-Publication",
     "'ninety'"),
    ("BX-Book-Ratings.csv", '"User-ID";"ISBN";"Book-Rating"\n', None, None,
     "no ratings (only the header)"),
])
def test_bad_input(bx, write, name, text, line, field, words):
    write(name, text, "latin-1")
    with pytest.raises(DataError) as info:
        read_book_crossing(bx)
    assert (info.value.line, info.value.field) == (line, field)
    assert name in str(info.value) and words in str(info.value)


def test_duplicates_noted(bx, write):
    write("BX-Book-Ratings.csv", RATINGS + '"276729";"052165615X";"9"\n')
    data = read_book_crossing(bx)
    assert data.interactions.rating.tolist() == [5, 10, 9]
    assert "1 duplicate (user, item) rating(s): kept the latest of each" in data.notes


def test_empty_ratings_file(bx, write):
    write("BX-Book-Ratings.csv", "")
    with pytest.raises(DataError, match="BX-Book-Ratings.csv: file is empty"):
        read_book_crossing(bx)


def test_only_implicit_ratings_is_no_ratings(bx, write):
    write("BX-Book-Ratings.csv", '"User-ID";"ISBN";"Book-Rating"\n"1";"034545104X";"0"\n',
          "latin-1")
    with pytest.raises(DataError) as info:
        read_book_crossing(bx)
    assert str(info.value) == ("BX-Book-Ratings.csv: no ratings (every rating is implicit "
                               "(Book-Rating 0); pass keep_implicit=True to keep them)")
    assert len(read_book_crossing(bx, keep_implicit=True).interactions) == 1


def test_utf8_byte_order_mark_is_dropped(bx, write):
    write("BX-Book-Ratings.csv", b"\xef\xbb\xbf" + RATINGS.encode("latin-1"))
    data = read_book_crossing(bx)
    assert data.interactions.rating.tolist() == [5, 3, 10]


def test_short_record_is_a_data_error_not_padded(bx, write):
    write("BX-Books.csv", BOOKS + '"0002005018";"Clara Callan";"Richard Bruce Wright"\n',
          "latin-1")
    with pytest.raises(DataError) as info:
        read_book_crossing(bx)
    assert str(info.value) == "BX-Books.csv:7: expected 6 fields separated by ';', got 3"
