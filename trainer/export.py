"""Export the trained U-Net as the model file eval loads (segcore/modelfile.py):
OUT/model.pt2 (torch.export, dynamic N/H/W) + OUT/model.json (how it was trained, input
convention). For a remote OUT the two files are exported locally, then uploaded one PUT each.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

from segcore import __version__, modelfile, storage
from trainer.unet import ProbabilityModel, UNet

# H, W >= 32: at 16 px the deepest map is 1x1 and torch.export specialises the bilinear
# upsample on it; the paper's protocol runs at a short side of 128 (section 3.4).
MIN_SIDE = 32


def export(net: UNet, out: str, meta: dict) -> str:
    """Export a CPU float32 copy of `net` (eval mode) to OUT; returns the model URL."""
    module = ProbabilityModel(copy.deepcopy(net).float().cpu()).eval()
    res = int(meta["resolution"])
    full = {
        **meta,
        "min_side": MIN_SIDE,
        "software_version": __version__,
        "input_convention": "RGB, float32 [N,3,H,W] scaled to [-1,1] (x/127.5 - 1)",
        "inference": f"resize so the short side is {res} (bilinear), run, resize back",
    }
    if not storage.is_remote(out):
        path = storage.local_path(out) / modelfile.MODEL_FILE
        modelfile.export_model(module, path, full, example_hw=(res, res))
        return str(path)
    with tempfile.TemporaryDirectory(prefix="trainer-export-") as tmp:
        path = Path(tmp) / modelfile.MODEL_FILE
        modelfile.export_model(module, path, full, example_hw=(res, res))
        # The sidecar goes last: a model.json on the store means model.pt2 is complete.
        storage.put_file_atomic(path, storage.join(out, modelfile.MODEL_FILE))
        side = modelfile.sidecar_path(path)
        storage.put_file_atomic(side, storage.join(out, side.name))
    return storage.join(out, modelfile.MODEL_FILE)
