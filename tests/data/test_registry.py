"""The catalogue, format detection and load_dataset's dispatch (readers replaced by fakes)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

from metarec.data import registry
from metarec.data.dataset import Dataset, build_dataset
from metarec.errors import ConfigError, DataError, DownloadError


def touch(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("x\n")
    return folder


def tiny_dataset(name: str) -> Dataset:
    ratings = pd.DataFrame({"user": [1, 1, 2], "item": [10, 20, 10], "rating": [4.0, 3.0, 5.0]})
    return build_dataset(name, ratings)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("METAREC_DATA", str(root))
    return root


@pytest.fixture
def fake_readers(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Path, dict]]:
    """Replace every reader module by a fake that records (function, path, options)."""
    calls: list[tuple[str, Path, dict]] = []
    for target in registry.READERS.values():
        module_name, function_name = target.split(":")
        module = types.ModuleType(module_name)

        def reader(path, _name=function_name, **options):
            calls.append((_name, Path(path), options))
            return tiny_dataset(_name)

        setattr(module, function_name, reader)
        monkeypatch.setitem(sys.modules, module_name, module)
    return calls


def test_catalogue_names():
    assert list(registry.REGISTRY) == [
        "synthetic", "movielens-100k", "movielens-1m", "movielens-latest-small",
        "movielens-25m", "netflix", "book-crossing"]
    for info in registry.REGISTRY.values():
        assert info.title and info.size and info.source and info.licence
        assert info.built_in == (info.name == "synthetic")
        if info.url is None and not info.built_in:
            assert info.manual
    assert registry.get_info("movielens-1m").folder == "ml-1m"
    assert registry.get_info("netflix").url is None
    assert registry.get_info("book-crossing").url is None


@pytest.mark.parametrize(("names", "expected"), [
    (["u.data", "u.item"], "ml100k"),
    (["ratings.dat", "users.dat"], "ml1m"),
    (["ratings.csv", "movies.csv", "tags.csv"], "ml-latest"),
    (["combined_data_1.txt", "movie_titles.csv"], "netflix"),
    (["BX-Book-Ratings.csv", "BX-Users.csv", "BX-Books.csv"], "book-crossing"),
    (["ratings.csv"], "table"),
    (["events.parquet", "README"], "table"),
])
def test_detect_format_of_folders(tmp_path: Path, names: list[str], expected: str):
    assert registry.detect_format(touch(tmp_path / "d", *names)) == expected


def test_detect_format_of_files_and_netflix_training_set(tmp_path: Path):
    ml = touch(tmp_path / "ml", "u.data", "u.item")
    assert registry.detect_format(ml / "u.data") == "ml100k"
    assert registry.detect_format(touch(tmp_path / "t", "a.csv", "b.csv") / "a.csv") == "table"
    (tmp_path / "nf" / "training_set").mkdir(parents=True)
    assert registry.detect_format(tmp_path / "nf") == "netflix"


def test_detect_format_refuses_unknown(tmp_path: Path):
    with pytest.raises(DataError, match="no known data set files"):
        registry.detect_format(touch(tmp_path / "d", "a.csv", "b.csv"))
    with pytest.raises(DataError, match="cannot tell the format"):
        registry.detect_format(touch(tmp_path / "e", "notes.txt") / "notes.txt")


def test_is_cached_looks_in_cache_then_data_dir(cache: Path, tmp_path: Path):
    assert registry.is_cached("synthetic")
    assert not registry.is_cached("movielens-1m")
    touch(cache / "ml-1m", "ratings.dat")
    assert registry.is_cached("movielens-1m")
    assert registry.local_path("movielens-1m") == cache / "ml-1m"
    # --data-dir may be the parent of ml-1m/ or the folder of files itself
    touch(tmp_path / "mine" / "ml-100k", "u.data")
    assert registry.local_path("movielens-100k", tmp_path / "mine") == tmp_path / "mine" / "ml-100k"
    direct = touch(tmp_path / "direct", "u.data")
    assert registry.local_path("movielens-100k", direct) == direct
    # a folder with the wrong files does not count
    touch(cache / "ml-100k", "ratings.dat")
    assert not registry.is_cached("movielens-100k")


def test_load_registered_name_reads_its_folder(cache: Path, fake_readers):
    folder = touch(cache / "ml-1m", "ratings.dat")
    dataset = registry.load_dataset("movielens-1m", extras=["imdb"])
    assert dataset.name == "read_ml1m"
    assert fake_readers == [("read_ml1m", folder, {"extras": ["imdb"]})]


def test_load_registered_name_from_data_dir(tmp_path: Path, cache: Path, fake_readers):
    folder = touch(tmp_path / "files", "BX-Book-Ratings.csv")
    registry.load_dataset("book-crossing", data_dir=folder, keep_implicit=True)
    assert fake_readers == [("read_book_crossing", folder, {"keep_implicit": True})]


def test_missing_registered_name_says_how_to_get_it(cache: Path):
    with pytest.raises(DownloadError) as caught:
        registry.load_dataset("movielens-1m")
    message = str(caught.value)
    assert "metarec datasets fetch movielens-1m" in message and "--data-dir" in message
    assert str(cache / "ml-1m") in message and "\n" not in message
    with pytest.raises(DownloadError, match="combined_data_1.txt"):
        registry.load_dataset("netflix")


@pytest.mark.parametrize(("names", "reader", "relative"), [
    (["u.data"], "read_ml100k", "."),
    (["ratings.dat"], "read_ml1m", "."),
    (["ratings.csv", "movies.csv"], "read_ml_latest", "."),
    (["combined_data_1.txt"], "read_netflix", "."),
    (["BX-Book-Ratings.csv"], "read_book_crossing", "."),
    (["clicks.csv"], "read_table", "clicks.csv"),
])
def test_load_path_dispatches_on_file_names(tmp_path: Path, fake_readers, names, reader,
                                            relative):
    folder = touch(tmp_path / "d", *names)
    registry.load_dataset(str(folder))
    assert fake_readers == [(reader, folder / relative, {})]


def test_load_table_file_passes_options(tmp_path: Path, fake_readers):
    table = touch(tmp_path, "log.csv") / "log.csv"
    registry.load_dataset(table, user_col="uid", sep=";")
    assert fake_readers == [("read_table", table, {"user_col": "uid", "sep": ";"})]


def test_load_synthetic_builds_the_config(monkeypatch: pytest.MonkeyPatch):
    seen = {}
    module = types.ModuleType("metarec.data.synthetic")

    class SyntheticConfig:
        def __init__(self, **options):
            seen["options"] = options

    module.SyntheticConfig = SyntheticConfig
    module.generate = lambda config: tiny_dataset("synthetic")
    monkeypatch.setitem(sys.modules, "metarec.data.synthetic", module)
    assert registry.load_dataset("synthetic", num_users=50, seed=3).name == "synthetic"
    assert seen["options"] == {"num_users": 50, "seed": 3}


def test_unknown_name_is_a_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="neither a known data set"):
        registry.load_dataset("movielens-2m")


def test_data_dir_of_another_data_set_of_the_same_format_does_not_count(tmp_path: Path):
    small = touch(tmp_path / "ml-latest-small", "ratings.csv", "movies.csv")
    (small / "README.txt").write_text("Summary\n=======\n\nThis dataset (ml-latest-small) "
                                      "describes 5-star rating ...\n")
    assert registry.local_path("movielens-latest-small", small) == small
    assert registry.local_path("movielens-25m", small) is None
    assert not registry.is_cached("movielens-25m", small)
    # a renamed folder is told apart by its README, and counts when it has none
    renamed = touch(tmp_path / "mine", "ratings.csv", "movies.csv")
    (renamed / "README.txt").write_text("This dataset (ml-25m) describes ...\n")
    assert registry.local_path("movielens-25m", renamed) == renamed
    assert registry.local_path("movielens-latest-small", renamed) is None
    with pytest.raises(DownloadError, match=re.escape(
            f"; {renamed} holds movielens-25m, by its name or README.txt)")):
        registry.load_dataset("movielens-latest-small", data_dir=renamed)
    (renamed / "README.txt").unlink()
    assert registry.local_path("movielens-25m", renamed) is None
    # ... and the error says why such a folder does not count
    with pytest.raises(DownloadError, match=re.escape(
            f"; {renamed} holds files of its format, as movielens-latest-small would: name "
            "the folder ml-25m or keep the archive's README.txt in it)")):
        registry.load_dataset("movielens-25m", data_dir=renamed)
    assert registry.local_path("movielens-25m", touch(tmp_path / "ml-25m", "ratings.csv",
                                                      "movies.csv")) == tmp_path / "ml-25m"


def test_load_one_netflix_file_reads_that_file_only(tmp_path: Path):
    folder = tmp_path / "nf2"
    folder.mkdir()
    (folder / "combined_data_1.txt").write_text("1:\n10,3,2005-01-01\n")
    (folder / "combined_data_2.txt").write_text("2:\n11,4,2005-01-02\n")
    data = registry.load_dataset(folder / "combined_data_1.txt")
    assert data.item_ids.raw.tolist() == [1]
    assert data.user_ids.raw.tolist() == [10]
    assert len(registry.load_dataset(folder).interactions) == 2


def test_unknown_reader_option_is_a_config_error(tmp_path: Path):
    table = tmp_path / "log.csv"
    table.write_text("user,item,rating\n1,2,3\n")
    with pytest.raises(ConfigError) as info:
        registry.load_dataset(table, time_column="t")
    assert str(info.value) == (
        "unknown option(s) ['time_column'] for the table reader; known: user_col, item_col, "
        "rating_col, time_col, sep, name")
    with pytest.raises(ConfigError, match=r"\['users'\] for the synthetic data set"):
        registry.load_dataset("synthetic", users=5)


def test_netflix_training_set_file_and_folder_are_netflix(tmp_path: Path):
    training = tmp_path / "nf" / "training_set"
    training.mkdir(parents=True)
    (training / "mv_0000001.txt").write_text("1:\n10,3,2005-01-01\n11,4,2005-01-02\n")
    (training / "mv_0000002.txt").write_text("2:\n10,5,2005-01-03\n")
    assert registry.detect_format(training / "mv_0000001.txt") == "netflix"
    assert registry.detect_format(training) == "netflix"
    one = registry.load_dataset(training / "mv_0000001.txt")
    assert (one.item_ids.raw.tolist(), one.user_ids.raw.tolist()) == ([1], [10, 11])
    both = registry.load_dataset(training)
    assert both.item_ids.raw.tolist() == [1, 2]
    assert both.interactions.rating.tolist() == [3, 4, 5]


def test_table_separator_of_two_characters_is_a_config_error(tmp_path: Path):
    table = tmp_path / "log.csv"
    table.write_text("user;item;rating\n1;2;3\n")
    with pytest.raises(ConfigError) as info:
        registry.load_dataset(table, sep=";;")
    assert str(info.value) == ("sep must be one character other than a quote or a line "
                               "break, got ';;'")
