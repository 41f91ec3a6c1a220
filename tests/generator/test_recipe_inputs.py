"""What the generator resolves before any sample: the alpha of an embeddings file (never
silent), the norm of a stored direction (reported once, recorded, kept with
--direction-scale raw), and --recipe with the options given over it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from generator.direction_file import load_direction, save_direction
from generator.shard_maker import ShardMaker
from segcore.cli import UsageError
from tests.generator.conftest import small_config


def test_embeddings_without_an_alpha_are_refused_naming_the_papers_values(tmp_path):
    emb = tmp_path / "emb.npy"
    np.save(emb, np.zeros((3, 120), np.float32))
    with pytest.raises(UsageError, match=r"needs the noise scale alpha .*imagenet \(alpha 0,"):
        small_config(latents=str(emb))
    assert small_config(latents=str(emb), latents_target="imagenet")[0].alpha == 0.0
    assert small_config(latents=str(emb), latents_target="other")[0].alpha == 0.2
    assert small_config(latents=str(emb), alpha=0.1, latents_target="other")[0].alpha == 0.1


def raw_vector(tmp_path, norm: float):
    vec = np.random.default_rng(3).standard_normal(120).astype(np.float32)
    vec *= np.float32(norm / np.linalg.norm(vec))
    path = tmp_path / "h_bg.npy"
    np.save(path, vec)
    return path, vec


def test_a_raw_vector_norm_is_reported_once_and_recorded(tmp_path, capsys):
    path, vec = raw_vector(tmp_path, 3.0)
    unit, _ = small_config(direction_file=str(path))
    out = capsys.readouterr().out
    assert out.count("has norm 3 as stored; it is scaled to norm 1") == 1
    assert unit.direction_norm == pytest.approx(3.0, rel=1e-6)
    assert np.linalg.norm(unit.direction) == pytest.approx(1.0, abs=1e-6)
    raw, _ = small_config(direction_file=str(path), direction_scale="raw")
    assert "--direction-scale raw keeps it" in capsys.readouterr().out
    assert raw.direction == tuple(float(v) for v in vec)  # the stored vector, bit for bit
    assert raw.hash != unit.hash
    delta = ShardMaker(raw).delta.numpy()  # what --shift multiplies: 5 x the stored vector
    assert np.array_equal(delta, np.float32(5.0) * vec)


def test_a_unit_vector_says_nothing(tmp_path, capsys):
    path, _ = raw_vector(tmp_path, 1.0)
    small_config(direction_file=str(path))
    assert "norm" not in capsys.readouterr().out


def test_the_paper_recipe_on_the_command_line_records_itself_and_the_overrides(tmp_path):
    from generator.__main__ import build_parser
    from segcore import recipes

    path, _ = raw_vector(tmp_path, 2.0)
    argv = ["--shards", "1", "--out", str(tmp_path / "o"), "--gan", "random", "--recipe", "paper",
            "--direction", str(path), "--min-fraction", "0.01"]  # fmt: skip
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = recipes.apply(recipes.get("paper"), "generator", args,
                              recipes.given_options(parser, argv))  # fmt: skip
    assert overrides == ("min_fraction=0.01",)
    config, _ = small_config(
        direction_file=str(path), recipe="paper", overrides=overrides,
        **{k: getattr(args, k) for k in ("mask", "shift", "direction_scale", "filters",
                                          "connectivity", "min_fraction", "image_format")},
    )  # fmt: skip
    doc = json.loads(
        json.dumps({"recipe": config.recipe, "overrides": config.overrides, "mask": config.mask})
    )
    assert doc == {"recipe": "paper", "overrides": ["min_fraction=0.01"], "mask": "lighter"}
    assert (config.shift, config.direction_scale, config.image_format) == (5.0, "raw", "png")
    assert config.direction_norm == pytest.approx(2.0, rel=1e-6)


def test_the_generator_cli_refuses_a_paper_recipe_without_a_direction(tmp_path):
    from generator.__main__ import main

    with pytest.raises(UsageError, match="--recipe paper needs --direction FILE"):
        main(["--shards", "1", "--out", str(tmp_path / "o"), "--gan", "random",
              "--recipe", "paper"])  # fmt: skip
    with pytest.raises(UsageError, match="unknown recipe 'best'"):
        main(["--shards", "1", "--out", str(tmp_path / "o"), "--recipe", "best"])
    assert not (tmp_path / "o").exists()


def test_a_picked_direction_file_records_the_norm_it_was_made_from(tmp_path):
    vec = np.zeros(120)
    vec[:2] = (3.0, 4.0)
    path = tmp_path / "d.json"
    save_direction(str(path), vec, gan="random", shift=5.0, index=0, sign=1)
    doc = json.loads(path.read_text())
    assert doc["source_norm"] == 5.0 and doc["vector"][:2] == [0.6, 0.8]
    direction = load_direction(str(path), 120)
    assert direction.norm == pytest.approx(1.0) and direction.info["source_norm"] == 5.0
