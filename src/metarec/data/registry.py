"""The catalogue of known data sets, and :func:`load_dataset`, the one way to get one.

A data set is named by a registered name (``movielens-1m``), by ``synthetic`` (generated,
nothing to download) or by a path to a folder or file whose format is detected from the
file names. Registered data sets live in ``<cache>/<folder>`` (see
:func:`metarec.data.download.cache_dir`) or under a ``data_dir`` the caller gives; they
get there with :func:`metarec.data.download.fetch` (``metarec datasets fetch NAME``) or
by hand. Readers are imported only when a data set of their format is read.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_type_hints

from metarec.errors import ConfigError, DataError, DownloadError

if TYPE_CHECKING:
    from metarec.data.dataset import Dataset

GROUPLENS_LICENCE = "GroupLens research use, no redistribution; see README in archive"


@dataclass(frozen=True)
class DatasetInfo:
    """One catalogue entry.

    ``url`` is the official archive (``None``: it cannot be downloaded any more, the
    files must be put in place by hand, as ``manual`` explains); ``sha256`` is the
    archive's SHA-256 (``None``: unknown, the download is reported but not verified);
    ``folder`` is the folder the files end up in, both inside the archive and under the
    cache; ``reader`` is the format key (see :data:`READERS`).
    """

    name: str
    title: str
    size: str
    source: str
    licence: str
    url: str | None
    sha256: str | None
    folder: str
    reader: str
    manual: str | None = None

    @property
    def built_in(self) -> bool:
        """True for generated data sets, which are never on disk."""
        return self.reader == "synthetic"


def _movielens(name: str, title: str, size: str, folder: str, reader: str, sha256: str,
               page: str) -> DatasetInfo:
    return DatasetInfo(
        name=name, title=title, size=size,
        source=f"https://grouplens.org/datasets/movielens/{page}/",
        licence=GROUPLENS_LICENCE,
        url=f"https://files.grouplens.org/datasets/movielens/{folder}.zip",
        sha256=sha256, folder=folder, reader=reader,
    )


# SHA-256 of the archives as GroupLens serves them. GroupLens publishes only MD5 sums
# (<url>.md5); these SHA-256 values are the ones independent projects pinned after
# checking those MD5 sums, and agree across several of them.
REGISTRY: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            name="synthetic", title="Generated ratings with known structure",
            size="150k ratings, 2,000 users (configurable)", source="built in",
            licence="MIT (generated)", url=None, sha256=None, folder="", reader="synthetic",
        ),
        _movielens("movielens-100k", "MovieLens 100K", "100k ratings, 943 users, 1,682 items",
                   "ml-100k", "ml100k",
                   "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229", "100k"),
        _movielens("movielens-1m", "MovieLens 1M", "1M ratings, 6,040 users, 3,706 items",
                   "ml-1m", "ml1m",
                   "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20", "1m"),
        _movielens("movielens-latest-small", "MovieLens latest (small)",
                   "100,836 ratings, 610 users, 9,742 items", "ml-latest-small", "ml-latest",
                   "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
                   "latest"),
        _movielens("movielens-25m", "MovieLens 25M", "25M ratings, 162,541 users, 59,047 items",
                   "ml-25m", "ml-latest",
                   "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa", "25m"),
        DatasetInfo(
            name="netflix", title="Netflix Prize",
            size="100M ratings, 480,189 users, 17,770 items",
            source="https://www.netflixprize.com/",
            licence="Netflix Prize rules; research use, no redistribution",
            url=None, sha256=None, folder="netflix", reader="netflix",
            manual="the Netflix Prize data is no longer distributed by Netflix; "
                   "if you have a copy, put combined_data_1.txt .. combined_data_4.txt "
                   "(or the training_set/ folder) and movie_titles.csv",
        ),
        DatasetInfo(
            name="book-crossing", title="Book-Crossing",
            size="1.15M ratings, 105,283 users, 340,556 books",
            source="http://www2.informatik.uni-freiburg.de/~cziegler/BX/",
            licence="Book-Crossing research use; cite Ziegler et al. (WWW 2005)",
            url=None, sha256=None, folder="book-crossing", reader="book-crossing",
            manual="the original Book-Crossing download site is gone; if you have a copy, "
                   "put BX-Book-Ratings.csv (with BX-Users.csv and BX-Books.csv)",
        ),
    )
}

READERS: dict[str, str] = {
    "ml100k": "metarec.data.readers.ml100k:read_ml100k",
    "ml1m": "metarec.data.readers.ml1m:read_ml1m",
    "ml-latest": "metarec.data.readers.ml_latest:read_ml_latest",
    "netflix": "metarec.data.readers.netflix:read_netflix",
    "book-crossing": "metarec.data.readers.book_crossing:read_book_crossing",
    "table": "metarec.data.readers.table:read_table",
}
"""Format key -> ``module:function`` of its reader, imported on first use."""

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")

FILE_FORMATS = ("table", "netflix")
"""Formats whose reader reads a single file when given one."""


def get_info(name: str) -> DatasetInfo:
    """The catalogue entry of ``name``; raises :class:`DownloadError` naming the choices."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise DownloadError(
            f"unknown data set {name!r}; known: {', '.join(REGISTRY)} "
            "(see `metarec datasets list`)"
        ) from None


def default_folder(info: DatasetInfo, data_dir: Path | None = None) -> Path:
    """Where ``info``'s files go: ``<data_dir or cache>/<folder>``."""
    from metarec.data.download import cache_dir

    root = Path(data_dir).expanduser() if data_dir is not None else cache_dir()
    return root / info.folder


def local_path(name: str, data_dir: Path | None = None) -> Path | None:
    """The folder holding registered data set ``name``, or ``None`` if not on disk.

    With ``data_dir`` both ``data_dir/<folder>`` and ``data_dir`` itself are tried (the
    latter so that ``--data-dir`` may point straight at the unzipped files); without it,
    the cache. A folder counts only if its files are of the data set's format, and
    ``data_dir`` itself only if it is this data set's folder (:func:`_is_folder_of`).
    """
    info = get_info(name)
    if info.built_in:
        return None
    folder = default_folder(info, data_dir)
    if folder.is_dir() and _detect_in_folder(folder) == info.reader:
        return folder
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        if (folder.is_dir() and _detect_in_folder(folder) == info.reader
                and _is_folder_of(folder, info)):
            return folder
    return None


def _is_folder_of(folder: Path, info: DatasetInfo) -> bool:
    """Whether ``folder``, whose files are in ``info``'s format, holds ``info`` and not
    another registered data set of that format (MovieLens latest-small and 25M share
    one): true when no other entry shares the format, or when the folder names it
    (:func:`_names`)."""
    return not _sharing_format(info) or _names(folder, info)


def _sharing_format(info: DatasetInfo) -> list[DatasetInfo]:
    """The other registered data sets whose files are in ``info``'s format."""
    return [i for i in REGISTRY.values() if i.reader == info.reader and i is not info]


def _names(folder: Path, info: DatasetInfo) -> bool:
    """Whether ``folder`` says it holds ``info``: it has the archive's name, or its
    ``README.txt`` names it as GroupLens's do ("This dataset (ml-25m) describes ...")."""
    if folder.name == info.folder:
        return True
    try:
        head = (folder / "README.txt").read_bytes()[:4096].decode("utf-8", "replace")
    except OSError:
        return False
    return f"({info.folder})" in head


def is_cached(name: str, data_dir: Path | None = None) -> bool:
    """Whether the files of registered data set ``name`` are on disk (always true for
    built-in, generated data sets)."""
    return get_info(name).built_in or local_path(name, data_dir) is not None


def detect_format(path: Path) -> str:
    """The format key of a file or folder, from its file names.

    ``u.data`` -> ``ml100k``; ``ratings.dat`` -> ``ml1m``; ``ratings.csv`` with
    ``movies.csv`` -> ``ml-latest``; ``combined_data_*.txt``, ``training_set/`` or
    ``mv_*.txt`` (a ``training_set`` folder, or one file of it) -> ``netflix``;
    ``BX-Book-Ratings.csv`` -> ``book-crossing``; any other single
    ``.csv``/``.tsv``/``.parquet`` -> ``table``. Raises :class:`DataError` otherwise.
    """
    path = Path(path)
    if not path.exists():
        raise DataError("no such file or folder", path=path)
    if path.is_file():
        fmt = _detect_in_folder(path.parent)
        if fmt is not None and fmt != "table" and _is_key_file(path.name):
            return fmt
        if path.suffix.lower() in TABLE_SUFFIXES:
            return "table"
        raise DataError(f"cannot tell the format of {path.name}: expected one of "
                        f"{', '.join(TABLE_SUFFIXES)} or a known data set file", path=path)
    fmt = _detect_in_folder(path)
    if fmt is not None:
        return fmt
    raise DataError(
        "no known data set files in this folder (looked for u.data, ratings.dat, "
        "ratings.csv + movies.csv, combined_data_*.txt, training_set/mv_*.txt, "
        "BX-Book-Ratings.csv, or one .csv/.tsv/.parquet table)", path=path)


def _is_key_file(name: str) -> bool:
    return name in {"u.data", "ratings.dat", "ratings.csv", "BX-Book-Ratings.csv"} or (
        name.startswith("combined_data_")) or _is_netflix_movie_file(name)


def _is_netflix_movie_file(name: str) -> bool:
    """A Netflix ``training_set`` rating file: ``mv_0000001.txt``."""
    return name.startswith("mv_") and name.endswith(".txt")


def _detect_in_folder(folder: Path) -> str | None:
    names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    if "u.data" in names:
        return "ml100k"
    if "ratings.dat" in names:
        return "ml1m"
    if "ratings.csv" in names and "movies.csv" in names:
        return "ml-latest"
    if (any(n.startswith("combined_data_") or _is_netflix_movie_file(n) for n in names)
            or (folder / "training_set").is_dir()):
        return "netflix"
    if "BX-Book-Ratings.csv" in names:
        return "book-crossing"
    tables = [n for n in names if Path(n).suffix.lower() in TABLE_SUFFIXES]
    if len(tables) == 1:
        return "table"
    return None


def _table_file(folder: Path) -> Path:
    (table,) = [p for p in folder.iterdir() if p.suffix.lower() in TABLE_SUFFIXES]
    return table


def read_format(fmt: str, path: Path, **options: Any) -> Dataset:
    """Read ``path`` with the reader of format ``fmt``, passing ``options`` through.

    ``table`` and ``netflix`` get a file itself (only that file is read); the other
    formats get the folder (of a file: its folder).
    """
    try:
        target = READERS[fmt]
    except KeyError:
        raise DataError(f"no reader for format {fmt!r}; known: {', '.join(READERS)}") from None
    module_name, function_name = target.split(":")
    reader = getattr(importlib.import_module(module_name), function_name)
    check_options(fmt, options, f"the {fmt} reader")
    path = Path(path)
    if fmt == "table":
        return reader(path if path.is_file() else _table_file(path), **options)
    if fmt in FILE_FORMATS and path.is_file():
        return reader(path, **options)
    return reader(path.parent if path.is_file() else path, **options)


def option_types(fmt: str) -> dict[str, Any] | None:
    """The options the reader of format ``fmt`` takes (for ``synthetic``: the fields of
    :class:`~metarec.data.synthetic.SyntheticConfig`), name -> type hint (``Any`` where
    it has none); None when it takes any keyword."""
    if fmt == "synthetic":
        from metarec.data.synthetic import SyntheticConfig

        function: Callable[..., Any] = SyntheticConfig
    else:
        module_name, function_name = READERS[fmt].split(":")
        function = getattr(importlib.import_module(module_name), function_name)
    parameters = inspect.signature(function).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    try:
        hints = get_type_hints(function)
    except (NameError, TypeError):
        hints = {}
    return {p.name: hints.get(p.name, Any) for p in parameters if p.name != "path"
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def check_options(fmt: str, options: Mapping[str, Any], what: str) -> None:
    """A ConfigError naming the ``options`` that the reader of ``fmt`` does not take, and
    those it does; ``what`` names the data set in the message."""
    known = option_types(fmt)
    unknown = [] if known is None else sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for {what}; known: "
                          f"{', '.join(known or ()) or 'none'}")


def load_dataset(name_or_path: str | Path, *, data_dir: Path | None = None,
                 **options: Any) -> Dataset:
    """Load a data set by registered name, ``synthetic``, or path.

    A registered name reads the files under ``data_dir`` (or the cache); if they are not
    there, raises :class:`DownloadError` saying how to get them. ``synthetic`` generates
    the data set from ``SyntheticConfig(**options)``. A path to a folder or file is read
    with the reader its file names call for (:func:`detect_format`). Other ``options``
    go to the reader (e.g. ``extras=`` for MovieLens 1M, ``user_col=`` for a table).
    """
    key = str(name_or_path)
    if key in REGISTRY:
        info = REGISTRY[key]
        if info.built_in:
            from metarec.data.synthetic import SyntheticConfig, generate

            check_options("synthetic", options, "the synthetic data set")
            return generate(SyntheticConfig(**options))
        folder = local_path(key, data_dir)
        if folder is None:
            raise DownloadError(not_on_disk_message(info, data_dir))
        return read_format(info.reader, folder, **options)
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise DataError(f"{key!r} is neither a known data set ({', '.join(REGISTRY)}) "
                        "nor an existing file or folder")
    return read_format(detect_format(path), path, **options)


def not_on_disk_message(info: DatasetInfo, data_dir: Path | None = None) -> str:
    """One line saying that ``info`` is not on disk and how to get it there."""
    folder = default_folder(info, data_dir)
    where = f"{folder}" + (f" and {data_dir}" if data_dir is not None else "")
    if data_dir is not None:
        given = Path(data_dir).expanduser()
        if given.is_dir() and _detect_in_folder(given) == info.reader:
            others = _sharing_format(info)
            named = [i.name for i in others if _names(given, i)]
            if named:  # by its name or README.txt
                where += f"; {given} holds {named[0]}, by its name or README.txt"
            else:  # files of the format, but nothing says which data set
                where += (f"; {given} holds files of its format, as "
                          f"{' or '.join(i.name for i in others)} would: name the folder "
                          f"{info.folder} or keep the archive's README.txt in it")
    if info.url is None:
        return (f"{info.name} is not on disk (looked in {where}): {info.manual} in {folder}, "
                "or pass --data-dir PATH to a folder that holds them")
    return (f"{info.name} is not on disk (looked in {where}): run `metarec datasets fetch "
            f"{info.name}`, or pass --data-dir PATH to a folder with the unzipped files "
            f"of {info.url}")
