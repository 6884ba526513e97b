"""Configs: YAML -> frozen dataclasses, --set overrides, unknown keys are errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from prunegym.experiments.config import (
    Config,
    ConfigError,
    apply_overrides,
    from_dict,
    load_config,
    parse_override,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_and_round_trip(tmp_path):
    cfg = load_config()
    assert cfg == Config() and cfg.search.agent == "ddpg" and cfg.env.ratio == 0.5
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 3
    path = tmp_path / "c.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path) == cfg
    assert from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("name", ["digits.yaml", "resnet20-fmnist.yaml"])
def test_shipped_configs_load(name):
    cfg = load_config(CONFIGS / name)
    assert cfg.env.ratio == 0.5 and cfg.search.agent == "ddpg"


def test_overrides_parse_yaml_values():
    cfg = load_config(CONFIGS / "digits.yaml", ["search.episodes=7", "env.ratio=0.25",
                                                "search.options.noise={sigma: 0.2}",
                                                "run.out=null", "search.agent=ddpg"])  # fmt: skip
    assert cfg.search.episodes == 7 and cfg.env.ratio == 0.25 and cfg.run.out is None
    assert cfg.search.options["noise"] == {"sigma": 0.2} and cfg.search.agent == "ddpg"
    assert cfg.search.options["warmup_episodes"] == 20  # untouched keys stay
    assert parse_override("a.b=1e-3") == ("a.b", 1e-3)
    assert cfg.replace(**{"seed": 4}).seed == 4
    assert apply_overrides({"a": {"b": 1}}, {"a.c": 2}) == {"a": {"b": 1, "c": 2}}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["search.episode=5"], "unknown config key search.episode"),
        (["bogus=1"], "unknown config key bogus"),
        (["env.ratio=abc"], "env.ratio must be a number"),
        (["seed=true"], "seed must be an integer"),
        (["search.episodes=2.5"], "search.episodes must be an integer"),
        (["run.tensorboard=3"], "run.tensorboard must be true or false"),
        (["env=3"], "env must be a mapping"),
        (["noequals"], "--set expects key=value"),
        (["a..b=1"], "--set expects key=value"),
        (["seed=[1"], "not valid YAML"),
        (["seed.x=1"], "seed is not a mapping"),
    ],
)
def test_bad_configs_are_one_line_errors(overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config(CONFIGS / "digits.yaml", overrides)
    assert "\n" not in str(info.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(bad)


def test_switching_the_agent_drops_the_files_options_with_a_note():
    notes: list[str] = []
    cfg = load_config(CONFIGS / "digits.yaml", ["search.agent=random"], notes=notes)
    assert cfg.search.agent == "random" and cfg.search.options == {}
    assert len(notes) == 1 and "warmup_episodes" in notes[0] and "'ddpg'" in notes[0]
    # options given on the command line are the new agent's, whatever their order
    for sets in (["search.agent=evolution", "search.options.population=3"],
                 ["search.options.population=3", "search.agent=evolution"]):  # fmt: skip
        cfg = load_config(CONFIGS / "digits.yaml", sets)
        assert cfg.search.options == {"population": 3}
    # naming the same agent keeps them, and Config.replace never drops anything
    assert load_config(CONFIGS / "digits.yaml", ["search.agent=ddpg"]).search.options == {
        "warmup_episodes": 20
    }
    replaced = load_config(CONFIGS / "digits.yaml").replace(**{"search.agent": "td3"})
    assert replaced.search.options == {"warmup_episodes": 20}
