"""Reading images and masks with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class DatasetError(ValueError):
    """A problem with one file of a dataset; the message names the file."""


def read_image(path: str | Path) -> np.ndarray:
    """uint8 RGB [H, W, 3]. EXIF orientation is ignored: masks are annotated on raw pixels."""
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    img = cv2.imread(str(path), flags)
    if img is None:
        raise DatasetError(f"{path}: unreadable or not an image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_raw(path: str | Path) -> np.ndarray:
    """The stored pixel values (no conversion), uint8; 3-channel files come back as RGB."""
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if arr is None:
        raise DatasetError(f"{path}: unreadable or not an image")
    if arr.dtype != np.uint8:
        raise DatasetError(f"{path}: expected an 8-bit image, got {arr.dtype}")
    if arr.ndim == 3:
        if arr.shape[2] == 4:
            arr = arr[..., :3]
        arr = arr[..., ::-1]  # BGR -> RGB
    return np.ascontiguousarray(arr)


def _gray(arr: np.ndarray, path) -> np.ndarray:
    if arr.ndim == 2:
        return arr
    if (arr == arr[..., :1]).all():
        return arr[..., 0]
    raise DatasetError(f"{path}: mask has differing colour channels; expected a grey mask")


def read_binary_mask(
    path: str | Path, binarize: bool = False, gt_rule: str = ">=128"
) -> np.ndarray:
    """bool [H, W] foreground.

    binarize=False (strict): the stored values must be {0, 255} or {0, 1} (a subset), else a
    DatasetError (e.g. a JPEG-compressed or anti-aliased mask). binarize=True: any grey mask,
    foreground by `gt_rule` (the protocol's rule is value >= 128; docs/metrics.md).
    """
    m = _gray(read_raw(path), path)
    if binarize:
        return m >= 128 if gt_rule == ">=128" else m > 128
    values = np.unique(m)
    if np.isin(values, (0, 255)).all() or np.isin(values, (0, 1)).all():
        return m > 0
    shown = ", ".join(str(int(v)) for v in values[:6]) + (", ..." if len(values) > 6 else "")
    raise DatasetError(
        f"{path}: mask is not binary (values {shown}); pass binarize=True / --binarize to "
        "threshold grey masks at 128"
    )
