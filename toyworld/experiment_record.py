"""The options record of an experiment folder: OUT/options.json.

A benchmark reuses every finished step under its OUT, so OUT must hold the results of one set
of options only. `check_options` writes them to OUT/options.json on the first run and refuses
(UsageError, every differing field named) a later run with other options, or a non-empty OUT
without a record. The record's `layout` number names the folder structure: an OUT of another
layout is refused, never mixed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from segcore.cli import UsageError
from segcore.config import refuse_if_different
from segcore.storage import write_bytes_atomic

OPTIONS_FILE = "options.json"
# fields a record may lack, with the value such a run used: without `min_fraction` the
# generator ran without a lower bound on the mask size
ABSENT = {"min_fraction": 0.0}


def content_sha(path: str | Path) -> str:
    """The first 16 hex digits of the file's sha256: weights and directions are recorded by
    content, not by path."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def read_options(out: Path) -> dict:
    """OUT/options.json, with the values of fields the record lacks (`ABSENT`)."""
    path = Path(out) / OPTIONS_FILE
    try:
        return {**ABSENT, **json.loads(path.read_text())}
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read {path}: {err}") from err


def check_options(out: Path, options: dict) -> None:
    """Record `options` in OUT/options.json, or refuse an OUT holding other options."""
    out = Path(out)
    path = out / OPTIONS_FILE
    if path.exists():
        refuse_if_different(
            read_options(out), options, what=str(out), hint="use a new --out", most=20
        )
    elif out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} is not empty and has no {OPTIONS_FILE}; use a new --out")
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(str(path), (json.dumps(options, indent=2) + "\n").encode())
