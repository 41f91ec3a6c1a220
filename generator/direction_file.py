"""Reading and writing latent direction files (the contract between directions and generator).

Accepted by the generator's `--direction`:
- the JSON file `python -m generator.directions score --pick` writes:
      {"format": "gan-objseg/direction/v1", "gan": NAME, "latent_dim": d,
       "vector": [d floats, unit norm, sign applied so that z + shift * vector makes the
                  object LIGHTER, the paper's mask rule],
       "source_norm": the norm of the vector it was made from, before scaling to 1,
       "shift": 5.0, "index": k, "sign": +1 | -1,
       "operators": optional [[3x4], [3x4]] fitted affine colour maps A1, A2 (Appendix B),
       "bright_operator": optional 0 | 1 (which of them brightens), ...extra facts}
- a raw vector of length d: `.npy` (numpy) or `.pt` (a tensor saved with torch.save; loaded
  with weights_only=True).

`Direction.vector` is always the unit vector; `Direction.stored` is the vector as the file holds
it and `Direction.norm` its norm. The generator's `--direction-scale` chooses which one `--shift`
multiplies: `unit` (the default) moves z by exactly `shift`, `raw` by `shift` x the stored norm,
as the authors' code does with its stored h_bg.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segcore import storage
from segcore.cli import UsageError

FORMAT = "gan-objseg/direction/v1"


@dataclass(frozen=True)
class Direction:
    vector: np.ndarray  # float32 [d], unit norm
    stored: np.ndarray | None = None  # float32 [d], the vector as the file holds it
    norm: float = 1.0  # norm of the stored vector
    shift: float | None = None  # recommended shift; None for raw vectors
    operators: np.ndarray | None = None  # float32 [2, 3, 4] or None
    bright_operator: int | None = None
    info: dict = field(default_factory=dict)


def load_direction(url: str | Path, latent_dim: int) -> Direction:
    """Load and validate a direction file (local path or object-store URL, as `save_direction`
    writes it); UsageError naming the file on any problem."""
    path = storage.redact(str(url))  # the name used in messages
    if not storage.exists(str(url)):
        raise UsageError(f"direction file {path} does not exist")
    suffix = Path(path).suffix.lower()
    operators = bright = shift = None
    info: dict = {}
    try:
        data = storage.read_bytes(str(url))
        if suffix == ".json":
            doc = json.loads(data)
            if doc.get("format") != FORMAT:
                raise UsageError(f"{path}: format {doc.get('format')!r}, expected {FORMAT!r}")
            vec = np.asarray(doc["vector"], dtype=np.float32)
            shift = float(doc["shift"]) if doc.get("shift") is not None else None
            if shift is not None and not (np.isfinite(shift) and shift > 0):
                raise UsageError(f"{path}: shift must be a finite number > 0, got {shift}")
            if doc.get("operators") is not None:
                operators = np.asarray(doc["operators"], dtype=np.float32)
                if operators.shape != (2, 3, 4):
                    raise UsageError(
                        f"{path}: operators have shape {operators.shape}, expected (2, 3, 4)"
                    )
                bright = int(doc.get("bright_operator", 0))
            info = {k: v for k, v in doc.items() if k not in ("vector", "operators")}
        elif suffix == ".npy":
            vec = np.load(io.BytesIO(data), allow_pickle=False).astype(np.float32)
        elif suffix in (".pt", ".pth"):
            import torch

            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            if not isinstance(obj, torch.Tensor):
                raise UsageError(f"{path}: expected a saved tensor, got {type(obj).__name__}")
            vec = obj.detach().float().numpy()
        else:
            raise UsageError(
                f"{path}: unknown direction file type {suffix!r} (use .json, .npy or .pt)"
            )
    except UsageError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise UsageError(f"cannot read direction file {path}: {err}") from err
    vec = vec.reshape(-1) if vec.ndim == 2 and 1 in vec.shape else vec
    if vec.ndim != 1 or vec.shape[0] != latent_dim:
        raise UsageError(
            f"{path}: direction has shape {tuple(vec.shape)}, expected ({latent_dim},) for this GAN"
        )
    norm = float(np.linalg.norm(vec))
    if not np.isfinite(norm) or norm == 0:
        raise UsageError(f"{path}: direction is zero or not finite")
    return Direction(vec / norm, vec, norm, shift, operators, bright, info)


def save_direction(
    url: str,
    vector,
    *,
    gan: str,
    shift: float,
    index: int,
    sign: int,
    operators=None,
    bright_operator: int | None = None,
    **info,
) -> None:
    """Write the JSON direction file atomically (local path or object-store URL)."""
    vec = np.asarray(vector, dtype=np.float64).reshape(-1)
    source_norm = float(np.linalg.norm(vec))
    vec = vec / source_norm
    doc = {
        "format": FORMAT,
        "gan": gan,
        "latent_dim": int(vec.shape[0]),
        "vector": [float(v) for v in vec],
        "shift": float(shift),
        "index": int(index),
        "sign": int(sign),
        "source_norm": source_norm,
        **info,
    }
    if operators is not None:
        doc["operators"] = np.asarray(operators, dtype=np.float64).reshape(2, 3, 4).tolist()
        doc["bright_operator"] = int(bright_operator if bright_operator is not None else 0)
    storage.write_bytes_atomic(str(url), (json.dumps(doc, indent=2) + "\n").encode())
