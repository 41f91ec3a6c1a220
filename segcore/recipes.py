"""Named recipes: the published choices of the paper, by name, for the generator and the trainer.

`--recipe NAME` on `python -m generator`, `python -m trainer` and `python -m toyworld.experiment`
sets every option the recipe lists, unless that option is given on the command line: a given
option wins and is recorded as an override ("name=value") next to the recipe's name in the
run's config.json. `auto`, the default, sets nothing: the stages' own defaults, unchanged.

Each value states where it comes from: a section of the paper (Voynov, Morozov, Babenko,
"Object Segmentation Without Labels with Large-Scale Generative Models", ICML 2021) or a fact
of the authors' code (github.com/anvoynov/BigGANsAreWatching, path and name). The manual's
table of these values (docs/method.md, "Recipes") is checked against this one by the tests.

What a recipe cannot know is asked for: `paper` and `paper-flowers` need the hand-picked
direction (`--direction FILE`), and with embeddings latents (`--latents FILE.npy`) the noise
scale alpha depends on what was embedded: 0 for ImageNet embeddings, 0.2 for any other dataset
(`--latents-target imagenet|other`, or `--alpha`). Under every recipe an embeddings file without
an alpha from the recipe or the command line is refused.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from segcore.cli import UsageError
from segcore.options import flag

DEFAULT = "auto"
STAGES = ("generator", "trainer")

# alpha of z = E(I) + alpha * xi by what the embeddings were made from
ALPHA_BY_TARGET = {"imagenet": 0.0, "other": 0.2}
ALPHA_SOURCES = {
    "imagenet": "section 4.2: ImageNet-train embeddings, no z-noising (Tables 2-4)",
    "other": "section 4.1: neighbourhood size alpha 0.2 off ImageNet (Table 1)",
}
TARGETS = tuple(ALPHA_BY_TARGET)


@dataclass(frozen=True)
class Setting:
    value: Any
    source: str  # the paper's section, or the authors' code path and name


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    generator: Mapping[str, Setting] = field(default_factory=dict)
    trainer: Mapping[str, Setting] = field(default_factory=dict)
    needs_direction: bool = False  # a hand-picked direction file must be given


_CODE = "BigGANsAreWatching"
_PAPER_GENERATOR = {
    "mask": Setting(
        "lighter",
        f"section 3.1: M = [gray(G(z + h)) > gray(G(z))]; {_CODE} gan_mask_gen.py pair_to_mask",
    ),
    "shift": Setting(5.0, f"section 3.1; {_CODE} train_segmentation.py latent_shift_r = 5.0"),
    "direction_scale": Setting(
        "raw",
        f"{_CODE} gan_mask_gen.py gen_samples: z + latent_shift_r * bg_direction, the vector "
        "torch.load gives, not rescaled",
    ),
    "filters": Setting(
        ("components", "mask_size", "histogram"),
        f"section 3.3; {_CODE} train_segmentation.py connected_components, mask_size_up, "
        "maxes_filter all on",
    ),
    "connectivity": Setting(
        8,
        f"{_CODE} postprocessing.py connected_components_filter: skimage label, whose default "
        "in 2-D is 8-connectivity",
    ),
    "min_fraction": Setting(
        0.0, f"{_CODE} gan_mask_gen.py filter_by_area: only the upper bound mask_size_up = 0.5"
    ),
    "image_format": Setting(
        "png",
        f"{_CODE} trains on G's float images, never encoded; PNG is the lossless format here",
    ),
}
_PAPER_TRAINER = {
    "steps": Setting(12000, f"section 3.4; {_CODE} train_segmentation.py n_steps = 12000"),
    "batch_size": Setting(95, f"section 3.4; {_CODE} train_segmentation.py batch_size = 95"),
    "lr": Setting(1e-3, f"section 3.4; {_CODE} train_segmentation.py rate = 0.001 (Adam)"),
    "lr_drop_step": Setting(
        8000, f"section 3.4; {_CODE} train_segmentation.py steps_per_rate_decay = 8000"
    ),
    "lr_drop_factor": Setting(0.2, f"section 3.4; {_CODE} train_segmentation.py rate_decay = 0.2"),
    "loss": Setting("ce", f"{_CODE} train_segmentation.py torch.nn.CrossEntropyLoss, 2 classes"),
    "width": Setting(1.0, f"{_CODE} UNet/unet_model.py UNet(): widths 64 to 512"),
    "resolution": Setting(128, "section 3.4: 128 x 128 samples, BigBiGAN's output size"),
    "amp": Setting("off", f"{_CODE} train_segmentation.py: float32 throughout, no autocast"),
    "tf32": Setting(False, "section 3.4: GTX 1080 Ti, which has no TF32: float32 matmuls"),
}
_FLOWERS_GENERATOR = {
    **_PAPER_GENERATOR,
    "mask": Setting(
        "mean",
        f"section 4.1: for Flowers M = [G(z + h) > mean(G(z + h))]; {_CODE} gan_mask_gen.py "
        "mean_thr_mask",
    ),
    "filters": Setting(
        ("components", "histogram"),
        "section 4.1: for Flowers the mask area filter is not applied",
    ),
}

RECIPES: dict[str, Recipe] = {
    "auto": Recipe(
        "auto",
        "the stages' defaults: the GAN's shipped or picked direction, the affine mask rule when "
        "the direction file carries fitted colour maps, --min-fraction as given, JPEG images",
    ),
    "paper": Recipe(
        "paper",
        "the published recipe: a hand-picked h_bg, the lighter mask, the authors' three filters, "
        "lossless images, the U-Net schedule of section 3.4 in float32",
        generator=_PAPER_GENERATOR,
        trainer=_PAPER_TRAINER,
        needs_direction=True,
    ),
    "paper-flowers": Recipe(
        "paper-flowers",
        "the paper's Flowers variant: the mean-threshold mask and no mask-size filter, "
        "otherwise as paper (embeddings of Flowers images: alpha 0.2)",
        generator={**_FLOWERS_GENERATOR, "alpha": Setting(0.2, ALPHA_SOURCES["other"])},
        trainer=_PAPER_TRAINER,
        needs_direction=True,
    ),
}
NAMES = tuple(RECIPES)


def get(name: str) -> Recipe:
    """The recipe called `name`; UsageError (one line) naming the choices otherwise."""
    if name not in RECIPES:
        raise UsageError(f"unknown recipe {name!r}; choose {', '.join(NAMES)}")
    return RECIPES[name]


def add_option(parser: argparse.ArgumentParser, stage: str) -> None:
    """`--recipe` with its choices and what each sets for `stage`."""
    sets = "; ".join(
        f"{r.name}: {' '.join(flag(n) for n in getattr(r, stage)) or 'nothing'}"
        for r in RECIPES.values()
    )
    parser.add_argument(
        "--recipe",
        default=DEFAULT,
        help=f"named settings, each overridable by its own flag ({sets}) (default: {DEFAULT})",
    )


def given_options(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> set[str]:
    """The destinations of the options given on the command line `argv` (None: sys.argv).

    The parser runs once more with every default replaced by a marker (and then restored), so
    an option given with its default value still counts as given."""
    import sys

    marker = object()
    saved = [(action, action.default) for action in parser._actions]
    try:
        for action, _ in saved:
            action.default = marker
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    finally:
        for action, default in saved:
            action.default = default
    return {k for k, v in vars(args).items() if v is not marker}


def fill(recipe: Recipe, stage: str, args: argparse.Namespace, given: Iterable[str]) -> None:
    """Set on `args` each option `recipe` lists for `stage` that was not given."""
    given = set(given)
    for name, setting in getattr(recipe, stage).items():
        if hasattr(args, name) and name not in given:
            setattr(args, name, setting.value)


def overrides(
    recipe: Recipe, stage: str, values: Mapping[str, Any], given: Iterable[str]
) -> tuple[str, ...]:
    """The overrides: "name=value" for each option of `recipe` (for `stage`) given with a value
    other than the recipe's; `values` holds the options' final values (parsed flags or a
    config)."""
    given = set(given)
    out = []
    for name, setting in getattr(recipe, stage).items():
        given_other = name in given and name in values
        if given_other and _normal(values[name]) != _normal(setting.value):
            out.append(f"{name}={_text(values[name])}")
    return tuple(out)


def apply(
    recipe: Recipe, stage: str, args: argparse.Namespace, given: Iterable[str]
) -> tuple[str, ...]:
    """`fill` then `overrides` on the parsed flags: -> the overrides."""
    fill(recipe, stage, args, given)
    return overrides(recipe, stage, vars(args), given)


def describe(recipe: Recipe, overrides: Sequence[str]) -> str:
    """One line for the log: the recipe, what it is, and the options given over it."""
    over = f"; given over it: {', '.join(overrides)}" if overrides else ""
    return f"recipe {recipe.name}: {recipe.summary}{over}"


def _normal(value: Any) -> Any:
    return tuple(value) if isinstance(value, list | tuple) else value


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(map(str, value)) or "none"
    return str(value)


def resolve_alpha(
    recipe: Recipe, embeddings: bool, alpha: float | None, target: str | None
) -> float | None:
    """The alpha of embeddings latents: `--alpha` if given, else the one of `--latents-target`,
    else the recipe's; UsageError (naming the paper's values) when none gives one. None for the
    prior (alpha unused) when no alpha was given."""
    if target is not None and target not in ALPHA_BY_TARGET:
        raise UsageError(f"--latents-target must be one of {', '.join(TARGETS)}, got {target!r}")
    if alpha is not None:
        return alpha
    if target is not None:
        return ALPHA_BY_TARGET[target]
    if "alpha" in recipe.generator:
        return recipe.generator["alpha"].value
    if not embeddings:
        return None
    raise UsageError(
        f"--latents FILE.npy needs the noise scale alpha (--recipe {recipe.name} sets none): "
        "give --latents-target imagenet (alpha 0, the paper's ImageNet embeddings) or "
        "--latents-target other (alpha 0.2, the paper's other datasets), or --alpha A"
    )


def require_direction(recipe: Recipe, direction: str | None) -> None:
    if recipe.needs_direction and not direction:
        raise UsageError(
            f"--recipe {recipe.name} needs --direction FILE: the hand-picked direction h_bg "
            "(section 3.1), e.g. the authors' bg_direction.pth or a .npy vector"
        )
