"""The trainer's config and CLI: defaults stated once and shown in --help, config errors are
ValueErrors for library callers and one-line usage errors for the CLI."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from segcore.cli import UsageError
from trainer import config
from trainer.__main__ import main


def test_help_shows_every_default_and_each_field_has_a_flag():
    parser = config.build_parser()
    flags = {}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert "(default:" in action.help or "(required)" in action.help, action.option_strings
        flags[action.dest] = action
    # every field but the world size (torchrun's environment) is an option
    fields = {f.name for f in dataclasses.fields(config.TrainConfig)}
    assert fields - set(flags) == {"world_size"}
    defaults = config.TrainConfig(shards="s", out="o")
    for name, action in flags.items():
        if name in ("shards", "out", "batch_size", "per_rank_batch", "resume"):
            continue
        assert action.default == getattr(defaults, name), name
    assert f"(default: {defaults.batch_size})" in flags["batch_size"].help


def test_config_errors_are_value_errors_and_usage_errors_on_the_command_line(tmp_path):
    with pytest.raises(ValueError, match="--steps must be >= 1"):
        config.TrainConfig(shards="s", out="o", steps=0)
    base = ["--shards", str(tmp_path / "s-{0..1}.tar"), "--out", str(tmp_path / "o")]
    with pytest.raises(UsageError, match="--steps must be >= 1"):
        main([*base, "--steps", "0"])
    with pytest.raises(UsageError, match="--lr"):
        main([*base, "--lr", "nan"])
    with pytest.raises(UsageError, match="--device 'tpu9'"):
        main([*base, "--device", "tpu9"])
