from pathlib import Path

import pytest

from metarec.config import RunConfig, load_config
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
