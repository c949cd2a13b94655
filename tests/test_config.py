from pathlib import Path

import numpy as np
import pytest

from metarec.config import RunConfig, config_from_dict, load_config, reader_options
from metarec.errors import ConfigError


def test_defaults_round_trip_through_toml(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text(RunConfig().to_toml())
    assert load_config(path) == RunConfig()


def test_overrides_parse_values_and_nested_sections() -> None:
    config = load_config(None, ["learner.epochs=3", "learner.inner_lr=0.1",
                                "learners=['maml', 'anil']", "split.protocol=time",
                                "model.hidden=[16, 8]", "learner.grad_clip=none",
                                "per_learner.maml.inner_steps=2"])
    assert config.learner.epochs == 3 and config.learner.inner_lr == 0.1
    assert config.learners == ["maml", "anil"]
    assert config.split.protocol == "time"
    assert config.model.hidden == [16, 8]
    assert config.learner.grad_clip is None
    assert config.learner_config("maml").inner_steps == 2
    assert config.learner_config("anil").inner_steps == config.learner.inner_steps
    assert config.learner_config("reptile").inner_lr == 0.02


def test_int_for_float_field_is_accepted() -> None:
    assert load_config(None, ["learner.inner_lr=1"]).learner.inner_lr == 1.0


@pytest.mark.parametrize(("override", "message"), [
    ("learner.epoch=3", "unknown field(s) ['epoch'] in [learner]"),
    ("bogus=1", "unknown setting(s) ['bogus']"),
    ("learner", "must look like section.field=value"),
    ("split.protocol=weird", "split protocol must be 'melu' or 'time'"),
    ("per_learner.maml.nope=1", "[per_learner.maml]"),
    ("model.kind=Transformer", "model.kind must be one of FeatureMLP, FeatureMF, BiasedMF"),
    ("model.joint_hidden=[8]", "model.joint_hidden is an option of FeatureMF, not of "
                               "FeatureMLP"),
    ("learner.patience=0", "patience must be >= 1 (or unset"),
    ("learner.bucket=0", "bucket must be >= 1"),
    ("learner.meta_lr=0", "meta_lr > 0"),
    ("learner.inner_lr=-0.1", "inner_lr must be >= 0"),
    ("learner.grad_clip=0", "grad_clip must be > 0"),
    ("seeds={0,1}", "seeds: expected a list of integers, got {0, 1}"),
    ("seeds=1j", "seeds: expected a list of integers, got 1j"),
    ("learner.inner_lr=1" + "0" * 400, "[learner] inner_lr: expected a number"),
])
def test_bad_settings_name_the_field(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        config = load_config(None, [override])
        config.learner_config("maml")
    assert message in str(error.value)


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[learner\nepochs = 3")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(bad)


BENCHMARK_CONFIGS = sorted((Path(__file__).parents[1] / "benchmarks" / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", BENCHMARK_CONFIGS, ids=lambda p: p.stem)
def test_every_benchmark_config_loads(path: Path) -> None:
    """The configs that README and the experiment log name are valid run configs, every
    learner's settings included (an unknown or mistyped field fails here, not after an
    hour of training)."""
    config = load_config(path)
    for name in config.learners + list(config.per_learner):
        config.learner_config(name)


def test_the_benchmark_configs_are_found() -> None:
    assert {"ml1m_ridge_rank", "ml1m_ridge_average", "ml1m_ridge_clamp",
            "ml1m_ridge_memory", "ml1m_ridge_neighbours"} <= {
        p.stem for p in BENCHMARK_CONFIGS}


def test_unset_values_round_trip_through_config_toml(tmp_path: Path) -> None:
    """TOML has no null: an unset setting is written as "none" and read back as None,
    in [learner], [data] and [per_learner.*] alike."""
    config = load_config(None, ["learner.patience=none", "learner.grad_clip=none",
                                "per_learner.maml.grad_clip=none",
                                "per_learner.ridge.memory_precision=2.0",
                                "data.data_dir=none"])
    path = tmp_path / "config.toml"
    path.write_text(config.to_toml())
    again = load_config(path)
    assert again == config
    assert again.learner.patience is None and again.learner.grad_clip is None
    assert again.learner_config("maml").grad_clip is None
    assert 'patience = "none"' in path.read_text()


@pytest.mark.parametrize(("values", "message"), [
    ({"learner": {"inner_lr": "abc"}}, "[learner] inner_lr: expected a number, got 'abc'"),
    ({"learner": {"meta_lr": "abc"}}, "[learner] meta_lr: expected a number, got 'abc'"),
    ({"learner": {"epochs": "abc"}}, "[learner] epochs: expected an integer, got 'abc'"),
    ({"learner": {"grad_clip": "abc"}}, "[learner] grad_clip: expected a number or none"),
    ({"model": {"embedding_dim": "abc"}}, "[model] embedding_dim: expected an integer"),
    ({"seeds": 0}, "seeds: expected a list of integers, got 0; write a list: seeds = [0] in "
                   "TOML, --set seeds=[0] on the command line"),
    ({"evaluation": {"ks": 3}}, "[evaluation] ks: expected a list of integers, got 3"),
    ({"learners": "maml-r,reptile"}, 'write a list: learners = ["maml-r", "reptile"] in '
                                     "TOML, --set learners=[maml-r,reptile] on the command"),
    ({"learners": "maml-r"}, "learners: expected a list of strings, got 'maml-r'"),
    ({"per_learner": {"reptile": 3}}, "[per_learner] reptile: expected a table"),
    ({"per_learner": {"maml": {"inner_lr": "x"}}}, "[per_learner.maml] inner_lr: expected a "
                                                   "number"),
    ({"data": {"options": 3}}, "[data] options: expected a table, got 3"),
    ({"learner": 3}, "[learner] must be a table"),
])
def test_values_of_the_wrong_type_are_one_line_errors(values: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        config_from_dict(values, "run.toml")
    assert message in str(error.value)
    assert str(error.value).startswith("run.toml: ") and "\n" not in str(error.value)


def test_lists_of_bare_words_parse_on_the_command_line() -> None:
    config = load_config(None, ["learners=[maml-r,reptile]", "evaluation.shots=[]",
                                "evaluation.ks=[1, 3]"])
    assert config.learners == ["maml-r", "reptile"]
    assert config.evaluation.shots == [] and config.evaluation.ks == [1, 3]


def test_a_seed_given_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"seeds: \[0\] given more than once"):
        load_config(None, ["seeds=[0, 1, 0]"])


def test_reader_options_name_the_unknown_option_and_convert_types() -> None:
    with pytest.raises(ConfigError) as error:
        reader_options("synthetic", {"num_users": 10, "bogus": 3})
    assert "unknown option(s) ['bogus'] in [data.options] for synthetic" in str(error.value)
    assert "num_users" in str(error.value)
    assert reader_options("synthetic", {"year_range": [1990, 1999], "noise_sd": 1}) == {
        "year_range": (1990, 1999), "noise_sd": 1.0}
    with pytest.raises(ConfigError, match=r"\[data.options\] num_users: expected an integer"):
        reader_options("synthetic", {"num_users": "many"})


@pytest.mark.parametrize(("values", "message"), [
    ({"learner": {"meta_lr": float("inf")}}, "learner.meta_lr must be a finite number"),
    ({"learner": {"prior_precision": float("nan")}}, "prior_precision must be a finite"),
    ({"learner": {"weight_decay": -1.0}}, "weight_decay must be >= 0, got -1.0"),
    ({"model": {"hidden": [0]}}, "model: hidden must be layer widths"),
    ({"model": {"factors": 0}}, "model: factors must be a whole number >= 1"),
])
def test_values_out_of_range_are_one_line_errors(values: dict, message: str) -> None:
    """``inf`` reaches a TOML file (``meta_lr = inf``) and had trained a NaN model."""
    with pytest.raises(ConfigError) as error:
        config_from_dict(values, "run.toml")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_learner_settings_built_in_python_are_type_checked() -> None:
    from metarec.learners import LearnerConfig

    for values, message in [({"epochs": 1.5}, "learner.epochs must be a whole number"),
                            ({"patience": True}, "learner.patience must be a whole number"),
                            ({"inner_lr": "0.1"}, "learner.inner_lr must be a finite number"),
                            ({"grad_clip": float("inf")}, "learner.grad_clip must be a finite")]:
        with pytest.raises(ConfigError, match=message):
            LearnerConfig(**values)
    assert LearnerConfig(seed=np.int64(3), grad_clip=None, memory_precision=None).seed == 3


def test_every_config_file_written_names_its_data_by_absolute_path(tmp_path: Path,
                                                                   monkeypatch) -> None:
    """run, transfer, distill and train all write to_toml(): a relative path had been
    written as typed, readable from the original working directory only."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "log.csv").write_text("user,item,rating\n1,2,3\n")
    monkeypatch.chdir(tmp_path)
    config = load_config(None, ["data.dataset='data/log.csv'", "data.data_dir='data'"])
    (tmp_path / "run.toml").write_text(config.to_toml())
    monkeypatch.chdir(tmp_path / "data")  # read back from elsewhere
    written = load_config(tmp_path / "run.toml")
    assert written.data.dataset == str(tmp_path / "data" / "log.csv")
    assert written.data.data_dir == str(tmp_path / "data")
    named = load_config(None, ["data.dataset='synthetic'"])  # a registered name stays
    (tmp_path / "named.toml").write_text(named.to_toml())
    assert load_config(tmp_path / "named.toml").data.dataset == "synthetic"
