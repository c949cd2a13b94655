"""One reader per file format; each returns a :class:`~metarec.data.Dataset` built by
:func:`~metarec.data.build_dataset` and raises :class:`~metarec.errors.DataError` on a
malformed file."""

from metarec.data.readers.book_crossing import read_book_crossing
from metarec.data.readers.ml1m import read_ml1m
from metarec.data.readers.ml100k import read_ml100k
from metarec.data.readers.ml_latest import read_ml_latest
from metarec.data.readers.netflix import read_netflix
from metarec.data.readers.table import read_table

__all__ = ["read_book_crossing", "read_ml100k", "read_ml1m", "read_ml_latest", "read_netflix",
           "read_table"]
