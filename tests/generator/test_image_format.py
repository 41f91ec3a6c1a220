"""Shard images as JPEG (the default, bytes unchanged) or lossless PNG (`--image-format png`),
read by the same decoders; the generator's recipe, alpha and direction-norm resolution."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest

from generator.config import GeneratorConfig
from generator.shard_maker import ShardMaker
from generator.shards import read_shard
from segcore import schema
from segcore.cli import UsageError
from segcore.samples import decode_sample, encode_jpeg, encode_mask_png, encode_sample
from tests.generator.conftest import small_config
from trainer import data, tarstream


def noisy(seed: int = 0, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_png_images_decode_to_the_exact_pixels_and_jpeg_samples_keep_their_bytes():
    img, mask = noisy(), np.eye(32, dtype=bool)
    png = encode_sample("k", img, mask, {}, jpeg_quality=95, png_compression=1, image_format="png")
    jpg = encode_sample("k", img, mask, {}, jpeg_quality=95, png_compression=1)
    assert sorted(png) == ["__key__", "image.png", "json", "png"]
    assert sorted(jpg) == ["__key__", "jpg", "json", "png"]
    assert jpg["jpg"] == encode_jpeg(img, 95) and jpg["png"] == encode_mask_png(mask, 1)
    back, m = decode_sample(png)
    assert np.array_equal(back, img) and np.array_equal(m, mask * np.uint8(255))
    lossy, _ = decode_sample(jpg)
    assert not np.array_equal(lossy, img)  # noise is what JPEG loses


def test_a_sample_needs_exactly_one_image_field():
    sample = encode_sample("k", noisy(), np.eye(32, dtype=bool), {}, jpeg_quality=95,
                           png_compression=1)  # fmt: skip
    both = {**sample, "image.png": b"x"}
    with pytest.raises(ValueError, match=r"sample 'k' has two image fields \['jpg', 'image.png'\]"):
        decode_sample(both)
    none = {k: v for k, v in sample.items() if k != "jpg"}
    with pytest.raises(ValueError, match="sample 'k' has no image field"):
        decode_sample(none)
    with pytest.raises(ValueError, match="unknown image format 'webp'"):
        encode_sample("k", noisy(), np.eye(32, dtype=bool), {}, jpeg_quality=95,
                      png_compression=1, image_format="webp")  # fmt: skip


def test_a_png_shard_is_read_by_the_trainer_and_the_inspection_reader(tmp_path):
    config, _ = small_config(shards=1, image_format="png")
    assert config.image_format == "png"
    out = str(tmp_path / "run")
    ShardMaker(config).make_shard(0, out)
    url = f"{out}/{schema.shard_name(0)}"
    with tarfile.open(url) as tar:
        names = tar.getnames()
    assert names[:3] == ["000000_000000.image.png", "000000_000000.json", "000000_000000.png"]
    counter = data.ErrorCounter()
    raws = list(data.iter_shard(url, counter))
    assert counter.bad == 0 and len(raws) == 4 and "image.png" in raws[0]
    with open(url, "rb") as f:  # the tar reader groups the two-dot field under the sample key
        assert next(sorted(s) for s in tarstream.iter_samples(f, url, counter)) == [
            "__key__", "__url__", "image.png", "json", "png",
        ]  # fmt: skip
    img, mask = data.decode_sample(raws[0], 32)
    assert img.shape == (32, 32, 3) and mask.shape == (32, 32)
    decoded = read_shard(url)
    assert len(decoded) == 4 and decoded[0]["image"].dtype == np.uint8


def test_new_fields_at_their_defaults_leave_the_config_hash_unchanged():
    config, _ = small_config()
    assert (config.image_format, config.direction_scale, config.recipe) == ("jpg", "unit", "auto")
    from generator.config import HASH_EXCLUDE, HASH_ONLY_WHEN_SET
    from segcore.config import config_hash

    new = ("image_format", "direction_scale", "direction_norm", "recipe", "overrides")
    unset = tuple(k for k, v in HASH_ONLY_WHEN_SET.items() if getattr(config, k) == v)
    assert config.hash == config_hash(config, exclude=HASH_EXCLUDE + unset + new)
    png, _ = small_config(image_format="png")
    assert png.hash != config.hash  # another format: other shard bytes, another run
    with pytest.raises(ValueError, match="--image-format must be one of jpg, png"):
        GeneratorConfig(shards=1, direction=(1.0,), image_format="gif")


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
