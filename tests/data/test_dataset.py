"""IdMap, FeatureTable.encode and build_dataset on hand-made frames."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch

from metarec.data.dataset import MISSING, FeatureTable, IdMap, build_dataset
from metarec.errors import DataError


# ---- IdMap ----------------------------------------------------------------------------
def test_idmap_round_trip_keeps_first_seen_order() -> None:
    ids = IdMap(["u7", "u3", "u9"])
    assert len(ids) == 3
    np.testing.assert_array_equal(ids.index_of(["u9", "u7", "u3", "u9"]), [2, 0, 1, 2])
    np.testing.assert_array_equal(ids.raw_of([1, 2, 0]), ["u3", "u9", "u7"])
    raw = np.array(["u3", "u7", "u9", "u7"], dtype=object)
    np.testing.assert_array_equal(ids.raw_of(ids.index_of(raw)), raw)
    assert "u3" in ids and "u4" not in ids


def test_idmap_integer_ids_round_trip() -> None:
    ids = IdMap([10, 5, 42])
    np.testing.assert_array_equal(ids.index_of(np.array([42, 10])), [2, 0])
    assert ids.index_of([5]).dtype == np.int64
    np.testing.assert_array_equal(ids.raw_of(np.array([2, 1])), [42, 5])


def test_idmap_unknown_id_raises_key_error_naming_it() -> None:
    ids = IdMap([1, 2, 3])
    with pytest.raises(KeyError, match="unknown id 99"):
        ids.index_of([1, 99, 100])


def test_idmap_rejects_duplicates() -> None:
    with pytest.raises(ValueError, match="unique"):
        IdMap(["a", "b", "a"])


def test_idmap_extended_appends_only_new_ids() -> None:
    ids = IdMap(["a", "b"])
    bigger = ids.extended(["b", "c", "d", "c"])
    assert list(bigger.raw) == ["a", "b", "c", "d"]
    assert ids.extended(["a"]) is ids
    assert IdMap(["a", "b"]) == ids and bigger != ids


# ---- FeatureTable.encode ----------------------------------------------------------------
@pytest.fixture
def table() -> FeatureTable:
    frame = pd.DataFrame(
        {
            "color": ["red", "blue", None, "green"],
            "tags": ["x|y", "", ["z", "x"], "y|y|z"],
            "year": [1990, None, "oops", 2001.5],
        },
        index=pd.Index([10, 20, 30, 40], name="item"),
    )
    # Row order of the ids differs from the frame; id 50 has no feature row at all.
    ids = IdMap([40, 10, 50, 30, 20])
    return FeatureTable.encode(frame, ids,
                               {"color": "categorical", "tags": "multi", "year": "numeric"})


def test_encode_categorical_vocab_sorted_zero_is_missing(table: FeatureTable) -> None:
    spec = table.spec("color")
    assert spec.vocab == ("blue", "green", "red")
    assert spec.cardinality == 4
    # ids order: 40 green, 10 red, 50 absent, 30 None, 20 blue
    assert table.values["color"].tolist() == [2, 3, MISSING, MISSING, 1]
    assert table.values["color"].dtype == torch.int64


def test_encode_multi_padded_with_zero_and_deduplicated(table: FeatureTable) -> None:
    spec = table.spec("tags")
    assert spec.kind == "multi" and spec.vocab == ("x", "y", "z")
    # Widest cell has 2 distinct tags ("y|y|z" -> y, z; ["z", "x"]).
    assert table.values["tags"].tolist() == [
        [2, 3],  # 40: y|y|z
        [1, 2],  # 10: x|y
        [0, 0],  # 50: no feature row
        [3, 1],  # 30: ["z", "x"], order kept
        [0, 0],  # 20: empty string
    ]


def test_encode_numeric_nan_for_missing(table: FeatureTable) -> None:
    year = table.values["year"]
    assert year.dtype == torch.float32
    assert year[0].item() == pytest.approx(2001.5)
    assert year[1].item() == 1990.0
    assert torch.isnan(year[2:]).all()  # absent id, unparsable "oops", None


def test_encode_take_adds_id_and_keeps_shape(table: FeatureTable) -> None:
    index = torch.tensor([[1, 4], [0, 0]])
    fields = table.take(index)
    assert torch.equal(fields["id"], index)
    assert fields["color"].tolist() == [[3, 1], [2, 2]]
    assert fields["tags"].shape == (2, 2, 2)


def test_encode_given_vocab_maps_unknown_to_missing() -> None:
    frame = pd.DataFrame({"g": ["a", "b", "c"]}, index=[1, 2, 3])
    table = FeatureTable.encode(frame, IdMap([1, 2, 3]), {"g": "categorical"},
                                vocabs={"g": ["c", "a"]})
    assert table.spec("g").vocab == ("c", "a")
    assert table.values["g"].tolist() == [2, 0, 1]


def test_encode_unknown_field_is_data_error() -> None:
    frame = pd.DataFrame({"g": ["a"]}, index=[1])
    with pytest.raises(DataError, match="'h'"):
        FeatureTable.encode(frame, IdMap([1]), {"h": "categorical"})


def test_encode_without_frame_is_empty() -> None:
    table = FeatureTable.encode(None, IdMap([1, 2]), {"g": "categorical"})
    assert table.specs == [] and table.num_rows == 2
    assert list(table.take(torch.tensor([1]))) == ["id"]


# ---- build_dataset ----------------------------------------------------------------------
def test_build_dataset_keeps_latest_duplicate_and_notes_count(caplog) -> None:
    ratings = pd.DataFrame({
        "user": ["a", "a", "b", "a", "b", "b"],
        "item": [1, 2, 1, 1, 1, 3],
        "rating": [1.0, 4.0, 2.0, 5.0, 3.0, 4.0],
        # (a, 1): rated 1 at t=30 and 5 at t=10 -> the t=30 rating (1) is the latest.
        # (b, 1): rated 2 at t=5, then 3 at t=5 (tie) -> file order: 3 wins.
        "timestamp": [30.0, 20.0, 5.0, 10.0, 5.0, 1.0],
    })
    with caplog.at_level(logging.WARNING):
        ds = build_dataset("toy", ratings)
    assert ds.notes == ["2 duplicate (user, item) rating(s): kept the latest of each"]
    assert "2 duplicate" in caplog.text
    frame = ds.interactions.to_frame()
    frame["user"] = ds.user_ids.raw_of(frame["user"])
    frame["item"] = ds.item_ids.raw_of(frame["item"])
    got = {(u, i): (r, t) for u, i, r, t in frame.itertuples(index=False)}
    assert got == {("a", 1): (1.0, 30.0), ("a", 2): (4.0, 20.0), ("b", 1): (3.0, 5.0),
                   ("b", 3): (4.0, 1.0)}
    assert len(ds.interactions) == 4


def test_build_dataset_without_timestamps_keeps_last_in_file_order() -> None:
    ratings = pd.DataFrame({"user": [1, 1, 1], "item": [7, 7, 8], "rating": [2.0, 4.0, 3.0]})
    ds = build_dataset("toy", ratings)
    assert ds.interactions.rating.tolist() == [4.0, 3.0]
    assert np.isnan(ds.interactions.timestamp).all()
    assert len(ds.notes) == 1


def test_build_dataset_no_duplicates_no_notes() -> None:
    ratings = pd.DataFrame({"user": [1, 2], "item": [7, 7], "rating": [2.0, 4.0]})
    assert build_dataset("toy", ratings).notes == []


def test_build_dataset_keeps_ids_only_in_feature_tables() -> None:
    ratings = pd.DataFrame({"user": [1, 2], "item": ["m1", "m2"], "rating": [3.0, 5.0],
                            "timestamp": [1.0, 2.0]})
    users = pd.DataFrame({"gender": ["F", "M", "F"]}, index=[1, 2, 3])
    items = pd.DataFrame({"genres": ["A|B", "B", "C"]}, index=["m2", "m3", "m1"])
    ds = build_dataset("toy", ratings, users=users, items=items,
                       user_fields={"gender": "categorical"}, item_fields={"genres": "multi"})
    assert list(ds.user_ids.raw) == [1, 2, 3]
    assert list(ds.item_ids.raw) == ["m1", "m2", "m3"]
    assert ds.num_users == 3 and ds.num_items == 3
    assert ds.users.values["gender"].tolist() == [1, 2, 1]
    assert ds.items.values["genres"].tolist() == [[3, 0], [1, 2], [2, 0]]
    summary = ds.summary()
    assert summary["ratings"] == 2 and summary["rated_items"] == 2 and summary["items"] == 3


def test_build_dataset_missing_column_is_data_error() -> None:
    with pytest.raises(DataError, match="rating"):
        build_dataset("toy", pd.DataFrame({"user": [1], "item": [2]}))
