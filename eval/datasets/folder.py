"""Image/mask pair datasets: the generic `FolderPairs` layout and the shared machinery.

A dataset is an ordered list of (name, image path, mask path). Pairing problems (an image
without a mask, a mask without an image, two files with the same stem) are found when the
dataset is built; per-file problems (unreadable image, size mismatch, non-binary mask) when a
sample is read. Each is a `DatasetError` naming the file, unless `skip_bad=True`: then the
pair is left out and recorded in `.skipped` as (name, reason), which reports print. A dataset
never becomes silently shorter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eval.datasets.io import IMAGE_EXTS, DatasetError, read_binary_mask, read_image


@dataclass(frozen=True)
class Sample:
    name: str
    image: np.ndarray  # uint8 [H, W, 3] RGB
    mask: np.ndarray  # bool [H, W]
    image_path: str = ""
    mask_path: str = ""


class PairDataset:
    """Ordered (name, image path, mask path) pairs read with `mask_reader`."""

    def __init__(
        self,
        pairs: list[tuple[str, Path, Path]],
        mask_reader: Callable[[Path], np.ndarray],
        skip_bad: bool = False,
        skipped: list[tuple[str, str]] | None = None,
        description: str = "",
    ):
        self.pairs = pairs
        self.mask_reader = mask_reader
        self.skip_bad = skip_bad
        self.skipped: list[tuple[str, str]] = list(skipped or [])
        self.description = description

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def names(self) -> list[str]:
        return [n for n, _, _ in self.pairs]

    def load(self, index: int) -> Sample:
        """Read one pair; raises DatasetError naming the file on any problem."""
        name, img_path, mask_path = self.pairs[index]
        image = read_image(img_path)
        mask = self.mask_reader(mask_path)
        if mask.shape != image.shape[:2]:
            raise DatasetError(
                f"{mask_path}: mask size {mask.shape[1]}x{mask.shape[0]} != image size "
                f"{image.shape[1]}x{image.shape[0]} of {img_path}"
            )
        return Sample(name, image, mask, str(img_path), str(mask_path))

    def __getitem__(self, index: int) -> Sample:
        return self.load(index)

    def __iter__(self) -> Iterator[Sample]:
        """Samples in order; with skip_bad, bad pairs are recorded in `.skipped` instead."""
        for i in range(len(self)):
            try:
                yield self.load(i)
            except DatasetError as err:
                if not self.skip_bad:
                    raise
                self.skipped.append((self.pairs[i][0], str(err)))


def index_folder(root: Path) -> dict[str, Path]:
    """relative stem ('seq/00000') -> file, for every image file under `root` (recursive)."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in IMAGE_EXTS:
            continue
        if path.name.startswith("."):
            continue
        key = path.relative_to(root).with_suffix("").as_posix()
        if key in found:
            raise DatasetError(
                f"{path}: two files with the same stem ({found[key].name}) in {root}"
            )
        found[key] = path
    return found


def match_pairs(
    images: dict[str, Path], masks: dict[str, Path], skip_bad: bool
) -> tuple[list[tuple[str, Path, Path]], list[tuple[str, str]]]:
    """Pairs with equal keys; any unmatched file is an error (or a reported skip)."""
    skipped: list[tuple[str, str]] = []
    problems = [(k, f"{images[k]}: no mask with the same name") for k in images if k not in masks]
    problems += [(k, f"{masks[k]}: no image with the same name") for k in masks if k not in images]
    if problems and not skip_bad:
        more = f" (and {len(problems) - 1} more unmatched files)" if len(problems) > 1 else ""
        raise DatasetError(problems[0][1] + more)
    skipped.extend(problems)
    pairs = [(k, images[k], masks[k]) for k in sorted(images) if k in masks]
    return pairs, skipped


class FolderPairs(PairDataset):
    """Generic layout: `root/images/**/X.ext` paired with `root/masks/**/X.ext` by relative stem
    (nested folders allowed, extensions may differ). Masks must be binary unless `binarize`.
    """

    def __init__(
        self,
        root: str | Path,
        images: str = "images",
        masks: str = "masks",
        skip_bad: bool = False,
        binarize: bool = False,
        gt_rule: str = ">=128",
    ):
        root = Path(root)
        img_dir, mask_dir = root / images, root / masks
        for d in (root, img_dir, mask_dir):
            if not d.is_dir():
                raise DatasetError(
                    f"{d}: no such folder (expected {root}/{images} and {root}/{masks})"
                )
        img_files, mask_files = index_folder(img_dir), index_folder(mask_dir)
        if not img_files:
            raise DatasetError(f"{img_dir}: no image files")
        if not mask_files:
            raise DatasetError(f"{mask_dir}: no mask files")
        pairs, skipped = match_pairs(img_files, mask_files, skip_bad)
        if not pairs:
            raise DatasetError(f"{root}: no image has a mask with the same name")
        self.root = root
        self.binarize = binarize
        self.gt_rule = gt_rule
        super().__init__(pairs, self._read_mask, skip_bad, skipped, f"folder pairs {root}")

    def _read_mask(self, path: Path) -> np.ndarray:
        return read_binary_mask(path, binarize=self.binarize, gt_rule=self.gt_rule)
