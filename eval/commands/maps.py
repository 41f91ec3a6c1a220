"""`eval maps`: score precomputed prediction maps (8-bit images or .npy floats) against masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eval.commands.common import conventions, record_options
from eval.datasets.io import DatasetError
from segcore.cli import UsageError


def read_prediction(path: Path) -> np.ndarray:
    """A saved map: 8-bit grey image (q/255) or .npy float in [0, 1]; bad values name the file."""
    from eval.datasets.io import read_raw

    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DatasetError(f"{path}: unreadable .npy ({err})") from err
        if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.floating):
            raise DatasetError(f"{path}: expected a 2-D float map, got {arr.dtype} {arr.shape}")
        if not np.isfinite(arr).all():
            raise DatasetError(f"{path}: prediction contains NaN or infinite values")
        if arr.min() < 0 or arr.max() > 1:
            raise DatasetError(
                f"{path}: prediction values must lie in [0, 1], "
                f"got [{arr.min():.4g}, {arr.max():.4g}]"
            )
        return arr.astype(np.float64)
    arr = read_raw(path)
    if arr.ndim == 3:
        if not (arr == arr[..., :1]).all():
            raise DatasetError(f"{path}: colour prediction map; expected a grey map")
        arr = arr[..., 0]
    return arr  # uint8: q / 255


def cmd_maps(args) -> dict:
    from eval.datasets.folder import index_folder, match_pairs
    from eval.datasets.io import read_binary_mask, read_image
    from eval.metrics import SaliencyMetrics
    from eval.progress import with_progress
    from eval.report import write_saliency_report

    pred_dir, gt_dir = Path(args.pred), Path(args.gt)
    for flag, d in (("--pred", pred_dir), ("--gt", gt_dir)):
        if not d.is_dir():
            raise UsageError(f"{flag} {d}: no such folder")
    preds = index_with_npy(pred_dir)
    gts = index_folder(gt_dir)
    if not preds:
        raise UsageError(f"--pred {pred_dir}: no prediction maps")
    if not gts:
        raise UsageError(f"--gt {gt_dir}: no mask files")
    pairs, skipped = match_pairs(preds, gts, args.skip_bad)
    if not pairs:
        raise UsageError(f"no prediction in {pred_dir} has a mask with the same name in {gt_dir}")
    images = index_folder(Path(args.images)) if args.images else {}
    metrics = SaliencyMetrics(conventions(args))

    def load_pair(pred_path, gt_path):
        pred = read_prediction(pred_path)
        gt = read_binary_mask(gt_path, binarize=args.binarize)
        if pred.shape != gt.shape:
            raise DatasetError(
                f"{pred_path}: prediction size {pred.shape[1]}x{pred.shape[0]} != mask size "
                f"{gt.shape[1]}x{gt.shape[0]} of {gt_path}"
            )
        return pred, gt

    progress = with_progress(pairs, len(pairs), "maps", not args.no_progress)
    for name, pred_path, gt_path in progress:
        try:
            pred, gt = load_pair(pred_path, gt_path)
        except DatasetError as err:
            if not args.skip_bad:
                raise
            skipped.append((name, str(err)))
            continue
        metrics.update(pred, gt, names=name)
    if not len(metrics):
        raise UsageError("every pair was skipped; nothing to score")
    lookup = {n: (p, g) for n, p, g in pairs}

    def load(n):
        p, g = load_pair(*lookup[n])
        p = p / 255.0 if p.dtype == np.uint8 else p
        return (read_image(images[n]) if n in images else None), p, g

    info = {
        "command": "maps",
        "cli": record_options(args),
        "dataset": f"maps {pred_dir} vs {gt_dir}",
        "skipped": [{"name": n, "reason": r} for n, r in skipped],
    }
    return write_saliency_report(args.out, args.name or gt_dir.name, metrics, info, load)


def index_with_npy(root: Path) -> dict[str, Path]:
    """Relative stem -> file for every image and every .npy map under `root` (recursive); two
    files with the same stem are a DatasetError."""
    from eval.datasets.folder import index_folder

    found = index_folder(root)
    for path in sorted(root.rglob("*.npy")):
        key = path.relative_to(root).with_suffix("").as_posix()
        if key in found:
            raise DatasetError(f"{path}: two files with the same stem ({found[key].name})")
        found[key] = path
    return found
