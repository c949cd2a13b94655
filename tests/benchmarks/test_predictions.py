"""Saved predictions (`benchmarks/_predictions.py`): what is written reads back the same,
and `blend_saved.py` blends them with weights of their own where items are new."""

from __future__ import annotations

import numpy as np
import pytest


def test_saved_predictions_read_back_with_their_rows(tmp_path, tasks, benchmarks) -> None:
    saved = pytest.importorskip("_predictions")
    sets = {"warm": tasks([0, 2, 1], [5.0, 1.0, 3.5], users=[4, 4, 5]),
            "validation": tasks([1], [2.0], users=[6])}
    known = np.array([True, True, False])
    preds = {"mf#0": {"warm": np.array([4.0, 2.0, 3.0]), "validation": np.array([2.5])},
             "net": {"warm": np.array([4.5, 1.5, 3.25]), "validation": np.array([1.0])}}
    path = saved.save_seed(saved.seed_file(tmp_path / "out", "run", 7), 7, sets, known,
                           np.array([1.0, 2.0, 3.0, 4.0, 5.0]), preds, only_known=["mf#0"])
    assert path == tmp_path / "out" / "run.seed7.npz" and path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["run.seed7.npz"]  # no partial left
    back = saved.load_seed(path)
    assert back.seed == 7 and back.levels.tolist() == [1, 2, 3, 4, 5]
    warm = back.scenarios["warm"]
    assert warm.user.tolist() == [4, 4, 5] and warm.item.tolist() == [0, 2, 1]
    assert warm.true.tolist() == [5.0, 1.0, 3.5] and warm.known.tolist() == [True, False, True]
    assert back.predictions["net"]["warm"].tolist() == [4.5, 1.5, 3.25]
    assert back.predictions["mf#0"]["validation"].tolist() == [2.5]
    assert back.only_known == {"mf#0"}
    assert warm.same_rows(back.scenarios["warm"])
    assert not warm.same_rows(back.scenarios["validation"])


def test_saving_refuses_predictions_that_miss_rows(tmp_path, tasks, benchmarks) -> None:
    saved = pytest.importorskip("_predictions")
    sets = {"warm": tasks([0, 1], [1.0, 2.0])}
    with pytest.raises(ValueError, match="net has 1 predictions on warm, which has 2"):
        saved.save_seed(tmp_path / "x.npz", 0, sets, np.ones(2, bool), None,
                        {"net": {"warm": np.array([1.0])}})
    with pytest.raises(FileNotFoundError, match="no saved predictions"):
        saved.load_seed(tmp_path / "missing.npz")


def test_blend_saved_chooses_each_kind_of_row_on_its_own_validation_set(
        tmp_path, tasks, benchmarks) -> None:
    saved = pytest.importorskip("_predictions")
    blending = pytest.importorskip("blend_saved")
    known = np.array([True, True, False, False])  # items 2 and 3 are new
    sets = {"validation": tasks([0, 1], [3.0, 4.0]),
            "validation_new_items": tasks([2, 3], [2.0, 5.0]),
            "warm": tasks([0, 2], [5.0, 1.0], users=[1, 1])}
    # known items: net errs +1 and mf -1, so half and half. New items: net errs +2 and
    # other -1, so w of net leaves |3w - 1|: least on the grid of 0.05 at w = 0.35
    net = {"validation": np.array([4.0, 5.0]), "validation_new_items": np.array([4.0, 7.0]),
           "warm": np.array([4.0, 2.0])}
    mf = {"validation": np.array([2.0, 3.0]), "validation_new_items": np.array([9.0, 9.0]),
          "warm": np.array([5.0, 5.0])}
    other = {"validation": np.array([3.0, 9.0]), "validation_new_items": np.array([1.0, 4.0]),
             "warm": np.array([1.0, 1.0])}
    for name, preds in (("a", {"net": net, "mf": mf}), ("b", {"other": other})):
        saved.save_seed(saved.seed_file(tmp_path, name, 0), 0, sets, known, None,
                        {**preds, **{f"{k}#0": v for k, v in preds.items()}},
                        only_known=["mf", "mf#0"])
    loaded = blending.load_runs(tmp_path, {"x": "a", "y": "b"}, 0)
    mixed, weights = blending.gated_blend(
        loaded, [("x", "net"), ("x", "mf"), ("y", "other")], 0.05, "mae")
    assert weights["known"] == [0.5, 0.5, 0.0]
    assert weights["new"] == pytest.approx([0.35, 0.0, 0.65])  # mf scores no new item
    # warm: item 0 is known (4 + 5) / 2; item 2 is new 0.35 * 2 + 0.65 * 1
    assert mixed["warm"] == pytest.approx([4.5, 0.35 * 2 + 0.65 * 1])


def test_blend_saved_gives_trained_users_new_items_their_own_weights(
        tmp_path, tasks, benchmarks) -> None:
    """With ``trained_users``: new-item rows of a user training saw (user 1) take the
    weights chosen on ``validation_trained_new_items``, those of a user it did not (2)
    the weights chosen on ``validation_new_items``."""
    saved = pytest.importorskip("_predictions")
    blending = pytest.importorskip("blend_saved")
    known = np.array([True, True, False, False])
    sets = {"validation": tasks([0, 1], [3.0, 4.0], users=[5, 5]),
            "validation_new_items": tasks([2, 3], [2.0, 5.0], users=[6, 6]),
            "validation_trained_new_items": tasks([2, 3], [3.0, 3.0], users=[1, 1]),
            "new_items": tasks([2, 3], [4.0, 4.0], users=[1, 2])}
    # validation_new_items: net errs +2, other -1 (net's weight 0.35, as above);
    # validation_trained_new_items: net is exact, other 3 off (net's weight 1).
    net = {"validation": np.array([4.0, 5.0]), "validation_new_items": np.array([4.0, 7.0]),
           "validation_trained_new_items": np.array([3.0, 3.0]),
           "new_items": np.array([4.0, 6.0])}
    other = {"validation": np.array([2.0, 3.0]), "validation_new_items": np.array([1.0, 4.0]),
             "validation_trained_new_items": np.array([0.0, 0.0]),
             "new_items": np.array([2.0, 2.0])}
    preds = {"net": net, "other": other}
    saved.save_seed(saved.seed_file(tmp_path, "a", 0), 0, sets, known, None,
                    {**preds, **{f"{k}#0": v for k, v in preds.items()}},
                    trained_users=np.array([1]))
    loaded = blending.load_runs(tmp_path, {"x": "a"}, 0)
    assert loaded["x"].scenarios["new_items"].trained.tolist() == [True, False]
    parts = [("x", "net"), ("x", "other")]
    mixed, weights = blending.gated_blend(loaded, parts, 0.05, "mae", trained_users=True)
    assert weights["new_trained"] == [1.0, 0.0]
    assert weights["new"] == pytest.approx([0.35, 0.65])
    assert mixed["new_items"] == pytest.approx([4.0, 0.35 * 6 + 0.65 * 2])
    plain, two = blending.gated_blend(loaded, parts, 0.05, "mae")
    assert "new_trained" not in two
    assert plain["new_items"] == pytest.approx([0.35 * 4 + 0.65 * 2, 0.35 * 6 + 0.65 * 2])
    saved.save_seed(saved.seed_file(tmp_path, "b", 0), 0, sets, known, None,
                    {**preds, **{f"{k}#0": v for k, v in preds.items()}})
    with pytest.raises(SystemExit, match="--trained-users needs runs saved"):
        blending.gated_blend(blending.load_runs(tmp_path, {"x": "b"}, 0), parts, 0.05,
                             "mae", trained_users=True)


def test_blend_saved_refuses_runs_of_different_splits(tmp_path, tasks, benchmarks) -> None:
    saved = pytest.importorskip("_predictions")
    blending = pytest.importorskip("blend_saved")
    for name, rating in (("a", 3.0), ("b", 4.0)):
        sets = {"warm": tasks([0], [rating])}
        saved.save_seed(saved.seed_file(tmp_path, name, 0), 0, sets, np.ones(1, bool), None,
                        {"p": {"warm": np.array([1.0])}})
    with pytest.raises(SystemExit, match="warm query rows differ"):
        blending.load_runs(tmp_path, {"x": "a", "y": "b"}, 0)


def test_blend_saved_keeps_the_scenarios_every_run_saved(tmp_path, tasks,
                                                         benchmarks) -> None:
    """A run saved before a scenario existed blends with a newer one on what both hold,
    whichever is named first."""
    saved = pytest.importorskip("_predictions")
    blending = pytest.importorskip("blend_saved")
    old = {"warm": tasks([0], [3.0])}
    new = {**old, "validation_trained_new_items": tasks([1], [4.0])}
    for name, sets in (("old", old), ("new", new)):
        saved.save_seed(saved.seed_file(tmp_path, name, 0), 0, sets,
                        np.ones(2, bool), None,
                        {"p": {s: np.array([1.0]) for s in sets}})
    for runs in ({"x": "new", "y": "old"}, {"x": "old", "y": "new"}):
        loaded = blending.load_runs(tmp_path, runs, 0)
        for run in loaded.values():
            assert list(run.scenarios) == ["warm"] and list(run.predictions["p"]) == ["warm"]


def test_blend_saved_names_the_missing_file_and_how_to_write_it(tmp_path,
                                                                benchmarks) -> None:
    blending = pytest.importorskip("blend_saved")
    with pytest.raises(SystemExit, match=r"run\.seed3\.npz: no saved predictions there .*"
                                         r"--name run --save-predictions"):
        blending.load_runs(tmp_path, {"x": "run"}, 3)


def test_a_run_and_its_extension_merge_into_one_ensemble(tmp_path, tasks, benchmarks) -> None:
    saved = pytest.importorskip("_predictions")
    sets = {"warm": tasks([0, 1], [3.0, 4.0])}
    known = np.ones(3, bool)
    first = {"net#0": {"warm": np.array([1.0, 2.0])}, "net#1": {"warm": np.array([3.0, 5.0])}}
    first["net"] = {"warm": np.array([2.0, 3.5])}
    more = {"net#2": {"warm": np.array([5.0, 8.0])}, "net": {"warm": np.array([5.0, 8.0])}}
    parts = [saved.load_seed(saved.save_seed(tmp_path / f"{name}.npz", 0, sets, known, None,
                                             preds))
             for name, preds in (("a", first), ("b", more))]
    one = saved.merged(parts)
    assert sorted(one.predictions) == ["net", "net#0", "net#1", "net#2"]
    assert one.predictions["net"]["warm"].tolist() == [3.0, 5.0]  # the mean of three members
    assert one.first_member("net") == "net#0" and parts[1].first_member("net") == "net#2"
    assert saved.merged(parts[:1]).predictions == parts[0].predictions
    with pytest.raises(ValueError, match="member net#2 is in an earlier file too"):
        saved.merged([parts[1], parts[1]])
    other = saved.load_seed(saved.save_seed(tmp_path / "c.npz", 0,
                                            {"warm": tasks([0, 2], [3.0, 4.0])}, known,
                                            None, more))
    with pytest.raises(ValueError, match="warm query rows differ"):
        saved.merged([parts[0], other])
