"""`eval predict`: write a probability map and a mask per image of a folder, no scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import segcore
from eval.commands.common import make_predictor, record_options
from eval.datasets.io import IMAGE_EXTS
from segcore.cli import UsageError


def cmd_predict(args) -> dict:
    import cv2

    from eval.batching import predict_stream
    from eval.datasets.folder import index_folder
    from eval.datasets.io import read_image
    from eval.progress import with_progress
    from eval.report import write_json
    from segcore import storage

    img_dir = Path(args.images)
    if not img_dir.is_dir():
        raise UsageError(f"--images {img_dir}: no such folder")
    files = index_folder(img_dir)
    if not files:
        raise UsageError(f"--images {img_dir}: no image files ({', '.join(IMAGE_EXTS)})")
    predictor = make_predictor(args)
    names = sorted(files)
    named = with_progress(names, len(names), "predict", not args.no_progress)
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
        "cli": record_options(args),
        "version": segcore.__version__,
    }
    write_json(storage.join(args.out, "predict.json"), info)
    return info
