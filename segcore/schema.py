"""The shard contract between generator (writer) and trainer (reader).

A run folder (local or object storage) holds:

    config.json                 resolved generator config + version + config hash
    shard-000000.tar ...        WebDataset tars, visible only once complete
    manifest/shard-000000.json  one record per finished shard, written after the shard;
                                a shard without its record does not exist
    manifest.jsonl              all records, one JSON object a line (rewritten by the driver)

Each sample in a shard has the WebDataset fields below. Images are RGB uint8, JPEG (field
`jpg`, the default) or lossless PNG (field `image.png`: WebDataset names a field by everything
after the key's first dot, and `png` is the mask's); masks are single-channel uint8 with values
{0, 255} (PNG); both have the GAN's resolution. A sample holds exactly one image field.
"""

from __future__ import annotations

SHARD_NAME = "shard-{index:06d}.tar"
MANIFEST_DIR = "manifest"
MANIFEST_RECORD = "shard-{index:06d}.json"
MANIFEST_JSONL = "manifest.jsonl"
RUN_CONFIG = "config.json"

IMAGE_KEY = "jpg"  # RGB uint8 JPEG (the default image format)
# the image field of each image format (the generator's --image-format): the JPEG one is
# IMAGE_KEY, so shards of the default format keep their bytes
IMAGE_KEYS = {"jpg": IMAGE_KEY, "png": "image.png"}
IMAGE_FORMATS = tuple(IMAGE_KEYS)
MASK_KEY = "png"  # single-channel uint8 PNG, 0 = background, 255 = foreground
META_KEY = "json"  # per-sample facts: shard, sample, seed, latent source index

# Fields every manifest record carries (the generator may add more).
MANIFEST_FIELDS = (
    "index",  # shard index
    "count",  # samples in the shard
    "attempts",  # samples drawn to fill it
    "rejected",  # {filter name: samples rejected by that filter}
    "bytes",  # size of the tar
    "sha256",  # checksum of the tar
    "config_hash",  # segcore.config.config_hash of the run config
    "version",  # software version that wrote it
)


def shard_name(index: int) -> str:
    if index < 0:
        raise ValueError(f"shard index must be >= 0, got {index}")
    return SHARD_NAME.format(index=index)


def sample_key(shard: int, sample: int) -> str:
    """`__key__` of a sample: unique across the run, no dots (WebDataset splits on them)."""
    return f"{shard:06d}_{sample:06d}"


def shard_brace_pattern(prefix: str, first: int, last: int) -> str:
    """`prefix/shard-{000000..000499}.tar` for shards first..last inclusive."""
    return f"{prefix.rstrip('/')}/shard-{{{first:06d}..{last:06d}}}.tar"
