"""Writing one shard: a WebDataset tar of encoded samples (segcore.samples) written to a LOCAL
temp file, then published in one step (segcore.storage.put_file_atomic: rename locally, one PUT
remotely). A shard is therefore visible only when complete. Layout and keys: segcore/schema.py.

Tars are byte-reproducible: fixed mtime/owner in the tar headers, deterministic encoders, so a
re-run of shard i yields the same bytes (and sha256) when the generator is deterministic.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
from pathlib import Path

import webdataset as wds

from segcore import schema, storage
from segcore.samples import decode_meta, decode_sample


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
        image, mask = decode_sample(raw)
        out.append(
            {
                "__key__": key,
                "image": image,
                "mask": mask > 127,
                "mask_raw": mask,
                "meta": decode_meta(raw),
            }
        )
    return out
