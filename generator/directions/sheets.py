"""A PNG sheet per direction so a person can look (Appendix B, Figure 10): rows are G(z),
G(z + h), the two-operator approximation, and the mask (object class white)."""

from __future__ import annotations

import io
import math

import numpy as np
import torch

MIN_TILE = 96  # tiny GAN images are upscaled (nearest) so the sheet is readable


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """[N,3,H,W] in [-1,1] -> [N,H,W,3] uint8."""
    arr = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return arr.permute(0, 2, 3, 1).numpy()


def sheet_png(x, y, approx, mask) -> bytes:
    """x, y, approx [N,3,H,W] in [-1,1]; mask [N,H,W] bool -> PNG bytes of a 4 x N grid."""
    from PIL import Image

    m = mask.detach().cpu().bool()[:, None].expand(-1, 3, -1, -1).float() * 2 - 1
    rows = [_to_uint8(t) for t in (x, y, approx, m)]
    n, h, w, _ = rows[0].shape
    scale = max(1, math.ceil(MIN_TILE / max(h, w)))
    gap = 2
    canvas = np.full(
        (4 * h * scale + 5 * gap, n * w * scale + (n + 1) * gap, 3), 255, dtype=np.uint8
    )
    for r, row in enumerate(rows):
        for c in range(n):
            tile = row[c].repeat(scale, axis=0).repeat(scale, axis=1)
            top = gap + r * (h * scale + gap)
            left = gap + c * (w * scale + gap)
            canvas[top : top + h * scale, left : left + w * scale] = tile
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, format="PNG")
    return buf.getvalue()
