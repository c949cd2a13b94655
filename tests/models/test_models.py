"""FeatureMLP and BiasedMF: shapes, field embeddings, parameter naming, configs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from metarec.data.dataset import FieldSpec, build_dataset
from metarec.data.synthetic import SyntheticConfig, generate
from metarec.errors import ConfigError, DataError
from metarec.models import BiasedMF, FeatureMF, FeatureMLP, build_model, model_from_config
from metarec.models.feature_mf import FactorHead
from metarec.models.feature_mlp import FieldEmbedding


@pytest.fixture(scope="module")
def dataset():
    return generate(SyntheticConfig(num_users=40, num_items=30, num_ratings=800))


def _fields(ds, users: torch.Tensor, items: torch.Tensor):
    return ds.users.take(users), ds.items.take(items)


def test_feature_mlp_pairs_shape(dataset) -> None:
    model = FeatureMLP.for_dataset(dataset, embedding_dim=4, hidden=(8, 6))
    users, items = torch.tensor([0, 1, 2, 3, 4]), torch.tensor([5, 6, 7, 8, 9])
    out = model(*_fields(dataset, users, items))
    assert out.shape == (5,)
    assert torch.isfinite(out).all()
    # 3 user fields and 3 item fields of 4 dims each.
    assert model.body.width == 6 * 4


def test_feature_mlp_per_user_lists_shape_and_broadcast(dataset) -> None:
    model = FeatureMLP.for_dataset(dataset, embedding_dim=4, hidden=(8,))
    users = torch.tensor([0, 3])
    items = torch.tensor([[1, 2, 3], [4, 5, 6]])
    out = model(*_fields(dataset, users, items))
    assert out.shape == (2, 3)
    # The [B, S] form equals scoring each (user, item) pair separately.
    pairs = model(*_fields(dataset, users.repeat_interleave(3), items.reshape(-1)))
    torch.testing.assert_close(out.reshape(-1), pairs)


def test_feature_mlp_output_bias_starts_at_rating_mean(dataset) -> None:
    model = FeatureMLP.for_dataset(dataset, embedding_dim=4, hidden=(8,))
    mean = float(dataset.interactions.rating.mean())
    assert model.rating_mean == pytest.approx(mean)
    assert model.head[-1].bias.item() == pytest.approx(mean)


def test_multi_valued_mean_ignores_padding() -> None:
    embed = FieldEmbedding(FieldSpec("genres", "multi", ("a", "b", "c")), dim=2)
    with torch.no_grad():
        embed.embedding.weight.copy_(torch.tensor([[100.0, 100.0], [1.0, 2.0], [3.0, 6.0],
                                                   [5.0, -4.0]]))
    values = torch.tensor([[1, 2, 0], [3, 0, 0], [2, 3, 1], [0, 0, 0]])
    expected = torch.tensor([[2.0, 4.0], [5.0, -4.0], [3.0, 4.0 / 3.0], [0.0, 0.0]])
    torch.testing.assert_close(embed(values), expected)
    # Batched form [B, S, L] gives the same rows.
    torch.testing.assert_close(embed(values.reshape(2, 2, 3)), expected.reshape(2, 2, 2))


def test_categorical_missing_embeds_to_zero_and_numeric_is_standardised() -> None:
    cat = FieldEmbedding(FieldSpec("g", "categorical", ("F", "M")), dim=3)
    assert torch.equal(cat(torch.tensor([0]))[0], torch.zeros(3))
    num = FieldEmbedding(FieldSpec("year", "numeric"), dim=2, mean=1990.0, std=5.0)
    with torch.no_grad():
        num.linear.weight.copy_(torch.tensor([[1.0], [-2.0]]))
        num.linear.bias.copy_(torch.tensor([0.5, 0.0]))
    out = num(torch.tensor([2000.0, float("nan")]))
    torch.testing.assert_close(out, torch.tensor([[2.5, -4.0], [0.5, 0.0]]))


def test_head_output_body_partition_the_parameters(dataset) -> None:
    for options in ({}, {"user_id_embedding": True, "item_id_embedding": True}):
        model = FeatureMLP.for_dataset(dataset, embedding_dim=4, hidden=(8, 8), **options)
        names = [n for n, _ in model.named_parameters()]
        head, body, output = model.head_names(), model.body_names(), model.output_names()
        assert sorted(head + body) == sorted(names)
        assert not set(head) & set(body)
        assert set(output) < set(head)
        assert output == ["head.4.weight", "head.4.bias"]
        assert all(n.startswith("body.") for n in body)
    assert any("id" in n for n in body)
    mf = BiasedMF(5, 7, factors=3)
    assert sorted(mf.head_names()) == ["user_bias.weight", "user_factors.weight"]
    assert sorted(mf.body_names()) == ["global_mean", "item_bias.weight",
                                       "item_factors.weight"]


@pytest.mark.parametrize("kind", ["FeatureMLP", "FeatureMF", "FeatureMF-joint", "BiasedMF"])
def test_model_from_config_round_trip(dataset, kind: str) -> None:
    options = {"FeatureMLP": {"embedding_dim": 4, "hidden": (8,), "item_id_embedding": True},
               "FeatureMF": {"embedding_dim": 4, "hidden": (8,), "factors": 3,
                             "item_id_embedding": True},
               "FeatureMF-joint": {"embedding_dim": 4, "hidden": (8,), "factors": 3,
                                   "joint_hidden": (6, 5)},
               "BiasedMF": {"factors": 3}}[kind]
    model = build_model(kind.removesuffix("-joint"), dataset, **options)
    with torch.no_grad():  # the joint MLP's output layer starts at zero: make it count
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    config = json.loads(json.dumps(model.config()))  # JSON-able
    again = model_from_config(config)
    assert type(again) is type(model)
    assert {n: p.shape for n, p in again.named_parameters()} == {
        n: p.shape for n, p in model.named_parameters()}
    assert again.config() == model.config()
    again.load_state_dict(model.state_dict())
    users, items = torch.tensor([0, 1]), torch.tensor([2, 3])
    torch.testing.assert_close(again(*_fields(dataset, users, items)),
                               model(*_fields(dataset, users, items)))


def test_build_model_unknown_kind(dataset) -> None:
    with pytest.raises(ValueError, match="unknown model kind"):
        build_model("Transformer", dataset)


def test_biased_mf_exact_prediction() -> None:
    model = BiasedMF(2, 3, factors=2, rating_mean=3.0)
    with torch.no_grad():
        model.user_bias.weight.copy_(torch.tensor([[0.5], [-1.0]]))
        model.item_bias.weight.copy_(torch.tensor([[0.0], [0.25], [1.0]]))
        model.user_factors.weight.copy_(torch.tensor([[1.0, 2.0], [0.0, -1.0]]))
        model.item_factors.weight.copy_(torch.tensor([[1.0, 1.0], [0.5, 0.0], [2.0, -1.0]]))
    out = model({"id": torch.tensor([0, 1, 1])}, {"id": torch.tensor([0, 1, 2])})
    # (0, 0): 3 + 0.5 + 0 + (1 + 2); (1, 1): 3 - 1 + 0.25 + 0; (1, 2): 3 - 1 + 1 + 1
    torch.testing.assert_close(out, torch.tensor([6.5, 2.25, 4.0]))
    lists = model({"id": torch.tensor([0, 1])}, {"id": torch.tensor([[0, 2], [1, 2]])})
    torch.testing.assert_close(lists, torch.tensor([[6.5, 4.5], [2.25, 4.0]]))


def test_factor_head_exact_prediction() -> None:
    head = FactorHead(user_width=2, item_width=1, factors=2, hidden=(), rating_mean=3.0)
    with torch.no_grad():
        head.user.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        head.user.bias.copy_(torch.tensor([0.5, 0.0, -1.0]))
        head.item[0].weight.copy_(torch.tensor([[0.0], [2.0], [1.0]]))
        head.item[0].bias.copy_(torch.tensor([0.25, 0.0, 0.0]))
    x = torch.tensor([[1.0, 2.0, 1.0], [0.0, 0.0, -1.0]])
    # Row 0: u = (1.5, 2, 2), v = (0.25, 2, 1): 3 + 1.5 + 0.25 + (4 + 2) = 10.75.
    # Row 1: u = (0.5, 0, -1), v = (0.25, -2, -1): 3 + 0.5 + 0.25 + (0 + 1) = 4.75.
    torch.testing.assert_close(head(x), torch.tensor([[10.75], [4.75]]))


def test_factor_head_adds_its_joint_mlp_over_both_sides() -> None:
    head = FactorHead(user_width=2, item_width=1, factors=2, hidden=(), rating_mean=3.0,
                      joint_hidden=(2,))
    x = torch.tensor([[1.0, 2.0, 1.0], [0.0, 0.0, -1.0]])
    without = head(x).clone()
    assert head.joint is not None
    assert not head.joint[-1].weight.detach().any()  # starts as the plain head
    with torch.no_grad():
        head.joint[0].weight.copy_(torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, -1.0]]))
        head.joint[0].bias.copy_(torch.tensor([0.0, 0.5]))
        head.joint[2].weight.copy_(torch.tensor([[0.5, 2.0]]))
        head.joint[2].bias.copy_(torch.tensor([-1.0]))
    # Row 0: hidden relu(4, -0.5) = (4, 0): 2 - 1 = 1. Row 1: relu(-1, 1.5) = (0, 1.5): 3 - 1.
    torch.testing.assert_close(head(x) - without, torch.tensor([[1.0], [2.0]]))


def test_feature_mf_joint_mlp_is_global(dataset) -> None:
    model = FeatureMF.for_dataset(dataset, embedding_dim=4, hidden=(8,), factors=3,
                                  joint_hidden=(6,))
    joint = {n for n, _ in model.named_parameters() if n.startswith("head.joint.")}
    assert len(joint) == 4 and joint <= set(model.memory_names())
    assert sorted(model.head_names()) == ["head.user.bias", "head.user.weight"]
    assert model.head.joint[0].in_features == model.body.width
    plain = FeatureMF.for_dataset(dataset, embedding_dim=4, hidden=(8,), factors=3)
    assert plain.head.joint is None and "joint_hidden" not in plain.config()


def test_feature_mf_is_its_head_over_the_body_and_adapts_the_user_tower(dataset) -> None:
    model = FeatureMF.for_dataset(dataset, embedding_dim=4, hidden=(8,), factors=3,
                                  item_id_embedding=True)
    users, items = torch.tensor([0, 3]), torch.tensor([[1, 2, 3], [4, 5, 6]])
    user, item = _fields(dataset, users, items)
    out = model(user, item)
    assert out.shape == (2, 3)
    torch.testing.assert_close(out, model.head(model.body(user, item)).squeeze(-1))
    assert model.splits_head
    assert sorted(model.head_names()) == ["head.user.bias", "head.user.weight"]
    assert model.output_names() == ["head.user.bias"]
    assert "head.mean" in model.body_names()
    # The user tower reads the user fields only: 3 user fields of 4 dims.
    assert model.head.user.in_features == 3 * 4
    assert model.config()["kind"] == "FeatureMF"
    # The item side is memory: learners adapting "every parameter" leave it global.
    memory = set(model.memory_names())
    names = {n for n, _ in model.named_parameters()}
    assert memory == {n for n in names if n.startswith(("body.item_fields.", "head.item."))}
    assert "head.user.weight" not in memory and "head.mean" not in memory


def test_build_model_starts_biased_mf_at_the_data_sets_mean() -> None:
    ratings = pd.DataFrame({"user": ["u1", "u1", "u2"], "item": ["i1", "i2", "i1"],
                            "rating": [8.0, 9.0, 10.0]})
    ds = build_dataset("ten", ratings, rating_range=(1, 10))
    model = build_model("BiasedMF", ds)
    assert model.global_mean.item() == pytest.approx(9.0)
    assert build_model("BiasedMF", ds, rating_mean=2.0).global_mean.item() == 2.0


def test_an_infinite_number_is_a_missing_one() -> None:
    ratings = pd.DataFrame({"user": ["u1", "u1"], "item": ["i1", "i2"], "rating": [3.0, 4.0]})
    items = pd.DataFrame({"year": [1990.0, np.inf]}, index=["i1", "i2"])
    ds = build_dataset("t", ratings, items=items, item_fields={"year": "numeric"})
    assert torch.isnan(ds.items.values["year"][1])
    embedding = FieldEmbedding(FieldSpec("year", "numeric"), 2, mean=0.0, std=1.0)
    out = embedding(torch.tensor([float("inf"), float("nan"), 0.0]))
    torch.testing.assert_close(out[0], out[2])
    torch.testing.assert_close(out[1], out[2])


def test_a_field_named_id_is_refused() -> None:
    ratings = pd.DataFrame({"user": ["u1"], "item": ["i1"], "rating": [3.0]})
    items = pd.DataFrame({"id": ["z"]}, index=["i1"])
    with pytest.raises(DataError, match="may not be named 'id'"):
        build_dataset("t", ratings, items=items, item_fields={"id": "categorical"})


def test_a_model_without_inputs_and_unknown_excluded_fields_are_config_errors(
        dataset) -> None:
    ratings = pd.DataFrame({"user": ["u1"], "item": ["i1"], "rating": [3.0]})
    with pytest.raises(ConfigError, match="the model has no inputs"):
        FeatureMLP.for_dataset(build_dataset("bare", ratings))
    assert FeatureMLP.for_dataset(build_dataset("bare", ratings), item_id_embedding=True)
    with pytest.raises(ConfigError, match="must be a list of field names"):
        FeatureMLP.for_dataset(dataset, exclude_fields="year")


def test_excluded_fields_are_checked_against_every_data_set_of_a_run(dataset) -> None:
    """A name no data set has is a typo (an error); one that only another data set of
    the run has (a transfer's source or target) is not."""
    from metarec.config import ModelConfig
    from metarec.experiment import check_fields

    ratings = pd.DataFrame({"user": ["u1"], "item": ["i1"], "rating": [3.0]})
    other = build_dataset("other", ratings, items=pd.DataFrame({"studio": ["A"]},
                                                               index=["i1"]),
                          item_fields={"studio": "categorical"})
    with pytest.raises(ConfigError, match=r"names no field of the data: \['years'\]"):
        check_fields(ModelConfig(exclude_fields=["years"]), dataset)
    check_fields(ModelConfig(exclude_fields=["studio", "rate"]), dataset, other)
    with pytest.raises(ConfigError, match=r"\['studio'\]"):
        check_fields(ModelConfig(exclude_fields=["studio", "rate"]), dataset)
    model = FeatureMLP.for_dataset(dataset, exclude_fields=["studio", "rate"])  # warns
    assert "rate" not in {s.name for s in model.item_specs}


@pytest.mark.parametrize(("build", "message"), [
    (lambda ds: FeatureMLP.for_dataset(ds, hidden=(0,)),
     r"FeatureMLP: hidden must be layer widths, each a whole number >= 1, got \[0\]"),
    (lambda ds: FeatureMLP.for_dataset(ds, embedding_dim=0),
     "FeatureMLP: embedding_dim must be a whole number >= 1, got 0"),
    (lambda ds: FeatureMF.for_dataset(ds, hidden=(4, -5)), r"FeatureMF: hidden .* \[4, -5\]"),
    (lambda ds: FeatureMF.for_dataset(ds, factors=-2), "FeatureMF: factors .* got -2"),
    (lambda ds: FeatureMF.for_dataset(ds, joint_hidden=(2.5,)), r"joint_hidden .* \[2.5\]"),
    (lambda ds: BiasedMF(ds.num_users, ds.num_items, factors=0), "BiasedMF: factors"),
])
def test_model_sizes_below_one_are_config_errors(dataset, build, message: str) -> None:
    """A width of 0 had built a model that predicts one constant; a negative one failed
    deep inside torch."""
    with pytest.raises(ConfigError, match=message):
        build(dataset)


def test_a_float64_model_standardises_numeric_fields_in_float64() -> None:
    """Feature tables hold numbers as float32; they had been standardised in float32 and
    cast afterwards, 4e-8 off in a float64 model."""
    field = FieldEmbedding(FieldSpec("year", "numeric"), 1, mean=1994.123456789,
                           std=3.3333333).double()
    with torch.no_grad():
        field.linear.weight.fill_(1.0)
        field.linear.bias.zero_()
    years = torch.tensor([1999.0, 1987.0], dtype=torch.float32)
    expected = (years.double() - 1994.123456789) / 3.3333333
    assert torch.equal(field(years)[:, 0], expected)
