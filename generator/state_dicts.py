"""Reading checkpoint files and checking state dicts strictly, shared by the GAN backends and the
mask labelers: one-line UsageErrors that name the file and every mismatched key."""

from __future__ import annotations

import io

import torch

from segcore.cli import UsageError


def load_file(path: str, what: str):
    """torch.load(weights_only=True) of a local path or object-store URL, on the CPU; UsageError
    (one line) for a missing or unreadable file. `what` names it ("BigGAN checkpoint")."""
    from segcore import storage

    shown = storage.redact(path)
    if not storage.exists(path):
        raise UsageError(f"{what} not found: {shown}")
    try:
        return torch.load(
            io.BytesIO(storage.read_bytes(path)), map_location="cpu", weights_only=True
        )
    except Exception as err:  # any unpickling failure is a bad file, reported in one line
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UsageError(f"cannot read {what} {shown}: {msg}") from None


def is_tensor_dict(obj) -> bool:
    return isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values())


def mismatches(expected: dict, state: dict, optional=frozenset(), shown: int = 6) -> list[str]:
    """What keeps `state` from loading strictly into a module whose state dict is `expected`:
    ["N missing: k1, k2, ...", "N unexpected: ...", "N wrong shape: k [got] (expected [..])"],
    the first `shown` of each; keys in `optional` may be absent. Empty when it loads."""
    missing = sorted(k for k in expected if k not in state and k not in optional)
    unexpected = sorted(k for k in state if k not in expected)
    wrong = sorted(
        f"{k} {list(state[k].shape)} (expected {list(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    )
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            more = f", ... ({len(items) - shown} more)" if len(items) > shown else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:shown])}{more}")
    return problems
