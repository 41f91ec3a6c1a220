"""Writing one shard: encode samples, write a WebDataset tar to a LOCAL temp file, publish it
in one step (segcore.storage.put_file_atomic: rename locally, one PUT remotely). A shard is
therefore visible only when complete. Layout and keys: segcore/schema.py.

Tars are byte-reproducible: fixed mtime/owner in the tar headers, deterministic encoders, so a
re-run of shard i yields the same bytes (and sha256) when the generator is deterministic.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path

import cv2
import numpy as np
import webdataset as wds

from segcore import schema, storage


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def encode_mask_png(mask: np.ndarray, compression: int) -> bytes:
    """bool [H, W] -> single-channel PNG with values {0, 255}."""
    img = np.where(mask, np.uint8(255), np.uint8(0))
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, int(compression)])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def write_tar(path: str | Path, samples) -> None:
    """`samples`: iterable of dicts {"__key__", "jpg", "png", "json"} with bytes values."""
    with open(path, "wb") as f:
        writer = wds.TarWriter(f, user="gan-objseg", group="gan-objseg", mtime=0.0)
        for sample in samples:
            writer.write(sample)
        writer.close()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def publish_shard(samples, out_url: str, index: int) -> tuple[int, str]:
    """Write the tar to a local temp file, then publish it at `out_url/shard-%06d.tar`.

    -> (bytes, sha256). The temp file is removed whatever happens.
    """
    fd, tmp = tempfile.mkstemp(prefix=f"gan-objseg-{index:06d}-", suffix=".tar")
    os.close(fd)
    try:
        write_tar(tmp, samples)
        size, digest = os.path.getsize(tmp), sha256_file(tmp)
        storage.put_file_atomic(tmp, storage.join(out_url, schema.shard_name(index)))
        return size, digest
    finally:
        Path(tmp).unlink(missing_ok=True)


def read_shard(url: str) -> list[dict]:
    """Decode a shard (local or remote) into a list of samples, in tar order:
    {"__key__", "image" uint8 [H, W, 3] RGB, "mask" bool [H, W], "meta" dict}.
    For tests and inspection; the trainer has its own streaming reader."""
    data = storage.read_bytes(url)
    grouped: dict[str, dict] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            key, _, ext = member.name.partition(".")
            grouped.setdefault(key, {"__key__": key})[ext] = tar.extractfile(member).read()
    out = []
    for key, raw in grouped.items():
        img = cv2.imdecode(np.frombuffer(raw[schema.IMAGE_KEY], np.uint8), cv2.IMREAD_COLOR)
        mask = cv2.imdecode(np.frombuffer(raw[schema.MASK_KEY], np.uint8), cv2.IMREAD_UNCHANGED)
        out.append(
            {
                "__key__": key,
                "image": img[:, :, ::-1].copy(),
                "mask": mask > 127,
                "mask_raw": mask,
                "meta": json.loads(raw[schema.META_KEY]),
            }
        )
    return out
