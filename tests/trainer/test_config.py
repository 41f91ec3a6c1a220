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
    # every field but the world size (torchrun's environment) and the overrides of --recipe
    # (resolved from the flags given) is an option
    fields = {f.name for f in dataclasses.fields(config.TrainConfig)}
    assert fields - set(flags) == {"world_size", "overrides"}
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


def test_auto_workers_from_the_machine():
    auto = config.auto_workers
    # an 8-GPU node, one rank per GPU: 12 to 28 CPUs per rank, less one, capped
    assert [auto(True, cpus, 8, 8) for cpus in (96, 128, 224)] == [8, 8, 8]
    assert auto(True, 48, 8, 8) == 5  # 6 CPUs per rank
    assert auto(True, 16, 8, 8) == 1 and auto(True, 8, 8, 8) == 0
    assert auto(True, 32, 1, 8) == 3  # one process on an 8-GPU node: a GPU's share of CPUs
    assert auto(True, 32, 4, 0) == 7  # ranks count even where no GPU is visible
    # CPU training: the step is the bottleneck, one worker overlaps decoding with it
    assert auto(False, 2, 1, 0) == 1 and auto(False, 64, 2, 0) == 1
    assert auto(False, 1, 1, 0) == 0 and auto(False, 2, 2, 0) == 0


def test_workers_option_resolves_auto_and_keeps_a_given_number(monkeypatch):
    parser = config.build_parser()
    base = ["--shards", "s", "--out", "o"]
    assert parser.parse_args(base).workers is None  # auto
    assert parser.parse_args([*base, "--workers", "auto"]).workers is None
    assert parser.parse_args([*base, "--workers", "0"]).workers == 0
    for bad in ("-1", "many"):
        with pytest.raises(UsageError, match="--workers"):
            parser.parse_args([*base, "--workers", bad])
    monkeypatch.setattr(config, "usable_cpus", lambda: 24)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    auto = config.resolve(parser.parse_args(base), 1)
    assert config.resolve_workers(auto, "cpu").workers == 1
    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    assert config.resolve_workers(auto, "cuda").workers == 8  # 12 CPUs per rank, capped
    given = config.resolve(parser.parse_args([*base, "--workers", "3"]), 1)
    assert config.resolve_workers(given, "cuda").workers == 3
