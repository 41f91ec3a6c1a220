"""The exported segmenter: the one file the trainer writes and eval (or a user) loads.

Format: `torch.export` program saved with `torch.export.save` (`model.pt2`), plus a JSON
sidecar (`model.json`) with the input convention. (`torch.jit.script` is deprecated in
torch 2.13, so TorchScript is not used.)

Calling convention of the loaded module (the contract):
    input   float32 [N, 3, H, W], RGB, values in [-1, 1]; N, H and W are dynamic
            (H, W >= `min_side` in the sidecar)
    output  float32 [N, 1, H, W], foreground probability in [0, 1]

Loading never unpickles arbitrary objects: `torch.export.load` reads a serialized graph and
tensors, and the sidecar is JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from segcore import storage

MODEL_FILE = "model.pt2"  # its sidecar is the same name with .json (sidecar_path)
FORMAT = "torch.export/v1"


def sidecar_path(model_path: str | Path) -> Path:
    return Path(model_path).with_suffix(".json")


def export_model(
    module: Any, path: str | Path, meta: dict, example_hw: tuple[int, int] = (128, 128)
) -> Path:
    """Export `module` (input/output as in the contract above) to `path` atomically.

    `meta` must say how the model was trained (at least `resolution`); the input convention
    fields are filled in here so they cannot drift from the contract.
    """
    import os
    import tempfile

    import torch
    from torch.export import Dim

    path = Path(path)
    module = module.eval()
    min_side = int(meta.get("min_side", 16))
    example = torch.zeros(2, 3, *example_hw)
    batch = Dim("batch", min=1, max=4096)
    # H and W are multiples of nothing in particular: the U-Net pads internally.
    height = Dim("height", min=min_side, max=8192)
    width = Dim("width", min=min_side, max=8192)
    with torch.no_grad():
        program = torch.export.export(
            module, (example,), dynamic_shapes=({0: batch, 2: height, 3: width},)
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    # torch.export.save wants a name ending in .pt2
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp.pt2", dir=path.parent)
    os.close(fd)
    try:
        torch.export.save(program, tmp)
        storage.put_file_atomic(tmp, str(path))  # same folder: fsync, published mode, rename
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    full_meta = {
        **meta,
        "format": FORMAT,
        "input": "float32 [N,3,H,W] RGB in [-1,1]",
        "output": "float32 [N,1,H,W] foreground probability in [0,1]",
        "min_side": min_side,
    }
    sidecar = json.dumps(full_meta, indent=2, sort_keys=True) + "\n"
    storage.write_bytes_atomic(str(sidecar_path(path)), sidecar.encode())
    return path


def load_model(path: str | Path, device: Any = "cpu") -> tuple[Any, dict]:
    """Load an exported model: (callable module on `device`, sidecar metadata).

    Raises FileNotFoundError / ValueError with a message naming the file on any problem.
    """
    import torch

    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no exported model at {path} (expected a {MODEL_FILE} file)")
    side = sidecar_path(path)
    if not side.is_file():
        raise FileNotFoundError(f"model sidecar {side} is missing (written next to {path.name})")
    meta = json.loads(side.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{side}: format {meta.get('format')!r}, expected {FORMAT!r}")
    try:
        program = torch.export.load(str(path))
    except Exception as err:  # surface as a clear, file-naming error
        raise ValueError(f"{path}: not a loadable torch.export program ({err})") from err
    module = program.module()
    return module.to(torch.device(device)), meta
