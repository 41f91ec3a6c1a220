"""The trainer's options under a named recipe (segcore.recipes): the recipe's values for the
options not given on the command line, the given ones recorded as overrides in the config."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence

from segcore import recipes
from segcore.config import to_dict
from trainer import config


def resolve(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    argv: Sequence[str] | None,
    world_size: int,
) -> config.TrainConfig:
    """The frozen config of the parsed flags under `--recipe` (UsageError if invalid)."""
    recipe = recipes.get(args.recipe)
    given = recipes.given_options(parser, argv)
    if "per_rank_batch" in given:
        # the global batch follows from the per-rank one: the recipe's batch does not apply,
        # and the resolved batch is recorded as an override when it differs from the recipe's
        given.add("batch_size")
    recipes.fill(recipe, "trainer", args, given)
    cfg = config.resolve(args, world_size)
    overrides = recipes.overrides(recipe, "trainer", to_dict(cfg), given)
    return dataclasses.replace(cfg, recipe=recipe.name, overrides=overrides)
