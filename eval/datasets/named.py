"""Named dataset layouts, as distributed by their authors (splits: the paper, sections 4.1 and 4.2;
docs/eval.md).

| name        | expected under ROOT                                          | ground truth           |
|-------------|--------------------------------------------------------------|------------------------|
| folder      | images/**/X.* + masks/**/X.*                                  | binary (strict)        |
| ecssd       | images/NNNN.jpg + ground_truth_mask/NNNN.png                 | value >= 128           |
| duts-te     | DUTS-TE-Image/X.jpg + DUTS-TE-Mask/X.png                     | value >= 128           |
| dut-omron   | DUT-OMRON-image/X.jpg + pixelwiseGT-new-PNG/X.png            | value >= 128           |
| cub         | images.txt, train_val_test_split.txt (ReDO), images/C/X.jpg, | first channel >= 128   |
|             | segmentations/C/X.png; the split-2 (test) images, 1,000      | (ReDO: seg/255 > 0.5)  |
| flowers     | setid.mat, jpg/image_NNNNN.jpg, segmim/segmim_NNNNN.jpg;     | NOT(R==0 or G==0 or    |
|             | ReDO's test set = the official `trnid` list (1,020)          | B==254) on the trimap  |

Saliency ground truths are thresholded at 128 (the protocol's rule) because the published
masks of ECSSD/DUTS/DUT-OMRON contain anti-aliased grey edges. A layout's folders may also be
one level down (e.g. ROOT/DUTS-TE/DUTS-TE-Image).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from eval.datasets.folder import FolderPairs, PairDataset, index_folder, match_pairs
from eval.datasets.io import DatasetError, read_binary_mask, read_raw


def _find_dir(root: Path, sub: str, parents: tuple[str, ...] = ()) -> Path:
    for base in (root, *(root / p for p in parents)):
        if (base / sub).is_dir():
            return base / sub
    raise DatasetError(f"{root}: no {sub}/ folder (is this the right --layout?)")


def _saliency_layout(image_sub: str, mask_sub: str, parents: tuple[str, ...], label: str):
    def build(root: str | Path, skip_bad: bool = False) -> PairDataset:
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: no such folder")
        img_dir = _find_dir(root, image_sub, parents)
        mask_dir = _find_dir(root, mask_sub, parents)
        images, masks = index_folder(img_dir), index_folder(mask_dir)
        if not images:
            raise DatasetError(f"{img_dir}: no image files")
        pairs, skipped = match_pairs(images, masks, skip_bad)
        if not pairs:
            raise DatasetError(f"{root}: no image has a mask with the same name")

        def reader(path: Path) -> np.ndarray:
            return read_binary_mask(path, binarize=True)

        return PairDataset(pairs, reader, skip_bad, skipped, f"{label} {root}")

    return build


def _read_table(path: Path, columns: int) -> list[list[str]]:
    if not path.is_file():
        raise DatasetError(f"{path}: missing")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != columns:
            raise DatasetError(f"{path}:{n}: expected {columns} fields, got {line!r}")
        rows.append(parts)
    return rows


def cub_redo_test(root: str | Path, skip_bad: bool = False, split: int = 2) -> PairDataset:
    """CUB-200-2011, ReDO split (Chen et al. 2019): split 2 of train_val_test_split.txt."""
    root = Path(root)
    if not (root / "images.txt").is_file() and (root / "CUB_200_2011" / "images.txt").is_file():
        root = root / "CUB_200_2011"
    files = dict(_read_table(root / "images.txt", 2))
    split_file = root / "train_val_test_split.txt"
    if not split_file.is_file():
        raise DatasetError(
            f"{split_file}: missing; copy ReDO's datasplits/cub/train_val_test_split.txt there"
        )
    pairs, skipped = [], []
    for image_id, s in _read_table(split_file, 2):
        if int(s) != split:
            continue
        if image_id not in files:
            raise DatasetError(f"{split_file}: image id {image_id} is not in images.txt")
        rel = files[image_id]
        img = root / "images" / rel
        seg = root / "segmentations" / (rel.rsplit(".", 1)[0] + ".png")
        missing = [p for p in (img, seg) if not p.is_file()]
        if missing:
            if not skip_bad:
                raise DatasetError(f"{missing[0]}: missing")
            skipped.append((rel, f"{missing[0]}: missing"))
            continue
        pairs.append((rel.rsplit(".", 1)[0], img, seg))
    if not pairs:
        raise DatasetError(f"{split_file}: no image in split {split}")

    def reader(path: Path) -> np.ndarray:
        seg = read_raw(path)
        if seg.ndim == 3:
            seg = seg[..., 0]  # ReDO keeps the first channel
        return seg >= 128  # ReDO: seg / 255 > 0.5

    return PairDataset(pairs, reader, skip_bad, skipped, f"CUB-200-2011 ReDO split {split} {root}")


def flowers_trimap_foreground(seg_rgb: np.ndarray) -> np.ndarray:
    """ReDO's Flowers rule: foreground = NOT (R == 0 or G == 0 or B == 254)."""
    r, g, b = seg_rgb[..., 0], seg_rgb[..., 1], seg_rgb[..., 2]
    return ~((r == 0) | (g == 0) | (b == 254))


def flowers_redo_test(root: str | Path, skip_bad: bool = False, key: str = "trnid") -> PairDataset:
    """Oxford Flowers-102 with ReDO's split: the test set is the official `trnid` list."""
    from scipy.io import loadmat

    root = Path(root)
    setid = root / "setid.mat"
    if not setid.is_file():
        raise DatasetError(f"{setid}: missing (the official Flowers-102 split file)")
    try:
        ids = loadmat(str(setid))[key].ravel()
    except (KeyError, ValueError, OSError) as err:
        raise DatasetError(f"{setid}: cannot read the {key!r} list ({err})") from err
    pairs, skipped = [], []
    for i in sorted(int(x) for x in ids):
        img = root / "jpg" / f"image_{i:05d}.jpg"
        seg = root / "segmim" / f"segmim_{i:05d}.jpg"
        missing = [p for p in (img, seg) if not p.is_file()]
        if missing:
            if not skip_bad:
                raise DatasetError(f"{missing[0]}: missing")
            skipped.append((f"image_{i:05d}", f"{missing[0]}: missing"))
            continue
        pairs.append((f"image_{i:05d}", img, seg))

    def reader(path: Path) -> np.ndarray:
        seg = read_raw(path)
        if seg.ndim != 3:
            raise DatasetError(f"{path}: expected a colour trimap segmentation")
        return flowers_trimap_foreground(seg)

    return PairDataset(pairs, reader, skip_bad, skipped, f"Flowers-102 ReDO test ({key}) {root}")


def _folder(root, skip_bad: bool = False) -> PairDataset:
    return FolderPairs(root, skip_bad=skip_bad)


def _folder_binarize(root, skip_bad: bool = False) -> PairDataset:
    return FolderPairs(root, skip_bad=skip_bad, binarize=True)


LAYOUTS: dict[str, Callable[..., PairDataset]] = {
    "folder": _folder,
    "folder-grey": _folder_binarize,  # generic layout, grey masks thresholded at 128
    "ecssd": _saliency_layout("images", "ground_truth_mask", ("ECSSD",), "ECSSD"),
    "duts-te": _saliency_layout("DUTS-TE-Image", "DUTS-TE-Mask", ("DUTS-TE",), "DUTS-TE"),
    "dut-omron": _saliency_layout(
        "DUT-OMRON-image", "pixelwiseGT-new-PNG", ("DUT-OMRON",), "DUT-OMRON"
    ),
    "cub": cub_redo_test,
    "flowers": flowers_redo_test,
}


def load_layout(name: str, root: str | Path, skip_bad: bool = False) -> PairDataset:
    """The dataset at `root` read with layout `name` (see the table above)."""
    key = name.lower()
    if key not in LAYOUTS:
        raise DatasetError(f"unknown layout {name!r}; choose one of {', '.join(LAYOUTS)}")
    return LAYOUTS[key](root, skip_bad=skip_bad)
