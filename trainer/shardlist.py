"""The shard list of a run: brace patterns, existence, the hold-out split, and how many samples
a shard should hold (for counting an unreadable shard as the samples it lost).

The generator records each finished shard's sample count in `manifest/shard-N.json`
(segcore/schema.py); a shard without a record is estimated from the generator run's
`config.json` (`samples_per_shard`), else from the first readable shard of the list.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from segcore import schema, storage
from segcore.cli import UsageError

_SHARD_INDEX = re.compile(r"shard-(\d+)\.tar$")


def expand_shards(spec: str) -> list[str]:
    """Brace-expand `spec` (several patterns may be separated by whitespace), in order."""
    from braceexpand import braceexpand

    urls: list[str] = []
    for part in spec.split():
        urls.extend(braceexpand(part))
    return urls


def check_shards_exist(urls: list[str], what: str = "--shards") -> None:
    """Every listed shard must exist: one listing per folder (cheap on object storage)."""
    if not urls:
        raise UsageError(f"{what}: the pattern matches no shard names")
    for url in urls:
        if not url.endswith(".tar") and is_folder(url):
            raise UsageError(
                f"{what} {storage.redact(url)} is a folder; give a brace pattern of its shards, "
                f"e.g. {folder_pattern(url)!r}"
            )
    by_folder: dict[str, list[str]] = {}
    for url in urls:
        folder, _, name = url.rpartition("/")
        by_folder.setdefault(folder or ".", []).append(name)
    missing: list[str] = []
    for folder, names in by_folder.items():
        try:
            present = set(storage.list_names(folder))
        except Exception as err:
            raise UsageError(f"{what}: cannot list {storage.redact(folder)} ({err})") from err
        missing += [storage.join(folder, n) for n in names if n not in present]
    if len(missing) == len(urls):
        raise UsageError(
            f"{what}: no shards match ({len(urls)} names expanded, none exist; "
            f"first: {storage.redact(urls[0])})"
        )
    if missing:
        raise UsageError(
            f"{what}: {len(missing)} of {len(urls)} shards do not exist (first missing: "
            f"{storage.redact(missing[0])}); narrow the brace range to the finished shards"
        )


def shard_index(url: str) -> int | None:
    m = _SHARD_INDEX.search(url)
    return int(m.group(1)) if m else None


def parse_index_set(spec: str) -> set[int]:
    """'498,499' or '490-499' or '0,10-12' -> a set of shard indices."""
    out: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise UsageError(f"--val-shards: {part!r} is not an index or a range like 490-499")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise UsageError(f"--val-shards: empty range {part!r}")
        out.update(range(lo, hi + 1))
    return out


def split_holdout(urls: list[str], val_spec: str) -> tuple[list[str], list[str]]:
    """(training shards, validation shards). The training stream never sees a held-out shard.

    `val_spec`: "auto" (the last shard of the list, if there are at least 2), "none",
    shard indices of the `--shards` list ("499", "490-499"), or a separate shard pattern
    (anything with a '/' or '.tar'); shards in both are removed from training.
    """
    if val_spec == "none":
        return urls, []
    if val_spec == "auto":
        return (urls[:-1], urls[-1:]) if len(urls) >= 2 else (urls, [])
    if "/" in val_spec or ".tar" in val_spec:
        val = expand_shards(val_spec)
        check_shards_exist(val, "--val-shards")
        held = set(val)
        train = [u for u in urls if u not in held]
    else:
        wanted = parse_index_set(val_spec)
        val = [u for u in urls if shard_index(u) in wanted]
        found = {shard_index(u) for u in val}
        if found != wanted:
            absent = sorted(wanted - found)[:5]
            raise UsageError(f"--val-shards: shard indices {absent} are not in --shards")
        train = [u for u in urls if shard_index(u) not in wanted]
    if not train:
        raise UsageError("--val-shards holds out every shard; nothing is left to train on")
    return train, val


def is_folder(url: str) -> bool:
    if storage.is_remote(url):
        fs, path = storage.filesystem(url)
        return fs.isdir(path)
    return storage.local_path(url).is_dir()


def folder_pattern(folder: str) -> str:
    """The brace pattern of the shards in `folder` (first to last index found)."""
    found = sorted(i for n in storage.list_names(folder) if (i := shard_index(n)) is not None)
    if not found:
        return schema.shard_brace_pattern(folder, 0, 499)
    return schema.shard_brace_pattern(folder, found[0], found[-1])


def _read_json(url: str) -> dict | None:
    """A small JSON object, or None where there is none to read: a missing or unreadable
    record only means the count falls back to the next source."""
    try:
        if not storage.exists(url):
            return None
        value = json.loads(storage.read_bytes(url))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class ExpectedCounts:
    """`counts(url)`: how many samples shard `url` should hold, looked up when a shard fails.

    In order: the shard's manifest record (`manifest/shard-N.json`, "count"); the generator
    run's `config.json` ("samples_per_shard"); the samples read from the first shard of
    `urls` that reads whole (`count_samples(url)`: None when it does not). At least 1.
    """

    def __init__(self, urls: tuple[str, ...], count_samples: Callable[[str], int | None]):
        self.urls, self.count_samples = urls, count_samples
        self.cache: dict[str, int] = {}
        self.first: int | None = None  # samples in the first shard of the list that reads

    def __call__(self, url: str) -> int:
        if url not in self.cache:
            self.cache[url] = max(1, self._lookup(url))
        return self.cache[url]

    def _lookup(self, url: str) -> int:
        folder = url.rpartition("/")[0] or "."
        index = shard_index(url)
        if index is not None:
            name = schema.MANIFEST_RECORD.format(index=index)
            record = _read_json(storage.join(folder, schema.MANIFEST_DIR, name)) or {}
            if isinstance(record.get("count"), int):
                return record["count"]
        run = (_read_json(storage.join(folder, schema.RUN_CONFIG)) or {}).get("config")
        if isinstance(run, dict) and isinstance(run.get("samples_per_shard"), int):
            return run["samples_per_shard"]
        if self.first is None:
            counts = (self.count_samples(u) for u in self.urls)
            self.first = next((n for n in counts if n is not None), 1)
        return self.first
