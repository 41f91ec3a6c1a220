"""The trainer under --recipe (trainer/recipe.py) and its count of how often each sample is seen
(trainer/pool.py)."""

from __future__ import annotations

import json

import pytest

from segcore import schema
from segcore.cli import UsageError
from trainer import config, pool, recipe


def resolve(argv: list[str], world: int = 1) -> config.TrainConfig:
    parser = config.build_parser()
    base = ["--shards", "s/shard-{000000..000001}.tar", "--out", "o"]
    return recipe.resolve(parser, parser.parse_args(base + argv), base + argv, world)


def test_the_paper_recipe_sets_the_schedule_and_records_what_was_given_over_it():
    cfg = resolve(["--recipe", "paper", "--steps", "600", "--lr", "0.001"])
    assert (cfg.recipe, cfg.overrides) == ("paper", ("steps=600",))  # lr given at its value
    assert (cfg.steps, cfg.batch_size, cfg.lr, cfg.lr_drop_step, cfg.lr_drop_factor) == (
        600, 95, 1e-3, 8000, 0.2,
    )  # fmt: skip
    assert (cfg.loss, cfg.width, cfg.resolution, cfg.amp, cfg.tf32) == (
        "ce",
        1.0,
        128,
        "off",
        False,
    )


def test_auto_changes_nothing_and_a_per_rank_batch_is_recorded_as_the_global_one():
    assert resolve([]) == config.TrainConfig(shards="s/shard-{000000..000001}.tar", out="o")
    cfg = resolve(["--recipe", "paper", "--per-rank-batch", "12"], world=8)
    assert (cfg.batch_size, cfg.per_rank_batch, cfg.overrides) == (96, 12, ("batch_size=96",))
    same = resolve(["--recipe", "paper", "--per-rank-batch", "19"], world=5)
    assert (same.batch_size, same.overrides) == (95, ())


def test_an_unknown_recipe_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown recipe 'fast'; choose auto, paper"):
        resolve(["--recipe", "fast"])


def test_recipe_and_overrides_do_not_stop_a_resume_or_change_the_run_hash():
    assert {"recipe", "overrides"} <= config.RESUME_MAY_DIFFER
    plain = resolve(["--amp", "off", "--no-tf32"])
    named = resolve(["--recipe", "paper", "--steps", "12000"])
    assert config.run_hash(named) == config.run_hash(plain)


def write_run(folder, samples_per_shard: int, shards: int) -> list[str]:
    folder.mkdir(parents=True)
    doc = {"config": {"samples_per_shard": samples_per_shard}}
    (folder / schema.RUN_CONFIG).write_text(json.dumps(doc))
    return [str(folder / schema.shard_name(i)) for i in range(shards)]


def test_the_pool_is_counted_from_each_folders_config_else_from_a_shard(tmp_path):
    a = write_run(tmp_path / "a", 1000, 3)
    b = write_run(tmp_path / "b", 500, 2)
    never = []
    assert pool.pool_samples(a + b, never.append) == 4000 and never == []
    bare = [str(tmp_path / "c" / schema.shard_name(i)) for i in range(4)]
    counted = []
    assert pool.pool_samples(bare, lambda u: counted.append(u) or 7) == 28
    assert counted == bare[:1]  # one shard is read, once
    assert pool.pool_samples(bare, lambda u: None) is None


def test_the_log_line_says_how_often_each_sample_is_seen():
    assert pool.reuse_line(12000, 95, 499000, 499) == (
        "trainer: 12,000 steps x 95 = 1,140,000 draws from a pool of 499,000 samples "
        "(499 shards): each sample is seen 2.28 times on average (epochs over the pool; the "
        "paper draws every sample fresh)"
    )
    assert pool.reuse_line(10, 4, None, 2) == "trainer: 10 steps x 4 = 40 draws from 2 shards"
