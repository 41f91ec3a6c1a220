"""`python -m eval`: score segmenters and saliency maps with exact, named conventions.

    python -m eval saliency --model run/model.pt2 --data data/ECSSD --layout ecssd --out rep/ecssd
    python -m eval maps     --pred maps/ --gt data/ECSSD/ground_truth_mask --out rep/maps
    python -m eval wsol     --model run/model.pt2 --dataset cub --metadata meta/CUB/test \
                            --images data/CUB_200_2011/images --out rep/wsol_cub
    python -m eval predict  --model run/model.pt2 --images my_photos/ --out my_masks/
    python -m eval baseline --method rbd --data data/weizmann_horse --out rep/rbd_horses

Every user error (bad path, empty folder, unmatched pairs, NaN or out-of-range predictions,
unknown layout, bad option) ends with one line on stderr and exit code 2. This module builds
the options (every default shown in `--help`) and dispatches to eval/commands/; the commands
and their conventions: docs/eval.md, docs/metrics.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from eval import protocol
from eval.baselines import METHODS
from eval.commands.common import CONVENTIONS
from eval.commands.maps import cmd_maps
from eval.commands.predict import cmd_predict
from eval.commands.saliency import cmd_baseline, cmd_saliency
from eval.commands.wsol import cmd_wsol
from eval.datasets.io import DatasetError
from eval.datasets.named import LAYOUTS
from eval.datasets.wsol import DATASETS
from eval.errors import PredictionError
from eval.metrics.wsol import INTERVAL as WSOL_INTERVAL
from segcore.cli import UsageError
from segcore.options import Parser

PROG = "python -m eval"


def _add_common(p: argparse.ArgumentParser, name_default: str) -> None:
    p.add_argument("--out", required=True, help="report folder, local path or s3:// URL (required)")
    p.add_argument(
        "--name", default=None, help=f"dataset name shown in the report (default: {name_default})"
    )
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out unreadable/unmatched/mismatched pairs and list them in the report "
        "(default: stop with an error naming the file)",
    )
    _add_no_progress(p)


def _add_no_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bar (default: shown)")


def _add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="exported model.pt2 or its folder (required)")
    p.add_argument(
        "--device",
        default=protocol.DEVICE,
        help="torch device: auto, cpu, cuda, cuda:N or mps (default: %(default)s)",
    )
    p.add_argument(
        "--short-side",
        type=int,
        default=protocol.SHORT_SIDE,
        help="resize the shorter side to this, 0: no resize (default: %(default)s)",
    )
    p.add_argument(
        "--no-quantize",
        action="store_true",
        help="keep float maps (default: quantise to uint8 like the authors)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=protocol.BATCH_SIZE,
        help="images per forward pass (default: %(default)s)",
    )


def _add_dataset(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset root folder (required)")
    p.add_argument(
        "--layout",
        default="folder",
        help=f"how --data is laid out: {', '.join(LAYOUTS)} (default: %(default)s)",
    )
    p.add_argument(
        "--limit", type=int, default=None, help="score only the first N pairs (default: all)"
    )


def _add_conventions(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--conventions",
        choices=sorted(CONVENTIONS),
        default="paper",
        help="metric conventions: the paper's protocol or PySODMetrics' (default: %(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("saliency", help="predict and score a dataset of image/mask pairs")
    _add_model(p)
    _add_dataset(p)
    _add_conventions(p)
    _add_common(p, name_default="the --data folder's name")

    p = sub.add_parser("maps", help="score precomputed prediction maps against masks")
    p.add_argument(
        "--pred",
        required=True,
        help="folder of prediction maps (8-bit PNG/JPG, or "
        ".npy float in [0, 1]) named like the masks (required)",
    )
    p.add_argument("--gt", required=True, help="folder of ground-truth masks (required)")
    p.add_argument(
        "--images",
        default=None,
        help="image folder, for the report grid (default: none, the grid shows no images)",
    )
    p.add_argument(
        "--binarize",
        action="store_true",
        help="threshold grey masks at 128 (default: masks must be binary)",
    )
    _add_conventions(p)
    _add_common(p, name_default="the --gt folder's name")

    p = sub.add_parser("wsol", help="MaxBoxAcc (CUB, ImageNet) or PxAP (OpenImages)")
    _add_model(p)
    p.add_argument(
        "--dataset",
        required=True,
        choices=list(DATASETS),
        help="cub or imagenet (box metadata, MaxBoxAcc) or openimages (masks, PxAP) (required)",
    )
    p.add_argument(
        "--metadata", required=True, help="wsolevaluation metadata/<DS>/test folder (required)"
    )
    p.add_argument(
        "--images", required=True, help="image root, image ids are relative to it (required)"
    )
    p.add_argument(
        "--masks", default=None, help="OpenImages mask root (default: the --images folder)"
    )
    p.add_argument(
        "--interval",
        type=float,
        default=WSOL_INTERVAL,
        help="CAM threshold step (default: %(default)s)",
    )
    p.add_argument(
        "--limit", type=int, default=None, help="score only the first N images (default: all)"
    )
    _add_common(p, name_default="the dataset's, e.g. CUB")

    p = sub.add_parser("predict", help="write probability maps and masks for a folder")
    _add_model(p)
    p.add_argument("--images", required=True, help="folder of images, nested allowed (required)")
    p.add_argument(
        "--out", required=True, help="output folder: prob/<name>.png, mask/<name>.png (required)"
    )
    _add_no_progress(p)

    p = sub.add_parser("baseline", help="score a classic unsupervised method (rbd, center)")
    p.add_argument("--method", required=True, help=f"one of {', '.join(METHODS)} (required)")
    _add_dataset(p)
    _add_conventions(p)
    _add_common(p, name_default="the --data folder's name")
    return parser


COMMANDS = {
    "saliency": cmd_saliency,
    "maps": cmd_maps,
    "wsol": cmd_wsol,
    "predict": cmd_predict,
    "baseline": cmd_baseline,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
