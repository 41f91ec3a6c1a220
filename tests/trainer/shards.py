"""Tiny synthetic shards in the generator's format (segcore/schema.py), written here with
webdataset.TarWriter so the trainer tests never import the generator."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import webdataset as wds

from segcore import schema


def easy_sample(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A bright rectangle (the object) on a dark noisy background: an easy segmentation."""
    img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), np.uint8)
    h, w = rng.integers(size // 4, size // 2 + 1, 2)
    y, x = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
    img[y : y + h, x : x + w] = rng.integers(180, 256, 3, dtype=np.uint8)
    mask[y : y + h, x : x + w] = 255
    return img, mask


def encode(img: np.ndarray, mask: np.ndarray) -> tuple[bytes, bytes]:
    ok1, jpg = cv2.imencode(
        ".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]
    )
    ok2, png = cv2.imencode(".png", mask)
    assert ok1 and ok2
    return jpg.tobytes(), png.tobytes()


def write_shard(path: Path, index: int, n: int, size: int, seed: int = 0) -> Path:
    rng = np.random.default_rng([seed, index])
    path.parent.mkdir(parents=True, exist_ok=True)
    with wds.TarWriter(str(path)) as sink:
        for i in range(n):
            jpg, png = encode(*easy_sample(rng, size))
            sink.write({
                "__key__": schema.sample_key(index, i),
                schema.IMAGE_KEY: jpg,
                schema.MASK_KEY: png,
                schema.META_KEY: json.dumps({"shard": index, "sample": i}).encode(),
            })  # fmt: skip
    return path


def write_run(folder: Path, n_shards: int, per_shard: int, size: int, seed: int = 0) -> str:
    """Write shards 0..n-1 into `folder`; returns the brace pattern covering them."""
    for i in range(n_shards):
        write_shard(folder / schema.shard_name(i), i, per_shard, size, seed)
    return schema.shard_brace_pattern(str(folder), 0, n_shards - 1)


def gan_like_sample(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Smooth noise with a brighter disk (the object) and its bool mask: JPEG-heavy content."""
    import cv2

    img = cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3), np.uint8), (5, 5), 0)
    mask = np.zeros((size, size), np.uint8)
    cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
    cv2.circle(mask, (int(cx), int(cy)), int(rng.integers(size // 8, size // 3)), 255, -1)
    img[mask > 0] = img[mask > 0] // 2 + 100
    return img, mask > 0


def write_generator_shard(path: Path, index: int, n: int, size: int, seed: int = 0) -> Path:
    """A shard exactly as the generator writes one (generator/shards.py): segcore's encoders at
    the generator's defaults (JPEG q95, PNG level 1) in a webdataset.TarWriter with fixed
    owner and mtime (a pax header before each member)."""
    from segcore import samples

    rng = np.random.default_rng([seed, index])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        sink = wds.TarWriter(f, user="gan-objseg", group="gan-objseg", mtime=0.0)
        for i in range(n):
            img, mask = gan_like_sample(rng, size)
            meta = {"shard": index, "sample": i}
            sink.write(samples.encode_sample(
                schema.sample_key(index, i), img, mask, meta, jpeg_quality=95, png_compression=1
            ))  # fmt: skip
        sink.close()
    return path
