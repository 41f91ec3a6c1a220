"""Checkpoints: one file, written atomically, loadable with `torch.load(weights_only=True)`.

Holds the model, optimizer, scheduler, step, the resolved config, and per rank its RNG states
and the data-stream position of every loader worker (trainer/data.py), which is what makes a
resumed run end with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import io
import random
from typing import Any

import numpy as np
import torch

from segcore import __version__, storage

FORMAT = "gan-objseg/trainer-checkpoint/v1"
CHECKPOINT = "checkpoint.pt"


def rng_state(device: torch.device) -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": _to_lists(random.getstate()),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _to_lists(x: Any) -> Any:
    return [_to_lists(v) for v in x] if isinstance(x, tuple | list) else x


def save(url: str, payload: dict) -> None:
    """Serialize in memory, then one atomic write (temp + rename, or one PUT)."""
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": __version__, **payload}, buf)
    storage.write_bytes_atomic(url, buf.getvalue())


def load(url: str) -> dict:
    blob = storage.read_bytes(url)
    ckpt = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{storage.redact(url)} is not a trainer checkpoint ({FORMAT})")
    return ckpt
