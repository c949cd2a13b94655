"""Fuzz every reader with files of plausible tokens, separators and junk: each read
either succeeds or raises DataError, never another exception."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metarec.data.dataset import Dataset
from metarec.data.readers import (
    read_book_crossing,
    read_ml1m,
    read_ml100k,
    read_ml_latest,
    read_netflix,
    read_table,
)
from metarec.errors import DataError

TOKENS = ["1", "2", "5", "0", "11", "-3", "2.5", "1e400", "nan", "inf", "", " ", "NULL",
          "N/A", "abc", "Caf\u00e9", "\x00", '"', "\\", "(1995)", "Toy Story (1995)",
          "2005-09-06", "2005-13-45", "01-Jan-1995", "Jan", "Drama|Comedy", "(no genres listed)",
          "Name (screenplay)", "1:", "99999999999999999999", "\r", "\x1f", "\ufeff", "0x10"]
JUNK = st.one_of(st.sampled_from(TOKENS), st.text(max_size=4))

# per reader: file name -> (valid lines, separators to mix in)
LAYOUTS: dict[str, dict[str, tuple[list[str], list[str]]]] = {
    "ml1m": {
        "ratings.dat": (["1::10::5::978300760", "2::10::3::", "1::20::4::1"], ["::", ":"]),
        "users.dat": (["1::F::1::10::48067", "2::M::56::16::70072"], ["::"]),
        "movies.dat": (["10::Toy Story (1995)::Animation|Comedy", "20::Heat (1995)::Action"],
                       ["::", "|"]),
        "movies_extrainfos.dat": (["10::Toy Story::1995::G::x::Animation, Comedy::J::"
                                   "W (screenplay), V::A, B::plot::url"], ["::", ", "]),
    },
    "ml100k": {
        "u.data": (["1\t10\t5\t881250949", "2\t10\t3\t881250950"], ["\t", " "]),
        "u.user": (["1|24|M|technician|85711", "2|53|F|other|94043"], ["|"]),
        "u.item": (["10|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join("0" * 18) + "|1",
                    "20|Heat (1995)|||x|1|" + "|".join("0" * 18)], ["|"]),
    },
    "ml_latest": {
        "ratings.csv": (["userId,movieId,rating,timestamp", "1,10,2.5,1260759144",
                         "2,10,4.0,"], [",", ";"]),
        "movies.csv": (["movieId,title,genres", '10,"Toy Story, The (1995)",Comedy|Drama',
                        "20,Heat,(no genres listed)"], [",", "|"]),
    },
    "netflix": {
        "combined_data_1.txt": (["1:", "1488844,3,2005-09-06", "2:", "822109,5,2005-05-13"],
                                [",", ":"]),
        "movie_titles.txt": (["1,2003,Dinosaur Planet", "2,NULL,Rome, and Pompeii"], [","]),
    },
    "book_crossing": {
        "BX-Book-Ratings.csv": (['"User-ID";"ISBN";"Book-Rating"', '"1";"034545104X";"0"',
                                 '"2";"0155061224";"5"'], [";", ","]),
        "BX-Users.csv": (['"User-ID";"Location";"Age"', '"1";"tyler, texas, usa";NULL',
                          '"2";"seattle, usa";"18"'], [";", ", "]),
        "BX-Books.csv": (['"ISBN";"Book-Title";"Book-Author";"Year-Of-Publication";'
                          '"Publisher"', '"034545104X";"T";"M. J. Rose";"2002";"B &amp; C"',
                          '"0155061224";"R\\";"J";"0";"H"'], [";"]),
    },
    "table": {
        "log.csv": (["user,item,rating,time", "u1,i1,4,100", "u2,i1,2.5,2020-01-01"],
                    [",", ";", "\t", "|"]),
    },
}
READERS: dict[str, Callable[[Path], Dataset]] = {
    "ml1m": read_ml1m,
    "ml100k": read_ml100k,
    "ml_latest": read_ml_latest,
    "netflix": read_netflix,
    "book_crossing": lambda folder: read_book_crossing(folder, keep_implicit=True),
    "table": lambda folder: read_table(folder / "log.csv", time_col="time"),
}


@st.composite
def folders(draw: st.DrawFn, layout: dict[str, tuple[list[str], list[str]]]
            ) -> dict[str, bytes]:
    """File contents for one reader: valid files, with one or more of them fuzzed."""
    fuzzed = draw(st.sets(st.sampled_from(sorted(layout)), min_size=1))
    files = {}
    for name, (valid, seps) in layout.items():
        if name not in fuzzed:
            files[name] = "\n".join(valid).encode()
            continue
        junk_line = st.lists(st.one_of(JUNK, st.sampled_from(seps)), max_size=10).map("".join)
        lines = draw(st.lists(st.one_of(st.sampled_from(valid), junk_line), max_size=8))
        if draw(st.booleans()):  # mostly keep the first line (a header, for some formats)
            lines.insert(0, valid[0])
        text = "\n".join(lines) + draw(st.sampled_from(["", "\n", "\r\n"]))
        data = text.encode(draw(st.sampled_from(["utf-8", "latin-1"])), "replace")
        if draw(st.booleans()) and draw(st.booleans()):
            data = draw(st.binary(max_size=40)) + data
        files[name] = data
    return files


@pytest.mark.parametrize("reader", sorted(READERS))
def test_reader_parses_or_raises_data_error(reader):
    @settings(max_examples=50, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(files=folders(LAYOUTS[reader]))
    def check(files: dict[str, bytes]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for name, data in files.items():
                (folder / name).write_bytes(data)
            try:
                dataset = READERS[reader](folder)
            except DataError:
                return
            assert len(dataset.interactions) <= sum(d.count(b"\n") + 1 for d in files.values())

    check()
