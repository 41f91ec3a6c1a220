"""`python -m eval`: score segmenters and saliency maps with exact, named conventions.

    python -m eval saliency --model run/model.pt2 --data data/ECSSD --layout ecssd --out rep/ecssd
    python -m eval maps     --pred maps/ --gt data/ECSSD/ground_truth_mask --out rep/maps
    python -m eval wsol     --model run/model.pt2 --dataset cub --metadata meta/CUB/test \
                            --images data/CUB_200_2011/images --out rep/wsol_cub
    python -m eval predict  --model run/model.pt2 --images my_photos/ --out my_masks/
    python -m eval baseline --method rbd --data data/weizmann_horse --out rep/rbd_horses

Every user error (bad path, empty folder, unmatched pairs, NaN or out-of-range predictions,
unknown layout) ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import segcore
from eval.datasets.io import IMAGE_EXTS, DatasetError
from eval.errors import PredictionError
from eval.metrics.saliency import SaliencyConventions
from segcore.cli import UsageError

PROG = "python -m eval"
CONVENTIONS = {"paper": SaliencyConventions.paper, "pysod": SaliencyConventions.pysod}


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="report folder (local path or s3:// URL)")
    p.add_argument("--name", default=None, help="dataset name shown in the report")
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out unreadable/unmatched/mismatched pairs and list them in the report "
        "(default: stop with an error naming the file)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="exported model.pt2 (or its folder)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
    p.add_argument(
        "--short-side", type=int, default=128, help="resize shorter side to this (0: no resize)"
    )
    p.add_argument(
        "--no-quantize",
        action="store_true",
        help="keep float maps (default: uint8 like the authors)",
    )
    p.add_argument("--batch-size", type=int, default=16)


def _add_conventions(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--conventions",
        choices=sorted(CONVENTIONS),
        default="paper",
        help="metric conventions: the paper's protocol (default) or PySODMetrics'",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("saliency", help="predict and score a dataset of image/mask pairs")
    _add_model(p)
    p.add_argument("--data", required=True, help="dataset root folder")
    p.add_argument(
        "--layout",
        default="folder",
        help="folder (default), folder-grey, ecssd, duts-te, dut-omron, cub, flowers",
    )
    p.add_argument("--limit", type=int, default=None, help="score only the first N pairs")
    _add_conventions(p)
    _add_common(p)

    p = sub.add_parser("maps", help="score precomputed prediction maps against masks")
    p.add_argument(
        "--pred",
        required=True,
        help="folder of prediction maps (8-bit PNG/JPG, or "
        ".npy float in [0, 1]) named like the masks",
    )
    p.add_argument("--gt", required=True, help="folder of ground-truth masks")
    p.add_argument("--images", default=None, help="optional image folder, for the report grid")
    p.add_argument("--binarize", action="store_true", help="threshold grey masks at 128")
    _add_conventions(p)
    _add_common(p)

    p = sub.add_parser("wsol", help="MaxBoxAcc (CUB, ImageNet) or PxAP (OpenImages)")
    _add_model(p)
    p.add_argument("--dataset", required=True, choices=["cub", "imagenet", "openimages"])
    p.add_argument("--metadata", required=True, help="wsolevaluation metadata/<DS>/test folder")
    p.add_argument("--images", required=True, help="image root (image ids are relative to it)")
    p.add_argument("--masks", default=None, help="OpenImages mask root (default: --images)")
    p.add_argument("--interval", type=float, default=0.001, help="CAM threshold step")
    p.add_argument("--limit", type=int, default=None)
    _add_common(p)

    p = sub.add_parser("predict", help="write probability maps and masks for a folder")
    _add_model(p)
    p.add_argument("--images", required=True, help="folder of images (nested allowed)")
    p.add_argument("--out", required=True, help="output folder: prob/<name>.png, mask/<name>.png")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("baseline", help="score a classic unsupervised method (rbd, center)")
    p.add_argument("--method", required=True, help="rbd or center")
    p.add_argument("--data", required=True)
    p.add_argument("--layout", default="folder")
    p.add_argument("--limit", type=int, default=None)
    _add_conventions(p)
    _add_common(p)
    return parser


def _record(args) -> dict:
    """The resolved command-line options, stored in every report (paths as given)."""
    from segcore.storage import redact

    return {
        k: (redact(str(v)) if isinstance(v, str | Path) else v)
        for k, v in sorted(vars(args).items())
    }


def _predictor(args):
    from eval.inference import Predictor

    if not Path(args.model).exists():
        raise UsageError(f"--model {args.model}: no such file or folder")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.short_side < 0:
        raise UsageError(f"--short-side must be >= 0, got {args.short_side}")
    _check_device(args.device)
    try:
        return Predictor(
            args.model,
            device=args.device,
            short_side=args.short_side or None,
            quantize=not args.no_quantize,
            batch_size=args.batch_size,
        )
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        raise UsageError(f"--model {args.model}: {err}") from err


def _check_device(name: str) -> None:
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as err:
        raise UsageError(f"--device {name!r}: {err}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine")
    count = torch.cuda.device_count() if device.type == "cuda" else 0
    if device.type == "cuda" and device.index is not None and device.index >= count:
        raise UsageError(f"--device {name}: only {count} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {name}: MPS is not available on this machine")


def _dataset(args):
    from eval.datasets import load_layout

    if not Path(args.data).is_dir():
        raise UsageError(f"--data {args.data}: no such folder")
    ds = load_layout(args.layout, args.data, skip_bad=args.skip_bad)
    if args.limit is not None:
        if args.limit < 1:
            raise UsageError(f"--limit must be >= 1, got {args.limit}")
        ds.pairs = ds.pairs[: args.limit]
    return ds


def _conventions(args) -> SaliencyConventions:
    return CONVENTIONS[args.conventions]()


def _evaluate(args, make_predictor, command: str) -> dict:
    """Score `make_predictor()` on the --data/--layout dataset (read first, so data errors
    come before model loading) and write the report."""
    from eval.report import evaluate_and_report

    ds = _dataset(args)
    return evaluate_and_report(
        make_predictor(),
        ds,
        args.out,
        name=args.name or Path(args.data).name,
        conventions=_conventions(args),
        progress=not args.no_progress,
        extra={"command": command, "cli": _record(args)},
    )


def cmd_saliency(args) -> dict:
    return _evaluate(args, lambda: _predictor(args), "saliency")


def cmd_baseline(args) -> dict:
    from eval.baselines import METHODS

    if args.method not in METHODS:
        raise UsageError(f"unknown --method {args.method!r}; choose one of {', '.join(METHODS)}")
    return _evaluate(args, METHODS[args.method], "baseline")


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
                f"{path}: prediction values must lie in [0, 1], got [{arr.min():.4g}, {arr.max():.4g}]"
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
    from eval.report import _progress, write_saliency_report

    pred_dir, gt_dir = Path(args.pred), Path(args.gt)
    for flag, d in (("--pred", pred_dir), ("--gt", gt_dir)):
        if not d.is_dir():
            raise UsageError(f"{flag} {d}: no such folder")
    preds = _index_with_npy(pred_dir)
    gts = index_folder(gt_dir)
    if not preds:
        raise UsageError(f"--pred {pred_dir}: no prediction maps")
    if not gts:
        raise UsageError(f"--gt {gt_dir}: no mask files")
    pairs, skipped = match_pairs(preds, gts, args.skip_bad)
    if not pairs:
        raise UsageError(f"no prediction in {pred_dir} has a mask with the same name in {gt_dir}")
    images = index_folder(Path(args.images)) if args.images else {}
    metrics = SaliencyMetrics(_conventions(args))

    def load_pair(pred_path, gt_path):
        pred = read_prediction(pred_path)
        gt = read_binary_mask(gt_path, binarize=args.binarize)
        if pred.shape != gt.shape:
            raise DatasetError(
                f"{pred_path}: prediction size {pred.shape[1]}x{pred.shape[0]} != mask size "
                f"{gt.shape[1]}x{gt.shape[0]} of {gt_path}"
            )
        return pred, gt

    progress = _progress(pairs, len(pairs), "maps", not args.no_progress)
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
        "cli": _record(args),
        "dataset": f"maps {pred_dir} vs {gt_dir}",
        "skipped": [{"name": n, "reason": r} for n, r in skipped],
    }
    return write_saliency_report(args.out, args.name or gt_dir.name, metrics, info, load)


def _index_with_npy(root: Path) -> dict[str, Path]:
    from eval.datasets.folder import index_folder

    found = index_folder(root)
    for path in sorted(root.rglob("*.npy")):
        key = path.relative_to(root).with_suffix("").as_posix()
        if key in found:
            raise DatasetError(f"{path}: two files with the same stem ({found[key].name})")
        found[key] = path
    return found


def cmd_wsol(args) -> dict:
    from eval.batching import predict_stream
    from eval.datasets.wsol import DATASETS, WsolDataset
    from eval.metrics.wsol import PxAP, WsolBoxMetrics, prepare_scoremap
    from eval.report import _progress, write_wsol_report

    if not 0 < args.interval < 1:
        raise UsageError(f"--interval must be in (0, 1), got {args.interval}")
    ds = WsolDataset(args.metadata, args.images, args.masks, args.skip_bad, args.limit)
    expect_masks = args.dataset == "openimages"
    if ds.meta.has_masks != expect_masks:
        kind = "mask (OpenImages)" if ds.meta.has_masks else "box (CUB/ImageNet)"
        raise UsageError(f"--metadata {args.metadata} is {kind} metadata, not {args.dataset}")
    predictor = _predictor(args)
    metric = PxAP(args.interval) if expect_masks else WsolBoxMetrics(args.interval)
    samples = _progress(iter(ds), len(ds), f"wsol {args.dataset}", not args.no_progress)
    for s, prob in predict_stream(predictor, samples, lambda s: s.image):
        score = prepare_scoremap(prob)
        if expect_masks:
            metric.update(score, s.mask, s.ignore)
        else:
            metric.update(score, s.boxes)
    if metric.count == 0:
        raise UsageError("every image was skipped; nothing to score")
    result = metric.compute()
    curves = None
    if not expect_masks:
        taus = metric.v1.taus
        curves = {"v1 (delta .5, largest contour)": (taus, metric.v1.accuracy_curves()[0.5])}
        for d, c in metric.v2.accuracy_curves().items():
            curves[f"v2 delta {d} (all contours)"] = (taus, c)
        curves = {k: (x.tolist(), y.tolist()) for k, (x, y) in curves.items()}
    result.update(
        {
            "command": "wsol",
            "cli": _record(args),
            "dataset": DATASETS[args.dataset],
            "metadata": str(args.metadata),
            "predictor": predictor.settings(),
            "skipped": [{"name": n, "reason": r} for n, r in ds.skipped],
        }
    )
    return write_wsol_report(args.out, args.name or DATASETS[args.dataset], result, curves)


def cmd_predict(args) -> dict:
    import cv2

    from eval.batching import predict_stream
    from eval.datasets.folder import index_folder
    from eval.datasets.io import read_image
    from eval.report import _progress, write_json
    from segcore import storage

    img_dir = Path(args.images)
    if not img_dir.is_dir():
        raise UsageError(f"--images {img_dir}: no such folder")
    files = index_folder(img_dir)
    if not files:
        raise UsageError(f"--images {img_dir}: no image files ({', '.join(IMAGE_EXTS)})")
    predictor = _predictor(args)
    names = sorted(files)
    named = _progress(names, len(names), "predict", not args.no_progress)
    for name, prob in predict_stream(predictor, named, lambda n: read_image(files[n])):
        q = np.clip(np.round(prob * 255.0), 0, 255).astype(np.uint8)
        for sub, arr in (("prob", q), ("mask", np.where(prob >= 0.5, 255, 0).astype(np.uint8))):
            ok, buf = cv2.imencode(".png", arr)
            assert ok  # encoding a uint8 2-D array cannot fail
            storage.write_bytes_atomic(storage.join(args.out, sub, f"{name}.png"), buf.tobytes())
    info = {
        "n_images": len(names),
        "images": str(img_dir),
        "predictor": predictor.settings(),
        "cli": _record(args),
        "version": segcore.__version__,
    }
    write_json(storage.join(args.out, "predict.json"), info)
    return info


COMMANDS = {
    "saliency": cmd_saliency,
    "maps": cmd_maps,
    "wsol": cmd_wsol,
    "predict": cmd_predict,
    "baseline": cmd_baseline,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "conventions", None) and args.conventions not in CONVENTIONS:
        raise UsageError(f"unknown conventions {args.conventions!r}")
    try:
        result = COMMANDS[args.command](args)
    except DatasetError as err:
        raise UsageError(str(err)) from err
    except PredictionError as err:
        raise UsageError(f"--model {getattr(args, 'model', '')}: {err}") from err
    keys = ("max_fbeta", "iou", "accuracy", "mae", "maxboxacc_v1", "maxboxacc_v2", "pxap")
    shown = {k: round(result[k], 4) for k in keys if isinstance(result.get(k), float)}
    n = result.get("n_images")
    print(f"{args.command}: {n} images " + " ".join(f"{k}={v}" for k, v in shown.items()))
    print(f"wrote {args.out}")
    return 0
