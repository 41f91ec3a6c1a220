"""Typed, frozen run configs: JSON round trip and a stable hash.

Every stage resolves its options into one frozen dataclass and writes it (with the software
version) next to its outputs. The hash identifies "the same run": resume is allowed only when
it matches.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from segcore import __version__


def to_dict(config: Any) -> dict:
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"expected a dataclass config, got {type(config).__name__}")
    return dataclasses.asdict(config)


def config_hash(config: Any, exclude: tuple[str, ...] = ()) -> str:
    """sha256 (first 16 hex digits) of the canonical JSON of the config minus `exclude` keys."""
    d = {k: v for k, v in to_dict(config).items() if k not in exclude}
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def dump_json(config: Any, **extra: Any) -> str:
    """The config as pretty JSON, with `version` and any `extra` top-level fields."""
    d = {"version": __version__, **extra, "config": to_dict(config)}
    return json.dumps(d, indent=2, sort_keys=True, default=str) + "\n"


def from_dict(cls: type, d: dict) -> Any:
    """Build `cls` from a dict; unknown keys fail loudly (no config key is ignored silently)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
    return cls(**d)


def _as_json(value: Any) -> Any:
    """`value` as it reads back from JSON (tuples become lists), for comparing with a file."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def differences(saved: dict, current: Any, ignore: tuple[str, ...] | frozenset = ()) -> list[str]:
    """'key: saved -> current' for each key outside `ignore` whose values differ.

    `current` is a dict or a dataclass config; both sides are compared as JSON values.
    """
    now = _as_json(to_dict(current) if dataclasses.is_dataclass(current) else current)
    old = _as_json(saved)
    keys = sorted((set(old) | set(now)) - set(ignore))
    return [f"{k}: {old.get(k)!r} -> {now.get(k)!r}" for k in keys if old.get(k) != now.get(k)]


def refuse_if_different(
    saved: dict,
    current: Any,
    *,
    what: str,
    ignore: tuple[str, ...] | frozenset = (),
    hint: str = "use another --out or the same options",
    most: int = 8,
) -> None:
    """Raise UsageError naming every differing field (the first `most`) when `saved` (the
    config a run was made with) and `current` differ outside `ignore`."""
    from segcore.cli import UsageError

    diff = differences(saved, current, ignore)
    if diff:
        more = f"; and {len(diff) - most} more" if len(diff) > most else ""
        raise UsageError(
            f"{what} was made with a different config ({'; '.join(diff[:most])}{more}); {hint}"
        )
