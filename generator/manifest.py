"""Run folder bookkeeping: config.json, per-shard manifest records, manifest.jsonl, resume.

A shard counts as finished only if its record `manifest/shard-%06d.json` exists AND its tar
exists with the recorded size (the record is written after the tar is published, so a crash in
between leaves a tar without a record: it is regenerated, byte for byte the same).

Every write to a remote run folder is retried through a store outage of up to `deadline_s`
seconds (segcore.storage.write_bytes_retrying); config.json that cannot be written is a
UsageError (one line), before any shard.
"""

from __future__ import annotations

import json
import os

from segcore import __version__, schema, storage
from segcore.cli import UsageError
from segcore.config import differences, dump_json

UPLOAD_DEADLINE = 600.0  # seconds a write to the store is retried through an outage


def record_url(out: str, index: int) -> str:
    return storage.join(out, schema.MANIFEST_DIR, schema.MANIFEST_RECORD.format(index=index))


def write_record(out: str, record: dict, deadline_s: float = UPLOAD_DEADLINE) -> None:
    missing = [f for f in schema.MANIFEST_FIELDS if f not in record]
    assert not missing, f"manifest record lacks {missing}"
    data = (json.dumps(record, sort_keys=True) + "\n").encode()
    storage.write_bytes_retrying(record_url(out, record["index"]), data, deadline_s)


def _sizes(out: str) -> dict[str, int]:
    """Sizes of the objects directly under `out`, in one listing call."""
    if storage.is_remote(out):
        fs, path = storage.filesystem(out)
        if not fs.exists(path):
            return {}
        fs.invalidate_cache(path)
        return {
            e["name"].rstrip("/").rsplit("/", 1)[-1]: int(e.get("size") or 0)
            for e in fs.ls(path, detail=True)
            if e.get("type") == "file"
        }
    folder = storage.local_path(out)
    if not folder.is_dir():
        return {}
    return {e.name: e.stat().st_size for e in os.scandir(folder) if e.is_file()}


def finished_records(out: str) -> dict[int, dict]:
    """{index: record} of the shards that are complete (record present, tar of that size)."""
    sizes = _sizes(out)
    records = {}
    for name in storage.list_names(storage.join(out, schema.MANIFEST_DIR)):
        if not (name.startswith("shard-") and name.endswith(".json")):
            continue
        record = json.loads(storage.read_bytes(storage.join(out, schema.MANIFEST_DIR, name)))
        index = int(record["index"])
        if sizes.get(schema.shard_name(index)) == record["bytes"]:
            records[index] = record
    return records


def write_jsonl(out: str, records: dict[int, dict], deadline_s: float = UPLOAD_DEADLINE) -> None:
    lines = "".join(json.dumps(records[i], sort_keys=True) + "\n" for i in sorted(records))
    storage.write_bytes_retrying(
        storage.join(out, schema.MANIFEST_JSONL), lines.encode(), deadline_s
    )


def remove_stale_temp_files(out: str) -> list[str]:
    """Remove the temp files (`.NAME.XXXX.tmp`, segcore.storage.write_local_atomic) that a
    killed writer left in a local run folder and its manifest folder; -> their names. Called
    before any writer of this run starts."""
    if storage.is_remote(out):
        return []  # remote objects are single PUTs: nothing half-written stays behind
    removed = []
    for folder in (storage.local_path(out), storage.local_path(out) / schema.MANIFEST_DIR):
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_file():
                os.unlink(entry.path)
                removed.append(entry.name)
    return removed


def _write_config(url: str, config, deadline_s: float) -> None:
    try:
        storage.write_bytes_retrying(url, _config_blob(config), deadline_s)
    except OSError as err:  # local disk errors, and StoreUnavailable after the deadline
        raise UsageError(f"cannot write {storage.redact(url)}: {storage.first_line(err)}") from err


def open_run(
    out: str, config, resume: bool = True, deadline_s: float = UPLOAD_DEADLINE
) -> dict[int, dict]:
    """Create or re-open the run at `out` for `config`; -> finished shard records.

    Refuses (UsageError) a folder holding another config's run, or a non-empty folder that
    is not a generator run. Writes config.json (with version and hash) before any shard.
    """
    url = storage.join(out, schema.RUN_CONFIG)
    if storage.exists(url):
        if not resume:
            raise UsageError(
                f"{storage.redact(out)} already holds a run and --no-resume was given; "
                "use a new --out, or drop --no-resume to finish that run"
            )
        try:
            existing = json.loads(storage.read_bytes(url))
            old_hash = existing["config_hash"]
            old_shards = int(existing["config"]["shards"])
        except (ValueError, KeyError, TypeError) as err:
            raise UsageError(f"{storage.redact(url)} is not a generator config: {err}") from err
        if old_hash != config.hash:
            diff = _differences(existing["config"], config)
            named = "; ".join(diff[:8]) + (f"; and {len(diff) - 8} more" if len(diff) > 8 else "")
            if not diff:
                named = f"hash {old_hash} vs {config.hash}; the fields agree, the software does not"
            raise UsageError(
                f"{storage.redact(out)} holds a run with a different config ({named}); "
                "use a new --out or the same options to resume"
            )
        remove_stale_temp_files(out)
        finished = finished_records(out)
        if config.shards > old_shards:  # extending a run: same samples, more shards
            _write_config(url, config, deadline_s)
        return finished
    if storage.list_names(out):
        raise UsageError(
            f"{storage.redact(out)} is not empty and has no {schema.RUN_CONFIG}; "
            "refusing to write shards into it"
        )
    _write_config(url, config, deadline_s)
    return {}


def _differences(old: dict, config) -> list[str]:
    """'key: run value -> this value' for each hashed field that differs between the config.json
    fields `old` and `config` (a field of HASH_ONLY_WHEN_SET that `old` lacks has its neutral
    value)."""
    from generator.config import HASH_EXCLUDE, HASH_ONLY_WHEN_SET

    return differences({**HASH_ONLY_WHEN_SET, **old}, config, ignore=HASH_EXCLUDE)


def _config_blob(config) -> bytes:
    # --mask labeler: the masks come from a supervised model; said at the top of config.json
    supervised = {"supervised_masks": True} if getattr(config, "labeler", None) else {}
    return dump_json(config, config_hash=config.hash, software="gan-objseg", **supervised).encode()


def make_record(
    index: int,
    count: int,
    attempts: int,
    rejected: dict,
    size: int,
    sha: str,
    config_hash: str,
    **extra,
) -> dict:
    return {
        "index": index,
        "count": count,
        "attempts": attempts,
        "rejected": rejected,
        "bytes": size,
        "sha256": sha,
        "config_hash": config_hash,
        "version": __version__,
        "shard": schema.shard_name(index),
        **extra,
    }
