"""The inference protocol behind the reported numbers (the paper, section 3.4, and the authors'
code where the paper is silent; docs/eval.md).

1. Read the image at its original size (no crop).
2. Resize (bilinear) so the shorter side is `short_side` (128), keeping the aspect ratio; the
   long side is `int(short_side * long / short)` as torchvision's `Resize(128)` computes it.
3. Run the segmenter: float32 [N, 3, h, w] RGB in [-1, 1] -> [N, 1, h, w] probability.
4. Optionally quantise to uint8 like the authors (`floor(255 p)`), resize back to the original
   size (bilinear) and, when quantising, round to the nearest uint8 level again, so the map is
   exactly q/255 (what a saved PNG holds).

Images whose resized sizes are equal are batched together. Works on any torch device; the
model is either any callable with the contract of `segcore.modelfile` or the path of an
exported `model.pt2` (loaded onto `device`). A callable is NOT moved: it must already live on
`device`; an `nn.Module` is switched to eval mode for each call and back to its previous mode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from eval import protocol
from eval.batching import predict_stream
from eval.errors import PredictionError


def resized_size(height: int, width: int, short_side: int | None) -> tuple[int, int]:
    """(h, w) after resizing the shorter side to `short_side` (torchvision's rounding)."""
    if short_side is None:
        return height, width
    if height <= width:
        return short_side, max(1, int(short_side * width / height))
    return max(1, int(short_side * height / width)), short_side


class Predictor:
    """Apply a segmenter to uint8 RGB images with the paper's protocol (module docstring)."""

    def __init__(
        self,
        model: Callable | str | Path,
        device: str | torch.device = protocol.DEVICE,
        short_side: int | None = protocol.SHORT_SIDE,
        quantize: bool = protocol.QUANTIZE,
        batch_size: int = protocol.BATCH_SIZE,
    ):
        self.device = torch.device(device)
        self.meta: dict = {}
        # A caller's live nn.Module is run in eval mode; an exported program is already frozen
        # (and does not support .eval()).
        self._toggle_mode = isinstance(model, torch.nn.Module)
        if isinstance(model, str | Path):
            model, self.meta = _load_exported(Path(model), self.device)
        elif not callable(model):
            raise TypeError(f"model must be a callable or a path to model.pt2, got {type(model)}")
        if short_side is not None and short_side < 1:
            raise ValueError(f"short_side must be >= 1 or None, got {short_side}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.short_side = short_side
        self.quantize = quantize
        self.batch_size = batch_size

    def settings(self) -> dict:
        return {
            "short_side": self.short_side,
            "quantize": self.quantize,
            "batch_size": self.batch_size,
            "device": str(self.device),
            "model_meta": self.meta,
        }

    def predict(self, image: np.ndarray) -> np.ndarray:
        """float32 [H, W] foreground probability of one uint8 RGB [H, W, 3] image."""
        return self.predict_batch([image])[0]

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Maps for many images, in order; equal resized sizes run in batches."""
        for i, img in enumerate(images):
            _check_image(img, f"image {i} of the batch" if len(images) > 1 else "image")
        out: list[np.ndarray | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, img in enumerate(images):
            groups.setdefault(resized_size(*img.shape[:2], self.short_side), []).append(i)
        for size, idx in groups.items():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start : start + self.batch_size]
                maps = self._run(size, [images[i] for i in chunk])
                for i, m in zip(chunk, maps, strict=True):
                    out[i] = m
        return out  # type: ignore[return-value]

    def predict_iter(
        self, images: Iterable[np.ndarray], chunk: int | None = None
    ) -> Iterable[np.ndarray]:
        """Stream maps for a (possibly long) iterable, `chunk` images at a time."""
        for _, m in predict_stream(self, images, chunk=chunk):
            yield m

    def _call_model(self, x: torch.Tensor) -> torch.Tensor:
        """Run the model; an nn.Module runs in eval mode and gets its previous mode back, so
        the trainer can evaluate its live module mid-training."""
        model = self.model
        if self._toggle_mode and model.training:
            model.eval()
            try:
                return model(x)
            finally:
                model.train()
        return model(x)

    @torch.inference_mode()
    def _run(self, size: tuple[int, int], images: list[np.ndarray]) -> list[np.ndarray]:
        same = all(img.shape == images[0].shape for img in images)
        if same:
            x = torch.from_numpy(np.stack(images)).to(self.device)
            x = x.permute(0, 3, 1, 2).float()
            x = _resize(x, size)
        else:  # same resized size from different originals: resize one by one
            x = torch.cat(
                [
                    _resize(
                        torch.from_numpy(img).to(self.device).permute(2, 0, 1)[None].float(), size
                    )
                    for img in images
                ]
            )
        x = x / 127.5 - 1.0
        prob = self._call_model(x)
        if not isinstance(prob, torch.Tensor) or prob.shape != (len(images), 1, *size):
            raise PredictionError(
                f"model returned {getattr(prob, 'shape', type(prob))}, "
                f"expected [{len(images)}, 1, {size[0]}, {size[1]}]"
            )
        prob = prob.float()
        if not torch.isfinite(prob).all():
            raise PredictionError("model output contains NaN or infinite values")
        lo, hi = float(prob.min()), float(prob.max())
        if lo < 0.0 or hi > 1.0:
            raise PredictionError(f"model output must be probabilities in [0, 1], got [{lo}, {hi}]")
        if self.quantize:
            prob = torch.floor(prob * 255.0)  # the authors' uint8 map
        maps = []
        for i, img in enumerate(images):
            m = prob[i : i + 1]
            if m.shape[-2:] != img.shape[:2]:
                m = F.interpolate(m, size=img.shape[:2], mode="bilinear", align_corners=False)
            if self.quantize:
                m = torch.round(m).clamp(0, 255) / 255.0
            maps.append(m[0, 0].to("cpu", torch.float32).numpy())
        return maps


def _load_exported(path: Path, device: torch.device):
    """`segcore.modelfile.load_model`, with a clear error for a file that is not a .pt2 archive
    (torch would otherwise log a multi-line traceback before failing)."""
    import logging
    import zipfile

    from segcore.modelfile import MODEL_FILE, load_model

    file = path / MODEL_FILE if path.is_dir() else path
    if file.is_file() and not zipfile.is_zipfile(file):
        raise ValueError(f"{file}: not a torch.export .pt2 archive (written by export_model)")
    logger = logging.getLogger("torch.export")
    level = logger.level
    logger.setLevel(logging.ERROR)  # load errors are re-raised with a one-line message
    try:
        return load_model(path, device)
    finally:
        logger.setLevel(level)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    # antialias on downscaling, like PIL's bilinear in torchvision's Resize
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def _check_image(img: np.ndarray, what: str) -> None:
    if (
        not isinstance(img, np.ndarray)
        or img.dtype != np.uint8
        or img.ndim != 3
        or img.shape[2] != 3
    ):
        raise ValueError(
            f"{what}: expected uint8 RGB [H, W, 3], got "
            f"{getattr(img, 'dtype', type(img))} {getattr(img, 'shape', '')}"
        )
