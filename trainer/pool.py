"""How often the trainer sees each sample: draws (steps x global batch) over the pool of samples
in its training shards.

The paper draws every sample fresh from the GAN (12,000 steps x 95 = 1.14 M samples, section
3.4); the trainer reads a finite pool of shards, resampled, so each sample is seen
draws / pool times on average. The pool is counted from each shard folder's generator
`config.json` (`samples_per_shard`: the generator fills every shard), else from the samples of
the first shard that reads whole.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from segcore import schema, storage


def pool_samples(urls: Sequence[str], count_samples: Callable[[str], int | None]) -> int | None:
    """Samples in the shards `urls`; None when no shard can be counted."""
    per_folder: dict[str, int] = {}
    for url in urls:
        folder = url.rpartition("/")[0] or "."
        per_folder[folder] = per_folder.get(folder, 0) + 1
    total = 0
    fallback: int | None = None
    for folder, shards in per_folder.items():
        size = _samples_per_shard(folder)
        if size is None:
            if fallback is None:
                counts = (count_samples(u) for u in urls)
                fallback = next((n for n in counts if n is not None), 0)
            size = fallback
        total += size * shards
    return total or None


def _samples_per_shard(folder: str) -> int | None:
    url = storage.join(folder, schema.RUN_CONFIG)
    try:
        if not storage.exists(url):
            return None
        value = json.loads(storage.read_bytes(url)).get("config", {}).get("samples_per_shard")
    except (OSError, ValueError, AttributeError):
        return None  # not a generator run's config: the pool is counted from a shard instead
    return value if isinstance(value, int) and value > 0 else None


def reuse_line(steps: int, batch: int, pool: int | None, shards: int) -> str:
    """One log line: draws, the pool, and how many times each sample is seen on average."""
    draws = steps * batch
    if not pool:
        return f"trainer: {steps:,} steps x {batch} = {draws:,} draws from {shards} shards"
    return (
        f"trainer: {steps:,} steps x {batch} = {draws:,} draws from a pool of {pool:,} samples "
        f"({shards} shards): each sample is seen {draws / pool:.2f} times on average "
        f"(epochs over the pool; the paper draws every sample fresh)"
    )
