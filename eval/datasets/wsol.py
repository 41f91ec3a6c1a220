"""The WSOL test metadata format of Choe et al. 2020 (`wsolevaluation/metadata/<DS>/test`).

Files: image_ids.txt (one id per line), class_labels.txt (`id,label`), image_sizes.txt
(`id,W,H`; empty for OpenImages), localization.txt (CUB/ILSVRC: `id,x0,y0,x1,y1`, one line per
box; OpenImages: `id,mask_path,ignore_path`, one line per instance mask, the ignore path on
the image's first line). Image ids are paths relative to the image folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from eval.datasets.io import DatasetError, read_image
from eval.metrics.wsol import RESIZE_LENGTH, resize_bbox

DATASETS = {"cub": "CUB", "imagenet": "ILSVRC", "openimages": "OpenImages"}


@dataclass
class WsolMetadata:
    root: Path
    image_ids: list[str]
    labels: dict[str, int]
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (W, H)
    boxes: dict[str, list[tuple[int, int, int, int]]] = field(default_factory=dict)
    mask_paths: dict[str, list[str]] = field(default_factory=dict)
    ignore_paths: dict[str, str] = field(default_factory=dict)

    @property
    def has_masks(self) -> bool:
        return bool(self.mask_paths)


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetError(f"{path}: missing WSOL metadata file")
    return [line for line in path.read_text().splitlines() if line.strip()]


def load_wsol_metadata(root: str | Path) -> WsolMetadata:
    """Parse and cross-check a metadata folder; any inconsistency names the file and line."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such metadata folder")
    ids = _lines(root / "image_ids.txt")
    if not ids:
        raise DatasetError(f"{root / 'image_ids.txt'}: empty")
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{root / 'image_ids.txt'}: duplicate image ids")
    id_set = set(ids)
    labels = {}
    for n, line in enumerate(_lines(root / "class_labels.txt"), 1):
        try:
            image_id, label = line.rsplit(",", 1)
            labels[image_id] = int(label)
        except ValueError as err:
            raise DatasetError(f"{root / 'class_labels.txt'}:{n}: bad line {line!r}") from err
    meta = WsolMetadata(root, ids, labels)
    loc_file = root / "localization.txt"
    loc = _lines(loc_file)
    if loc and len(loc[0].split(",")) == 3:  # OpenImages masks
        for n, line in enumerate(loc, 1):
            image_id, mask_path, ignore_path = line.split(",")
            if image_id not in id_set:
                raise DatasetError(f"{loc_file}:{n}: unknown image id {image_id}")
            if image_id in meta.mask_paths:
                meta.mask_paths[image_id].append(mask_path)
            else:
                meta.mask_paths[image_id] = [mask_path]
                meta.ignore_paths[image_id] = ignore_path
        missing = [i for i in ids if i not in meta.mask_paths]
        if missing:
            raise DatasetError(f"{loc_file}: no mask for image {missing[0]}")
        return meta
    for n, line in enumerate(_lines(root / "image_sizes.txt"), 1):
        try:
            image_id, w, h = line.split(",")
            meta.sizes[image_id] = (int(w), int(h))
        except ValueError as err:
            raise DatasetError(f"{root / 'image_sizes.txt'}:{n}: bad line {line!r}") from err
    for n, line in enumerate(loc, 1):
        try:
            image_id, *coords = line.split(",")
            x0, y0, x1, y1 = (int(float(c)) for c in coords)
        except ValueError as err:
            raise DatasetError(f"{loc_file}:{n}: expected id,x0,y0,x1,y1, got {line!r}") from err
        if image_id not in id_set:
            raise DatasetError(f"{loc_file}:{n}: unknown image id {image_id}")
        meta.boxes.setdefault(image_id, []).append((x0, y0, x1, y1))
    for image_id in ids:
        if image_id not in meta.boxes:
            raise DatasetError(f"{loc_file}: no box for image {image_id}")
        if image_id not in meta.sizes:
            raise DatasetError(f"{root / 'image_sizes.txt'}: no size for image {image_id}")
    return meta


@dataclass(frozen=True)
class WsolSample:
    image_id: str
    image: np.ndarray  # uint8 RGB at original size
    boxes: np.ndarray | None  # [K, 4] at 224 x 224 (resize_bbox), CUB / ImageNet
    mask: np.ndarray | None  # bool [224, 224] union of instances, OpenImages
    ignore: np.ndarray | None  # bool [224, 224] ignore box, OpenImages


def _load_mask_224(path: Path) -> np.ndarray:
    """Reference `load_mask_image` + `> 0.5`: grey, nearest resize to 224."""
    m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise DatasetError(f"{path}: unreadable mask")
    m = cv2.resize(np.float32(m), (RESIZE_LENGTH, RESIZE_LENGTH), interpolation=cv2.INTER_NEAREST)
    return m > 0.5


class WsolDataset:
    """Images of a WSOL test split with their ground truth in the 224x224 evaluation frame."""

    def __init__(
        self,
        metadata: WsolMetadata | str | Path,
        images: str | Path,
        masks: str | Path | None = None,
        skip_bad: bool = False,
        limit: int | None = None,
    ):
        self.meta = metadata if isinstance(metadata, WsolMetadata) else load_wsol_metadata(metadata)
        self.images = Path(images)
        self.masks = Path(masks) if masks is not None else self.images
        if not self.images.is_dir():
            raise DatasetError(f"{self.images}: no such image folder")
        self.skip_bad = skip_bad
        self.skipped: list[tuple[str, str]] = []
        self.ids = self.meta.image_ids[:limit] if limit else list(self.meta.image_ids)

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, image_id: str) -> WsolSample:
        image = read_image(self.images / image_id)
        h, w = image.shape[:2]
        if self.meta.has_masks:
            mask = np.stack(
                [_load_mask_224(self.masks / p) for p in self.meta.mask_paths[image_id]]
            )
            mask = mask.any(axis=0)
            ignore = None
            if self.meta.ignore_paths.get(image_id):
                ignore = _load_mask_224(self.masks / self.meta.ignore_paths[image_id])
            return WsolSample(image_id, image, None, mask, ignore)
        size = self.meta.sizes[image_id]
        if size != (w, h):
            raise DatasetError(
                f"{self.images / image_id}: size {w}x{h} differs from image_sizes.txt "
                f"({size[0]}x{size[1]})"
            )
        boxes = np.array(
            [
                resize_bbox(b, size, (RESIZE_LENGTH, RESIZE_LENGTH))
                for b in self.meta.boxes[image_id]
            ]
        )
        return WsolSample(image_id, image, boxes, None, None)

    def __iter__(self) -> Iterator[WsolSample]:
        for image_id in self.ids:
            try:
                yield self.load(image_id)
            except DatasetError as err:
                if not self.skip_bad:
                    raise
                self.skipped.append((image_id, str(err)))
