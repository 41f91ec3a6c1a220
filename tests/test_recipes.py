"""Named recipes (segcore.recipes): each resolves to the values the manual documents, the
options given over a recipe win and are recorded, and what a recipe cannot know (the direction,
the alpha of an embeddings file) is a one-line error when missing."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from segcore import recipes
from segcore.cli import UsageError

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(
    r"^\| `(?P<stage>generator|trainer)` \| `--(?P<flag>[a-z0-9-]+)` \|(?P<cells>.*)\|$"
)


def documented() -> dict[str, dict[str, dict[str, str]]]:
    """recipe -> stage -> option -> value, as docs/method.md's recipe table writes them."""
    lines = (ROOT / "docs" / "method.md").read_text(encoding="utf-8").splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("| stage | option |"))
    names = [c.strip(" `") for c in lines[head].strip("|").split("|")[2:-1]]
    out: dict = {name: {"generator": {}, "trainer": {}} for name in names}
    for line in lines[head + 2 :]:
        m = ROW.match(line)
        if not m:
            break
        cells = [c.strip() for c in m.group("cells").split("|")][: len(names)]
        for name, cell in zip(names, cells, strict=True):
            if cell not in ("", "-"):
                out[name][m.group("stage")][m.group("flag").replace("-", "_")] = cell.strip("`")
    return out


def shown(value) -> str:
    """A recipe value as the table writes it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(value) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def test_each_recipe_resolves_to_the_values_the_manual_documents():
    docs = documented()
    assert sorted(docs) == sorted(recipes.NAMES)
    for name, recipe in recipes.RECIPES.items():
        for stage in recipes.STAGES:
            ours = {k: shown(s.value) for k, s in getattr(recipe, stage).items()}
            assert docs[name][stage] == ours, (name, stage)


def test_the_paper_recipes_hold_the_published_values():
    paper = recipes.get("paper")
    gen = {k: s.value for k, s in paper.generator.items()}
    assert gen == {
        "mask": "lighter", "shift": 5.0, "direction_scale": "raw",
        "filters": ("components", "mask_size", "histogram"), "connectivity": 8,
        "min_fraction": 0.0, "image_format": "png",
    }  # fmt: skip
    train = {k: s.value for k, s in paper.trainer.items()}
    assert train == {
        "steps": 12000, "batch_size": 95, "lr": 1e-3, "lr_drop_step": 8000,
        "lr_drop_factor": 0.2, "loss": "ce", "width": 1.0, "resolution": 128, "amp": "off",
        "tf32": False,
    }  # fmt: skip
    flowers = recipes.get("paper-flowers")
    assert flowers.generator["mask"].value == "mean"
    assert flowers.generator["filters"].value == ("components", "histogram")
    assert flowers.generator["alpha"].value == 0.2 and flowers.trainer == paper.trainer
    assert recipes.get("auto").generator == {} and recipes.get("auto").trainer == {}
    for recipe in recipes.RECIPES.values():  # every value names where it comes from
        for setting in [*recipe.generator.values(), *recipe.trainer.values()]:
            assert "section" in setting.source or "BigGANsAreWatching" in setting.source


def test_an_unknown_recipe_is_one_line_naming_the_choices():
    with pytest.raises(
        UsageError, match=r"^unknown recipe 'papr'; choose auto, paper, paper-flowers$"
    ):
        recipes.get("papr")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("--mask", default="auto")
    p.add_argument("--shift", type=float, default=None)
    p.add_argument("--connectivity", type=int, default=8)
    p.add_argument("--cache", action=argparse.BooleanOptionalAction, default=True)
    return p


def test_given_options_counts_a_flag_given_at_its_default_and_restores_the_defaults():
    p = parser()
    assert recipes.given_options(p, ["--connectivity", "8", "--no-cache"]) == {
        "connectivity",
        "cache",
    }
    assert recipes.given_options(p, []) == set()
    assert vars(p.parse_args([])) == {
        "mask": "auto",
        "shift": None,
        "connectivity": 8,
        "cache": True,
    }


def test_a_given_option_wins_over_the_recipe_and_is_recorded_as_an_override():
    p = parser()
    argv = ["--mask", "affine", "--connectivity", "8"]
    args = p.parse_args(argv)
    overrides = recipes.apply(
        recipes.get("paper"), "generator", args, recipes.given_options(p, argv)
    )
    assert overrides == ("mask=affine",)  # connectivity given at the recipe's value: no override
    assert args.mask == "affine" and args.shift == 5.0 and args.connectivity == 8
    assert not hasattr(args, "filters")  # options this command line lacks are left alone


def test_alpha_comes_from_the_flag_the_target_or_the_recipe_and_is_never_silent():
    auto, paper = recipes.get("auto"), recipes.get("paper")
    flowers = recipes.get("paper-flowers")
    assert recipes.resolve_alpha(auto, True, 0.5, "imagenet") == 0.5
    assert recipes.resolve_alpha(paper, True, None, "imagenet") == 0.0
    assert recipes.resolve_alpha(auto, True, None, "other") == 0.2
    assert recipes.resolve_alpha(flowers, True, None, None) == 0.2
    assert recipes.resolve_alpha(paper, False, None, None) is None  # the prior: unused
    for recipe in (auto, paper):
        with pytest.raises(UsageError, match=r"alpha 0, .*alpha 0\.2") as err:
            recipes.resolve_alpha(recipe, True, None, None)
        assert "\n" not in str(err.value) and f"--recipe {recipe.name}" in str(err.value)


def test_the_paper_recipes_need_a_direction():
    recipes.require_direction(recipes.get("auto"), None)
    recipes.require_direction(recipes.get("paper"), "h_bg.npy")
    for name in ("paper", "paper-flowers"):
        with pytest.raises(UsageError, match=f"--recipe {name} needs --direction FILE"):
            recipes.require_direction(recipes.get(name), None)


def test_the_experiment_driver_passes_the_recipe_and_only_the_given_generator_options():
    import sys

    from toyworld import DEFAULT_DIRECTION
    from toyworld.experiment import ExperimentConfig

    cfg = ExperimentConfig(recipe="paper")
    gen = cfg.generation().command(Path("s"))
    assert gen[gen.index("--direction") + 1] == str(DEFAULT_DIRECTION)
    assert "--mask" not in gen and "--min-fraction" not in gen
    assert gen[-2:] == ["--recipe", "paper"]
    given = cfg.generation(given=frozenset({"mask"})).command(Path("s"))
    assert given[given.index("--mask") + 1] == "auto" and "--min-fraction" not in given
    train = cfg.training().command("p", Path("u"), resume=False)
    assert train[0] == sys.executable and train[-2:] == ["--recipe", "paper"]
    with pytest.raises(UsageError, match="unknown recipe 'x'"):
        ExperimentConfig(recipe="x")


@pytest.mark.parametrize(
    ("module", "argv", "message"),
    [
        ("generator", ["--recipe", "paper", "--gan", "random"], "--recipe paper needs --direction"),
        ("generator", ["--recipe", "nope"], "unknown recipe 'nope'"),
        ("trainer", ["--recipe", "nope"], "unknown recipe 'nope'"),
    ],
)
def test_bad_recipe_input_is_one_line_and_exit_2(tmp_path, module, argv, message):
    import subprocess
    import sys

    base = [
        "--shards",
        "1" if module == "generator" else "s-{0..1}.tar",
        "--out",
        str(tmp_path / "o"),
    ]
    run = subprocess.run(
        [sys.executable, "-m", module, *base, *argv], capture_output=True, text=True, cwd=ROOT
    )
    assert run.returncode == 2 and message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert not (tmp_path / "o").exists()


def test_the_log_line_names_the_recipe_and_what_was_given_over_it():
    paper = recipes.get("paper")
    assert recipes.describe(paper, ("steps=600",)) == (
        f"recipe paper: {paper.summary}; given over it: steps=600"
    )
    assert recipes.describe(paper, ()) == f"recipe paper: {paper.summary}"
