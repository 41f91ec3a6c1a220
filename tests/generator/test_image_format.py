"""Shard images as JPEG (the default, bytes unchanged) or lossless PNG (`--image-format png`),
read by the same decoders; the new config fields leave existing hashes alone."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest

from generator.config import GeneratorConfig
from generator.shard_maker import ShardMaker
from generator.shards import read_shard
from segcore import schema
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
