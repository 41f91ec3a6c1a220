"""The user's unlabelled target images for self-training (`--adapt-images DIR`).

DIR is a folder of images, or a dataset folder holding images/ (and perhaps masks/): then only
images/ is listed and read. Subfolders are read too (a video's frames, images/<seq>/<frame>),
except those named like label folders (LABEL_FOLDERS), which are never listed. No other file
is opened, so labels beside the images are never read. Every image is read once, decoded to RGB and resized to the training side (a square, as
the synthetic samples are); the images stay in memory as one uint8 array.

Refused with one line (UsageError): a folder that does not exist or cannot be listed, one
without images, a file that is not an image (by its suffix), an image smaller than the
training side, more undecodable images than `--max-bad-fraction` of them. An undecodable image
among many is skipped, counted and named in a warning, never trained on.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segcore import storage
from segcore.cli import UsageError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm"})
IMAGES_SUBFOLDER = "images"  # the dataset layout of eval's folders (images/ + masks/)
LABEL_FOLDERS = frozenset({"masks", "mask", "labels", "annotations", "gt", "ground_truth"})
WARN_AT_MOST = 5  # undecodable images named one by one; the rest only counted


@dataclass(frozen=True)
class TargetImages:
    folder: Path  # the folder the images were read from
    names: tuple[str, ...]  # file names of the images used, sorted
    images: np.ndarray  # uint8 [N, R, R, 3] RGB, resized to the training side
    skipped: int  # undecodable images left out

    def digest(self) -> str:
        """The identity of the image list (names and pixels): a resume checks that the
        pseudo-labels on disk belong to these images."""
        h = hashlib.sha256("\n".join(self.names).encode())
        h.update(self.images.tobytes())
        return h.hexdigest()[:16]


def image_folder(root: str) -> Path:
    """The folder whose files are the images: root/images when it exists, else root."""
    if storage.is_remote(root):
        raise UsageError(f"--adapt-images {storage.redact(root)}: a local folder is needed")
    path = storage.local_path(root)
    if not path.is_dir():
        raise UsageError(f"--adapt-images {root}: no such folder")
    sub = path / IMAGES_SUBFOLDER
    return sub if sub.is_dir() else path


def list_images(folder: Path) -> list[str]:
    """Sorted paths (relative to `folder`) of the images under it, hidden files and folders and
    label folders left aside; UsageError for an unlistable folder, a non-image file or no
    image at all."""
    files: list[str] = []
    pending = [""]
    while pending:
        rel = pending.pop()
        try:
            with os.scandir(folder / rel) as entries:
                for e in entries:
                    if e.name.startswith("."):
                        continue
                    if e.is_dir():
                        if e.name.lower() not in LABEL_FOLDERS:
                            pending.append(f"{rel}{e.name}/")
                    elif e.is_file():
                        files.append(f"{rel}{e.name}")
        except OSError as err:
            where = folder / rel
            raise UsageError(f"--adapt-images {where}: cannot list it ({err.strerror})") from err
    files.sort()
    others = [n for n in files if Path(n).suffix.lower() not in IMAGE_SUFFIXES]
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise UsageError(
            f"--adapt-images {folder}: {len(others)} file(s) are not images ({shown}); give a "
            f"folder of images only ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    if not files:
        raise UsageError(f"--adapt-images {folder}: no image in it")
    return files


def decode(blob: bytes) -> np.ndarray | None:
    """RGB uint8 [H, W, 3] of an encoded image, or None when it does not decode."""
    import cv2

    if not blob:  # OpenCV asserts on an empty buffer instead of returning None
        return None
    array = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
    return None if array is None else cv2.cvtColor(array, cv2.COLOR_BGR2RGB)


def load(root: str, resolution: int, max_bad_fraction: float) -> TargetImages:
    """Every image of the target folder at `resolution` x `resolution` (see the module doc)."""
    import cv2

    folder = image_folder(root)
    names = list_images(folder)
    kept, images, bad = [], [], []
    for name in names:
        try:
            blob = (folder / name).read_bytes()
        except OSError as err:
            raise UsageError(
                f"--adapt-images: cannot read {folder / name} ({err.strerror})"
            ) from err
        img = decode(blob)
        if img is None:
            bad.append(name)
            if len(bad) <= WARN_AT_MOST:
                print(f"trainer: warning: skipped undecodable target image {name}", file=sys.stderr)
            continue
        h, w = img.shape[:2]
        if min(h, w) < resolution:
            raise UsageError(
                f"--adapt-images: {folder / name} is {w}x{h}, smaller than the training side "
                f"{resolution}; remove it or lower --resolution"
            )
        if (h, w) != (resolution, resolution):
            img = cv2.resize(img, (resolution, resolution), interpolation=cv2.INTER_AREA)
        kept.append(name)
        images.append(img)
    if not images:
        raise UsageError(f"--adapt-images {folder}: none of its {len(names)} images decodes")
    if len(bad) > max_bad_fraction * len(names):
        raise UsageError(
            f"--adapt-images {folder}: {len(bad)} of {len(names)} images do not decode, more "
            f"than --max-bad-fraction {max_bad_fraction}; check the folder"
        )
    if bad:
        print(
            f"trainer: {len(bad)} of {len(names)} target images skipped (undecodable)",
            file=sys.stderr,
        )
    return TargetImages(folder, tuple(kept), np.stack(images), len(bad))
