"""Transfer learning: exact embedding transfer on hand-made vocabularies, freezing that
really freezes, save/load, and the generated source/target domains."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metarec.data.dataset import FieldSpec
from metarec.data.domains import generate_domains, relabelling
from metarec.data.splits import SplitConfig, split_dataset
from metarec.data.synthetic import SyntheticConfig
from metarec.errors import CheckpointError, ConfigError
from metarec.learners import LearnerConfig, learner_class
from metarec.learners.transfer import (
    Transfer,
    TransferConfig,
    subsample_users,
    trainable_names,
    transfer_weights,
)
from metarec.models import FeatureMLP

TINY = SyntheticConfig(num_users=160, num_items=80, num_ratings=5000, min_user_ratings=15)


def _model(user: list[FieldSpec], item: list[FieldSpec], seed: int, dim: int = 4
           ) -> FeatureMLP:
    torch.manual_seed(seed)
    return FeatureMLP(user, item, embedding_dim=dim, hidden=(6,))


SOURCE_USER = [FieldSpec("gender", "categorical", ("F", "M")),
               FieldSpec("occupation", "categorical", ("a", "b", "c")),
               FieldSpec("age", "categorical", ("1", "18"))]
SOURCE_ITEM = [FieldSpec("genres", "multi", ("Action", "Drama")),
               FieldSpec("year", "numeric")]
TARGET_USER = [FieldSpec("gender", "categorical", ("M", "X")),
               FieldSpec("occupation", "categorical", ("c", "a", "z")),
               FieldSpec("zip", "categorical", ("1", "2"))]
TARGET_ITEM = [FieldSpec("genres", "multi", ("Drama", "Horror")),
               FieldSpec("year", "numeric")]


def test_transfer_copies_exactly_the_shared_categories() -> None:
    source = _model(SOURCE_USER, SOURCE_ITEM, seed=0)
    target = _model(TARGET_USER, TARGET_ITEM, seed=1)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    report = transfer_weights(source, target)

    def rows(model: FeatureMLP, side: str, name: str) -> torch.Tensor:
        return getattr(model.body, f"{side}_fields")[name].embedding.weight

    # gender: target "M" (row 1) <- source "M" (row 2); "X" (row 2) stays fresh.
    assert torch.equal(rows(target, "user", "gender")[1], rows(source, "user", "gender")[2])
    assert torch.equal(rows(target, "user", "gender")[2],
                       before["body.user_fields.gender.embedding.weight"][2])
    # occupation: "c" row 1 <- source row 3, "a" row 2 <- source row 1, "z" row 3 fresh.
    occ_t, occ_s = rows(target, "user", "occupation"), rows(source, "user", "occupation")
    assert torch.equal(occ_t[1], occ_s[3]) and torch.equal(occ_t[2], occ_s[1])
    assert torch.equal(occ_t[3], before["body.user_fields.occupation.embedding.weight"][3])
    # zip is new: untouched.
    assert torch.equal(rows(target, "user", "zip"),
                       before["body.user_fields.zip.embedding.weight"])
    # genres (multi): "Drama" row 1 <- source row 2; "Horror" fresh.
    assert torch.equal(rows(target, "item", "genres")[1], rows(source, "item", "genres")[2])
    assert torch.equal(rows(target, "item", "genres")[2],
                       before["body.item_fields.genres.embedding.weight"][2])
    assert torch.equal(target.body.item_fields["year"].linear.weight,
                       source.body.item_fields["year"].linear.weight)
    by_name = {(f.side, f.name): f for f in report.fields}
    assert (by_name[("user", "gender")].status, by_name[("user", "gender")].copied_values) == (
        "transferred", ["M"])
    assert by_name[("user", "occupation")].copied_values == ["c", "a"]
    assert by_name[("user", "occupation")].fresh == 1
    assert by_name[("user", "zip")].status == "new"
    assert by_name[("user", "age")].status == "dropped"
    assert by_name[("item", "genres")].copied_values == ["Drama"]
    assert report.head == "transferred"


def test_head_transfer_keeps_the_function_when_fields_match() -> None:
    source = _model(SOURCE_USER, SOURCE_ITEM, seed=0)
    target = _model(SOURCE_USER, SOURCE_ITEM, seed=5)
    transfer_weights(source, target)
    user = {"id": torch.arange(3), "gender": torch.tensor([1, 2, 0]),
            "occupation": torch.tensor([3, 1, 2]), "age": torch.tensor([0, 1, 2])}
    item = {"id": torch.arange(3), "genres": torch.tensor([[1, 2], [2, 0], [0, 0]]),
            "year": torch.tensor([1990.0, float("nan"), 2000.0])}
    assert torch.equal(target(user, item), source(user, item))


def test_new_field_columns_start_at_zero() -> None:
    source = _model(SOURCE_USER, SOURCE_ITEM, seed=0)
    target = _model(TARGET_USER, TARGET_ITEM, seed=1)
    transfer_weights(source, target)
    first = target.head[0].weight
    zip_at = 2 * 4  # gender, occupation, then zip
    assert torch.count_nonzero(first[:, zip_at:zip_at + 4]) == 0


def test_incompatible_models_raise_config_errors() -> None:
    source = _model(SOURCE_USER, SOURCE_ITEM, seed=0)
    with pytest.raises(ConfigError, match="embedding_dim"):
        transfer_weights(source, _model(TARGET_USER, TARGET_ITEM, seed=1, dim=8))
    numeric_gender = [FieldSpec("gender", "numeric")]
    with pytest.raises(ConfigError, match="user.gender.*exclude_fields"):
        transfer_weights(source, _model(numeric_gender, TARGET_ITEM, seed=1))
    report = transfer_weights(source, _model(numeric_gender, TARGET_ITEM, seed=1),
                              exclude_fields=["user.gender"])
    assert report.fields[0].status == "excluded"
    with pytest.raises(ConfigError, match="freeze"):
        TransferConfig(freeze="everything")
    with pytest.raises(ConfigError, match="unknown learner"):
        TransferConfig(target_learner="nope")


@pytest.fixture(scope="module")
def domains():
    source, target = generate_domains(TINY, shared_share=0.5, seed=0)
    s_split = split_dataset(source, SplitConfig(seed=0, validation_fraction=0.0))
    t_split = split_dataset(target, SplitConfig(seed=0, validation_fraction=0.0))
    cfg = LearnerConfig(epochs=2, patience=None, inner_steps=2, meta_batch_size=16)
    model = FeatureMLP.for_dataset(source, embedding_dim=4, hidden=(8,))
    pretrained = learner_class("pretrain")(model, cfg).fit(s_split.train, source)
    return source, target, t_split, pretrained, cfg


@pytest.mark.parametrize("learner", ["pretrain", "maml-r"])
@pytest.mark.parametrize("policy", ["embeddings", "head-only"])
def test_freezing_keeps_frozen_parameters_bit_identical(domains, learner, policy) -> None:
    source, target, split, pretrained, cfg = domains
    tl = Transfer(pretrained, cfg, TransferConfig(freeze=policy, target_learner=learner),
                  source_features=source)
    fitted = tl.build_target(target, split.train.all_ratings())
    before = {n: p.detach().clone() for n, p in fitted.model.named_parameters()}
    tl.fit(subsample_users(split.train, 0.3, 0), target)
    trainable = set(trainable_names(tl.model, policy))
    after = dict(tl.model.named_parameters())
    frozen = [n for n in after if n not in trainable]
    assert frozen and set(tl.frozen_) == set(frozen)
    for name in frozen:
        assert torch.equal(after[name], before[name]), name
    assert any(not torch.equal(after[n], before[n]) for n in trainable)
    assert all(p.requires_grad for p in tl.model.parameters())


@pytest.mark.parametrize(("learner", "own"), [("metasgd", "lr."), ("ridge", "precision.")])
@pytest.mark.parametrize("policy", ["none", "embeddings", "head-only", "lr-ratio"])
def test_the_learners_own_parameters_train_under_every_policy(domains, learner, own,
                                                               policy) -> None:
    """Meta-SGD's step sizes and ridge's precisions had been left out of the optimiser
    by every policy, ``none`` included (and not reported frozen)."""
    source, target, split, pretrained, cfg = domains
    tl = Transfer(pretrained, cfg, TransferConfig(freeze=policy, target_learner=learner),
                  source_features=source)
    fitted = tl.build_target(target, split.train.all_ratings())
    mine = {n: p for n, p in fitted.meta_parameters().items() if n.startswith(own)}
    optimised = {id(p) for g in fitted.optimizer_.param_groups for p in g["params"]}
    assert mine and all(id(p) in optimised for p in mine.values())
    before = {n: p.detach().clone() for n, p in mine.items()}
    tl.fit(subsample_users(split.train, 0.3, 0), target)
    after = dict(tl.target_.meta_parameters())
    assert any(not torch.equal(after[n], before[n]) for n in mine)


def test_an_id_embedding_that_is_not_transferred_learns_in_the_target(domains) -> None:
    """Its table starts at zero: zero head columns as well had kept both at zero for
    good (no gradient reaches either)."""
    source, target, split, _, cfg = domains
    s_split = split_dataset(source, SplitConfig(seed=0, validation_fraction=0.0))
    torch.manual_seed(0)
    model = FeatureMLP.for_dataset(source, embedding_dim=4, hidden=(8,),
                                   user_id_embedding=True, item_id_embedding=True)
    pretrained = learner_class("pretrain")(model, cfg).fit(s_split.train, source)
    tl = Transfer(pretrained, cfg, TransferConfig(freeze="none", exclude_fields=["item.id"]),
                  source_features=source)
    tl.fit(subsample_users(split.train, 0.5, 0), target)
    status = {(f.side, f.name): f.status for f in tl.report_.fields}
    assert status[("user", "id")] == "new"  # the domains share no user
    assert status[("item", "id")] == "excluded"
    for side in ("user", "item"):
        table = getattr(tl.model.body, f"{side}_fields")["id"].embedding.weight
        assert table.abs().sum() > 0, side


def test_the_target_leaves_out_the_fields_the_source_model_left_out(domains) -> None:
    source, target, split, _, cfg = domains
    s_split = split_dataset(source, SplitConfig(seed=0, validation_fraction=0.0))
    torch.manual_seed(0)
    model = FeatureMLP.for_dataset(source, embedding_dim=4, hidden=(8,),
                                   exclude_fields=["occupation"])
    pretrained = learner_class("pretrain")(model, cfg).fit(s_split.train, source)
    tl = Transfer(pretrained, cfg, TransferConfig(), source_features=source)
    fitted = tl.build_target(target, split.train.all_ratings())
    assert "occupation" in target.users.names
    assert "occupation" not in fitted.model.body.user_fields
    assert [s.name for s in fitted.model.user_specs] == [s.name for s in model.user_specs]


def test_lr_ratio_uses_two_learning_rates(domains) -> None:
    source, target, split, pretrained, cfg = domains
    tl = Transfer(pretrained, cfg, TransferConfig(freeze="lr-ratio", body_lr_ratio=0.25))
    fitted = tl.build_target(target)
    rates = sorted(g["lr"] for g in fitted.optimizer_.param_groups)
    assert rates == pytest.approx([cfg.meta_lr * 0.25, cfg.meta_lr])


def test_save_load_roundtrip_and_errors(domains, tmp_path) -> None:
    source, target, split, pretrained, cfg = domains
    tl = Transfer(pretrained, cfg, TransferConfig()).fit(subsample_users(split.train, 0.2, 0),
                                                        target)
    tasks = split.scenarios["new_users"]
    folder = tl.save(tmp_path / "t")
    again = Transfer.load(folder, features=target)
    assert np.array_equal(again.predict_tasks(tasks), tl.predict_tasks(tasks))
    assert again.report_.to_dict() == tl.report_.to_dict()
    with pytest.raises(CheckpointError, match="transfer.json"):
        Transfer.load(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="fit"):
        Transfer(pretrained).predict_tasks(tasks)


def test_relabelling_is_a_permutation_of_the_unshared_categories() -> None:
    rng = np.random.default_rng(0)
    mapping = relabelling(11, 0.4, rng)  # 10 categories, 6 relabelled
    assert mapping[0] == 0 and sorted(mapping) == list(range(11))
    assert int((mapping != np.arange(11)).sum()) == 6
    assert np.array_equal(relabelling(11, 1.0, rng), np.arange(11))


def test_generated_domains_share_items_not_users() -> None:
    source, target = generate_domains(TINY, shared_share=1.0, seed=3)
    assert source.num_users + target.num_users == TINY.num_users
    assert not set(source.user_ids.raw) & set(target.user_ids.raw)
    assert source.item_ids == target.item_ids
    assert all(torch.equal(source.items.values[k], target.items.values[k])
               for k in source.items.values)
    _, relabelled = generate_domains(TINY, shared_share=0.0, seed=3)
    assert not torch.equal(relabelled.users.values["occupation"],
                           target.users.values["occupation"])
    assert torch.equal(relabelled.users.values["age"] > 0, target.users.values["age"] > 0)
    with pytest.raises(ConfigError):
        generate_domains(TINY, shared_share=1.5)


@pytest.mark.slow
def test_transfer_beats_target_only_with_few_target_users() -> None:
    source, target = generate_domains(SyntheticConfig(num_users=1000, num_items=400,
                                                      num_ratings=50000), 0.75, 0)
    s_split, t_split = split_dataset(source, SplitConfig(seed=0)), split_dataset(
        target, SplitConfig(seed=0))
    cfg = LearnerConfig(epochs=5, patience=None)
    pretrained = learner_class("pretrain")(FeatureMLP.for_dataset(source), cfg).fit(
        s_split.train, source)
    few = subsample_users(t_split.train, 0.02, 0)
    tasks = t_split.scenarios["new_users"]

    def mae(learner) -> float:
        return float(np.mean(np.abs(learner.predict_tasks(tasks) - tasks.query.rating)))

    only = learner_class("pretrain")(FeatureMLP.for_dataset(target), cfg).fit(few, target)
    transferred = Transfer(pretrained, cfg, TransferConfig()).fit(few, target)
    assert mae(transferred) < mae(only) - 0.03
