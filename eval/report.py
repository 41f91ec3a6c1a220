"""Evaluation reports: metrics.json, summary.md, curves.png and a worst/best grid.png.

Every file is written atomically (temp + rename locally, one PUT on object storage), and
metrics.json is written LAST, so its presence means the report is complete.

Library entry point for the trainer and the demo:

    from eval.datasets import FolderPairs
    from eval.inference import Predictor
    from eval.report import evaluate_and_report

    result = evaluate_and_report(Predictor("run/model.pt2"), FolderPairs("data/horses"),
                                 "run/eval/horses", name="horses")
    result["max_fbeta"], result["iou"], result["accuracy"]

This module imports neither torch nor matplotlib at import time (matplotlib only when
plotting, with the Agg backend).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import segcore
from eval.batching import predict_stream
from eval.metrics import SaliencyConventions, SaliencyMetrics
from eval.progress import with_progress
from segcore import storage

# Loads (image or None, prediction, ground truth) of one image by name, for the grid.
GridLoader = Callable[[str], tuple[np.ndarray | None, np.ndarray, np.ndarray]]


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become null (strict JSON), numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(url: str, data: dict) -> None:
    text = json.dumps(_clean(data), indent=2, sort_keys=True, allow_nan=False) + "\n"
    storage.write_bytes_atomic(url, text.encode())


# --- saliency ------------------------------------------------------------------------------


def evaluate_and_report(
    predictor,
    dataset,
    out_dir: str,
    name: str = "dataset",
    conventions: SaliencyConventions | None = None,
    progress: bool = True,
    grid_k: int = 4,
    extra: dict | None = None,
) -> dict:
    """Predict every image of `dataset` (a PairDataset such as FolderPairs) with `predictor`
    (an `eval.inference.Predictor`), score it with the paper's protocol (or `conventions`),
    write the report to `out_dir` and return the metrics dict (same as metrics.json)."""
    metrics = SaliencyMetrics(conventions)
    samples = with_progress(iter(dataset), len(dataset), f"eval {name}", progress)
    for s, m in predict_stream(predictor, samples, lambda s: s.image):
        metrics.update(m, s.mask, names=s.name)
    if not len(metrics):
        raise ValueError(f"{name}: no image could be evaluated")
    index = {n: i for i, n in enumerate(dataset.names)}

    def load(n: str):
        s = dataset.load(index[n])
        return s.image, predictor.predict(s.image), s.mask

    info = {
        "dataset": getattr(dataset, "description", name),
        "skipped": [{"name": n, "reason": r} for n, r in getattr(dataset, "skipped", [])],
        "predictor": predictor.settings() if hasattr(predictor, "settings") else {},
        **(extra or {}),
    }
    return write_saliency_report(out_dir, name, metrics, info, load, grid_k=grid_k)


def write_saliency_report(
    out_dir: str,
    name: str,
    metrics: SaliencyMetrics,
    info: dict,
    load: GridLoader | None = None,
    grid_k: int = 4,
) -> dict:
    """Write the four report files for an accumulated SaliencyMetrics; returns metrics.json."""
    result = metrics.compute()
    per_image = metrics.per_image()
    result.update(
        {
            "name": name,
            "version": segcore.__version__,
            "ranking": "per-image IoU at p >= 0.5",
            **info,
        }
    )
    ranked = sorted(per_image, key=lambda r: (r["iou"], r["name"]))
    k = min(grid_k, len(ranked) // 2) if len(ranked) > 1 else len(ranked)
    result["worst"] = ranked[:k]
    result["best"] = ranked[::-1][:k]
    storage.write_bytes_atomic(storage.join(out_dir, "curves.png"), _curves_png(result, name))
    if load is not None and k:
        rows = [("worst", r) for r in result["worst"]] + [("best", r) for r in result["best"]]
        storage.write_bytes_atomic(storage.join(out_dir, "grid.png"), _grid_png(rows, load))
    storage.write_bytes_atomic(
        storage.join(out_dir, "summary.md"), saliency_markdown(result).encode()
    )
    write_json(storage.join(out_dir, "per_image.json"), {"images": per_image})
    write_json(storage.join(out_dir, "metrics.json"), result)
    return result


def saliency_markdown(r: dict) -> str:
    c = r["conventions"]
    lines = [
        f"# {r['name']}: saliency / segmentation metrics",
        "",
        "| images | maxFβ | IoU | accuracy | mean-F | MAE | best threshold |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {r['n_images']} | {r['max_fbeta']:.4f} | {r['iou']:.4f} | {r['accuracy']:.4f} "
        f"| {r['mean_fbeta']:.4f} | {r['mae']:.4f} | "
        + (
            f"{r['best_threshold']:.4f} |" if r.get("best_threshold") is not None else "per image |"
        ),
        "",
        f"Conventions: beta_sq={c['beta_sq']}, {c['n_thresholds']} thresholds k/255 with "
        f"`p {c['threshold_op']} t` ({c['quantize']}), ground truth `{c['gt_rule']}`, "
        f"min-max normalisation {c['minmax_normalize']}, empty-prediction precision "
        f"{c['empty_pred_precision']}, empty-gt recall {c['empty_gt_recall']}, max over "
        f"{c['max_over']}; IoU/accuracy at p >= {c['binarize_at']} per image, then mean.",
        "",
        f"Dataset: {r.get('dataset', '')}. Version {r['version']}.",
    ]
    if r.get("skipped"):
        lines += ["", f"Skipped {len(r['skipped'])} pair(s) (--skip-bad):", ""]
        lines += [f"- `{s['name']}`: {s['reason']}" for s in r["skipped"]]
    lines += ["", "Worst (IoU): " + ", ".join(f"`{w['name']}` {w['iou']:.3f}" for w in r["worst"])]
    lines += ["Best (IoU): " + ", ".join(f"`{w['name']}` {w['iou']:.3f}" for w in r["best"]), ""]
    return "\n".join(lines)


def _figure_bytes(fig, dpi: int = 100) -> bytes:
    import matplotlib.pyplot as plt

    bio = io.BytesIO()
    fig.savefig(bio, format="png", dpi=dpi)
    plt.close(fig)
    return bio.getvalue()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _curves_png(r: dict, name: str) -> bytes:
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(r["thresholds"], r["f_curve"], lw=1.5)
    a.set_xlabel(f"threshold t (foreground: p {r['conventions']['threshold_op']} t)")
    a.set_ylabel("mean F_beta over images")
    a.set_title(f"{name}: maxFβ {r['max_fbeta']:.4f}")
    a.grid(alpha=0.3)
    b.plot(r["recall_curve"], r["precision_curve"], lw=1.5)
    b.set_xlabel("mean recall")
    b.set_ylabel("mean precision")
    b.set_xlim(0, 1.01)
    b.set_ylim(0, 1.01)
    b.set_title("precision / recall")
    b.grid(alpha=0.3)
    fig.tight_layout()
    return _figure_bytes(fig)


def _grid_png(rows: Sequence[tuple[str, dict]], load: GridLoader) -> bytes:
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.1 * len(rows)), squeeze=False)
    for (kind, rec), ax in zip(rows, axes, strict=True):
        image, pred, gt = load(rec["name"])
        panels = [image, pred, gt]
        titles = [f"{kind}: {rec['name']}", f"prediction (IoU {rec['iou']:.3f})", "ground truth"]
        for a, p, t in zip(ax, panels, titles, strict=True):
            if p is not None:
                a.imshow(p, cmap=None if p.ndim == 3 else "gray", vmin=0, vmax=1)
            a.set_title(t, fontsize=8)
            a.axis("off")
    fig.tight_layout()
    return _figure_bytes(fig, dpi=72)


# --- WSOL ----------------------------------------------------------------------------------


def write_wsol_report(out_dir: str, name: str, result: dict, curves: dict | None = None) -> dict:
    """metrics.json + summary.md (+ curves.png of accuracy / precision vs threshold)."""
    result = {"name": name, "version": segcore.__version__, **result}
    if curves:
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(6, 4))
        for label, (x, y) in curves.items():
            ax.plot(x, y, label=label, lw=1.2)
        ax.set_xlabel("CAM threshold tau")
        ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        ax.set_title(name)
        fig.tight_layout()
        storage.write_bytes_atomic(storage.join(out_dir, "curves.png"), _figure_bytes(fig))
    keys = [k for k in ("maxboxacc_v1", "maxboxacc_v2", "pxap") if k in result]
    md = [
        f"# {name}: WSOL metrics",
        "",
        "| images | " + " | ".join(keys) + " |",
        "|---:|" + "---:|" * len(keys),
        f"| {result['n_images']} | " + " | ".join(f"{result[k]:.2f}" for k in keys) + " |",
        "",
        f"Threshold interval {result.get('interval')}; score maps resized to 224x224 (bicubic) "
        "and min-max normalised as in wsolevaluation. Version " + segcore.__version__ + ".",
        "",
    ]
    if result.get("skipped"):
        md += [f"Skipped {len(result['skipped'])} image(s) (--skip-bad).", ""]
    storage.write_bytes_atomic(storage.join(out_dir, "summary.md"), "\n".join(md).encode())
    write_json(storage.join(out_dir, "metrics.json"), result)
    return result
