"""Writing one shard: a WebDataset tar of encoded samples (segcore.samples) built in memory and
published in one step (segcore.storage.write_bytes_retrying: a temp file beside the shard renamed
into place locally, one PUT remotely, retried through a store outage). A shard is therefore
visible only when complete, and no temp file is left outside the run folder; a temp file a
killed writer leaves in the run folder is removed by the next run (manifest.open_run). Layout
and keys: segcore/schema.py.

Tars are byte-reproducible: fixed mtime/owner in the tar headers, deterministic encoders, so a
re-run of shard i yields the same bytes (and sha256) when the generator is deterministic.

The tar is built in memory by `tar_bytes`, byte for byte what webdataset's TarWriter writes with
these settings (Python's tarfile in PAX format: each member is a PAX header holding
`mtime=0.0`, which never changes, then a ustar header in which only the name, the size and the
checksum change, then the data padded to 512 bytes). Patching a ready header instead of
building three with tarfile per sample makes the tar about 10x cheaper; names that a plain
ustar header cannot hold go through tarfile itself. The tests compare the bytes with
webdataset's TarWriter.
"""

from __future__ import annotations

import hashlib
import io
import tarfile

from generator.manifest import UPLOAD_DEADLINE
from segcore import schema, storage
from segcore.samples import decode_meta, decode_sample

_OWNER = "gan-objseg"
_BLOCK = tarfile.BLOCKSIZE
_MODE = 0o444


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0.0, _MODE
    info.uname = info.gname = _OWNER
    return info


def _header_tarfile(name: str, size: int) -> bytes:
    return _tarinfo(name, size).tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")


_PROTOTYPE = _header_tarfile("", 0)
_PAX_PART, _USTAR = _PROTOTYPE[:-_BLOCK], _PROTOTYPE[-_BLOCK:]
_MIDDLE, _TAIL = _USTAR[100:124], _USTAR[155:]  # fields between name and size, after chksum
_MTIME = _USTAR[136:148]
# checksum of the prototype with its checksum field read as spaces and empty name and size
_BASE_SUM = sum(_USTAR[:124]) + sum(_MTIME) + 8 * ord(" ") + sum(_USTAR[156:])


def _header(name: str, size: int) -> bytes:
    """The PAX + ustar headers tarfile writes for a member `name` of `size` bytes."""
    raw = name.encode("ascii", "replace")
    if not name.isascii() or len(raw) >= 100 or size >= 8**11:
        return _header_tarfile(name, size)
    size_field = b"%011o\0" % size
    chksum = b"%06o\0" % (_BASE_SUM + sum(raw) + sum(size_field))
    return b"".join(
        (_PAX_PART, raw, bytes(100 - len(raw)), _MIDDLE, size_field, _MTIME, chksum, _TAIL)
    )


def tar_bytes(samples) -> bytes:
    """The tar webdataset's TarWriter (user and group gan-objseg, mtime 0) writes for `samples`,
    built in memory (members in sorted field order, as webdataset writes them)."""
    parts = []
    for sample in samples:
        key = sample["__key__"]
        for field in sorted(sample):
            if field.startswith("_"):
                continue
            data = sample[field]
            if isinstance(data, str):
                data = data.encode("utf-8")
            parts.append(_header(f"{key}.{field}", len(data)))
            parts.append(data)
            if len(data) % _BLOCK:
                parts.append(bytes(_BLOCK - len(data) % _BLOCK))
    size = sum(len(p) for p in parts) + 2 * _BLOCK
    parts.append(bytes(2 * _BLOCK + (-size) % tarfile.RECORDSIZE))
    return b"".join(parts)


def publish_shard(
    samples, out_url: str, index: int, deadline_s: float = UPLOAD_DEADLINE
) -> tuple[int, str]:
    """Build the tar in memory and publish it at `out_url/shard-%06d.tar`, retrying only the
    upload for up to `deadline_s` seconds (storage.StoreUnavailable after). -> (bytes, sha256)."""
    data = tar_bytes(samples)
    url = storage.join(out_url, schema.shard_name(index))
    storage.write_bytes_retrying(url, data, deadline_s)
    return len(data), hashlib.sha256(data).hexdigest()


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
