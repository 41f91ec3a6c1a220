"""Saliency / segmentation metrics as a streaming accumulator (the paper, section 4,
"Evaluation metrics"; exact definitions: docs/metrics.md).

Per image, TP and predicted-positive counts for EVERY threshold come from one 512-bin
`np.bincount` (256 levels x {background, foreground}) and reversed cumulative sums, instead of
thresholding the map 255 times. Only those integer counts are kept per image; precision,
recall and F for all thresholds are derived in `compute()`.

Conventions (all named in `SaliencyConventions`; defaults are the paper's protocol):

- thresholds t_k = k/255, k = 0..254 (`n_thresholds=255`), foreground where `p > t_k`
  (`threshold_op=">"`), p compared exactly (`quantize="exact"`);
- precision = 1 for an empty prediction, recall = 1 for an empty ground truth;
- F_beta = (1 + beta_sq) P R / (beta_sq P + R), beta_sq = 0.3 (this IS beta^2), NaN -> 0;
- maxFβ = max over t of the mean over images of F(t) (`max_over="dataset"`);
- IoU and accuracy of `p >= 0.5` per image, then the mean over images; MAE per image, then mean;
- ground truth is `gt >= 128` for uint8 masks (`gt_rule=">=128"`); bool masks are used as is.

`SaliencyConventions.pysod()` reproduces PySODMetrics' `Fmeasure`/`MAE` exactly (gt > 128,
per-image min-max normalisation, `floor(255 p) >= t` for t = 0..255, empty precision and
recall 0). Means over images use `math.fsum`, so results do not depend on image order or on
how images were split into `update` calls (exactly, not just up to rounding).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

# Tolerance (in units of 1/255) when comparing a float map with the grid k/255: a map stored
# as float32 q/255 carries ~1e-5 of rounding error, and must score exactly like its uint8
# source q.
_GRID_TOL = 1e-4


@dataclass(frozen=True)
class SaliencyConventions:
    """Every convention where published evaluation code differs, with the paper's default."""

    beta_sq: float = 0.3  # beta^2 in F_beta (PySOD calls this `beta`)
    n_thresholds: Literal[255, 256] = 255  # grid k/255 for k = 0..n-1
    threshold_op: Literal[">", ">="] = ">"  # foreground where p > t (paper) or p >= t (PySOD)
    quantize: Literal["exact", "floor"] = "exact"  # compare p itself, or floor(255 p) (PySOD)
    gt_rule: Literal[">=128", ">128"] = ">=128"  # uint8 ground truth -> bool
    minmax_normalize: bool = False  # per-image (p - min) / (max - min) before scoring (PySOD)
    empty_pred_precision: float = 1.0  # precision when nothing is predicted (PySOD: 0)
    empty_gt_recall: float = 1.0  # recall when the ground truth is empty (PySOD: 0)
    max_over: Literal["dataset", "image"] = "dataset"  # max of mean curve / mean of per-image max
    binarize_at: float = 0.5  # IoU and accuracy binarise p >= binarize_at ...
    binarize_op: Literal[">=", ">"] = ">="  # ... or p > binarize_at (PySOD FmeasureV2 binary)
    empty_iou: float = 1.0  # IoU when prediction and ground truth are both empty (PySOD: 0)

    def __post_init__(self):
        if self.n_thresholds not in (255, 256):
            raise ValueError(f"n_thresholds must be 255 or 256, got {self.n_thresholds!r}")
        if self.threshold_op not in (">", ">="):
            raise ValueError(f"threshold_op must be '>' or '>=', got {self.threshold_op!r}")
        if self.quantize not in ("exact", "floor"):
            raise ValueError(f"quantize must be 'exact' or 'floor', got {self.quantize!r}")
        if self.gt_rule not in (">=128", ">128"):
            raise ValueError(f"gt_rule must be '>=128' or '>128', got {self.gt_rule!r}")
        if self.max_over not in ("dataset", "image"):
            raise ValueError(f"max_over must be 'dataset' or 'image', got {self.max_over!r}")
        if self.binarize_op not in (">", ">="):
            raise ValueError(f"binarize_op must be '>' or '>=', got {self.binarize_op!r}")
        if not self.beta_sq > 0:
            raise ValueError(f"beta_sq must be > 0, got {self.beta_sq!r}")

    @classmethod
    def paper(cls) -> SaliencyConventions:
        return cls()

    @classmethod
    def pysod(cls) -> SaliencyConventions:
        """PySODMetrics' `Fmeasure(beta=0.3)` / `FmeasureV2` + `MAE` conventions (its
        `step(normalize=True)`; binary IoU/accuracy use `pred > 0.5`, 0 for an empty union)."""
        return cls(
            n_thresholds=256,
            threshold_op=">=",
            quantize="floor",
            gt_rule=">128",
            minmax_normalize=True,
            empty_pred_precision=0.0,
            empty_gt_recall=0.0,
            binarize_op=">",
            empty_iou=0.0,
        )

    def thresholds(self) -> np.ndarray:
        return np.arange(self.n_thresholds, dtype=np.float64) / 255.0


def binarize_gt(gt: np.ndarray, rule: str = ">=128") -> np.ndarray:
    """Ground truth as bool: bool arrays as is, integer masks by `rule` (docs/metrics.md)."""
    gt = np.asarray(gt)
    if gt.dtype == bool:
        return gt
    if not np.issubdtype(gt.dtype, np.integer):
        raise TypeError(f"ground truth must be bool or an integer mask, got dtype {gt.dtype}")
    if gt.size and gt.max() == 1:
        # A 0/1 mask read with the 128 rule would silently be all background.
        raise ValueError(
            "integer ground truth with values {0, 1}: pass a bool mask (or 0/255 values)"
        )
    return gt >= 128 if rule == ">=128" else gt > 128


def _as_float_pred(pred: np.ndarray) -> np.ndarray:
    """Prediction as float64 in [0, 1]; uint8 maps mean q/255. Rejects NaN / out of range."""
    pred = np.asarray(pred)
    if pred.dtype == np.uint8:
        return pred / 255.0
    if pred.dtype == bool or not np.issubdtype(pred.dtype, np.floating):
        raise TypeError(f"prediction must be float in [0, 1] or uint8, got dtype {pred.dtype}")
    pred = pred.astype(np.float64, copy=False)
    lo, hi = pred.min(), pred.max()
    if not (lo >= 0.0 and hi <= 1.0):  # also False for NaN
        if np.isnan(lo) or np.isnan(hi):
            raise ValueError("prediction contains NaN values")
        raise ValueError(f"prediction values must lie in [0, 1], got [{lo:.6g}, {hi:.6g}]")
    return pred


def _joint_histogram(levels: np.ndarray, g: np.ndarray) -> np.ndarray:
    """512 counts: index = level (0..255) + 256 * is_foreground. uint16 indices: ~6x faster
    than an int64 `level + 256 * g`."""
    idx = levels.astype(np.uint16)
    idx |= g.view(np.uint8).astype(np.uint16) << 8
    return np.bincount(idx.ravel(), minlength=512)


def _fbeta(precision: np.ndarray, recall: np.ndarray, beta_sq: float) -> np.ndarray:
    num = (1.0 + beta_sq) * precision * recall
    den = beta_sq * precision + recall
    with np.errstate(divide="ignore", invalid="ignore"):
        f = num / den
    return np.where(den > 0, f, 0.0)  # P = R = 0 -> NaN -> 0


def _exact_mean(values: np.ndarray) -> np.ndarray | float:
    """Correctly rounded mean over axis 0 (math.fsum): independent of the order of rows."""
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    if values.ndim == 1:
        return math.fsum(values.tolist()) / n
    cols = values.reshape(n, -1).T.tolist()
    return np.array([math.fsum(c) / n for c in cols]).reshape(values.shape[1:])


class SaliencyMetrics:
    """Streaming maxFβ / mean-F / F-curve / IoU / accuracy / MAE (see module docstring).

    `update(pred, gt)`: pred float in [0, 1] (or uint8 = q/255) of shape [H, W] or [N, H, W];
    gt bool or uint8 of the same shape. `compute()` returns a dict of plain floats and lists.
    """

    def __init__(self, conventions: SaliencyConventions | None = None, **overrides):
        base = conventions or SaliencyConventions()
        self.conventions = dataclasses.replace(base, **overrides) if overrides else base
        self._tp: list[np.ndarray] = []  # per image: [257] TP count with level >= j
        self._pp: list[np.ndarray] = []  # per image: [257] predicted-positive count, level >= j
        self._npos: list[int] = []  # per image |g|
        self._iou: list[float] = []
        self._acc: list[float] = []
        self._mae: list[float] = []
        self.names: list[str] = []

    def __len__(self) -> int:
        return len(self._npos)

    def reset(self) -> None:
        self.__init__(self.conventions)

    def update(self, pred, gt, names=None) -> None:
        pred = np.asarray(pred)
        gt = np.asarray(gt)
        if pred.shape != gt.shape:
            raise ValueError(f"prediction shape {pred.shape} != ground truth shape {gt.shape}")
        if pred.ndim == 2:
            pred, gt = pred[None], gt[None]
        elif pred.ndim != 3:
            raise ValueError(f"expected [H, W] or [N, H, W] maps, got shape {pred.shape}")
        if names is None:
            names = [f"#{len(self) + i}" for i in range(pred.shape[0])]
        elif isinstance(names, str):
            names = [names]
        if len(names) != pred.shape[0]:
            raise ValueError(f"{len(names)} names for {pred.shape[0]} images")
        for p, g, name in zip(pred, gt, names, strict=True):
            self._update_one(p, g)
            self.names.append(str(name))

    def _levels(self, pred_in: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Per-pixel level v in 0..255 such that `p op t_k` <=> `v op k` (see module doc)."""
        c = self.conventions
        if c.quantize == "floor":
            return (p * 255).astype(np.uint8)  # PySOD: truncation, no tolerance
        if pred_in.dtype == np.uint8 and not c.minmax_normalize:
            return pred_in
        scaled = p * 255.0
        # p > k/255 <=> ceil(255 p) > k ;  p >= k/255 <=> floor(255 p) >= k. p is in [0, 1],
        # so the results lie in 0..255 (ceil(-1e-4) is -0.0 -> 0).
        if c.threshold_op == ">":
            scaled -= _GRID_TOL
            np.ceil(scaled, out=scaled)
        else:
            scaled += _GRID_TOL
            np.floor(scaled, out=scaled)
        return scaled.astype(np.uint8)

    def _update_one(self, pred_in: np.ndarray, gt_in: np.ndarray) -> None:
        c = self.conventions
        if pred_in.size == 0:
            raise ValueError("empty prediction map (0 pixels)")
        g = binarize_gt(gt_in, c.gt_rule)
        if pred_in.dtype == np.uint8:
            self._update_uint8(pred_in, g)
            return
        p = _as_float_pred(pred_in)
        if c.minmax_normalize:
            lo, hi = p.min(), p.max()
            if hi != lo:
                p = (p - lo) / (hi - lo)
        hist = _joint_histogram(self._levels(pred_in, p), g)
        self._add_counts(hist[:256], hist[256:])
        b = (p > c.binarize_at) if c.binarize_op == ">" else (p >= c.binarize_at)
        n, n_b, n_g = g.size, int(np.count_nonzero(b)), int(hist[256:].sum())
        inter = int(np.count_nonzero(b & g))
        union = n_b + n_g - inter
        self._iou.append(inter / union if union else c.empty_iou)
        self._acc.append(float(n - union + inter) / n)  # TP + TN
        self._mae.append(float(np.abs(p - g).mean()))

    def _update_uint8(self, q: np.ndarray, g: np.ndarray) -> None:
        """8-bit maps: ONE 512-bin histogram of (value, gt) gives every per-image quantity.

        Each pixel's score depends only on its value q, so the per-value scores p(q) (computed
        with the same float operations as the per-pixel path: q/255, then min-max) are applied
        to the histogram instead of to the pixels. Counts are identical; MAE equals the pixel
        mean up to float summation order (~1e-16).
        """
        c = self.conventions
        hist = _joint_histogram(q, g)
        bg, fg = hist[:256], hist[256:]
        present = np.flatnonzero(bg + fg)
        pq = np.arange(256) / 255.0  # p(q), as _as_float_pred computes it
        if c.minmax_normalize:
            lo, hi = pq[present[0]], pq[present[-1]]
            if hi != lo:
                pq = (pq - lo) / (hi - lo)
        levels = self._levels(np.arange(256, dtype=np.float64), pq).astype(np.intp)
        self._add_counts(
            np.bincount(levels, weights=bg, minlength=256).astype(np.int64),
            np.bincount(levels, weights=fg, minlength=256).astype(np.int64),
        )
        b = (pq > c.binarize_at) if c.binarize_op == ">" else (pq >= c.binarize_at)
        inter = int(fg[b].sum())
        union = int((fg + bg)[b].sum() + fg[~b].sum())
        n = int(hist.sum())
        self._iou.append(inter / union if union else c.empty_iou)
        self._acc.append(float(fg[b].sum() + bg[~b].sum()) / n)
        self._mae.append(float((bg * pq).sum() + (fg * (1.0 - pq)).sum()) / n)

    def _add_counts(self, bg: np.ndarray, fg: np.ndarray) -> None:
        """Store reversed cumulative counts: tp[j], pp[j] = pixels with level >= j (j = 0..256)."""
        tp = np.zeros(257, np.int64)
        pp = np.zeros(257, np.int64)
        tp[:256] = np.cumsum(fg[::-1])[::-1]
        pp[:256] = np.cumsum((fg + bg)[::-1])[::-1]
        self._tp.append(tp)
        self._pp.append(pp)
        self._npos.append(int(tp[0]))

    # --- derived quantities -------------------------------------------------------------------

    def _curves(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-image precision, recall, F: arrays [N, n_thresholds] in ascending threshold order."""
        c = self.conventions
        k = np.arange(c.n_thresholds)
        idx = k + 1 if c.threshold_op == ">" else k  # count of level > k == level >= k + 1
        tp = np.stack(self._tp)[:, idx].astype(np.float64)
        pp = np.stack(self._pp)[:, idx].astype(np.float64)
        npos = np.asarray(self._npos, np.float64)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(pp > 0, tp / pp, c.empty_pred_precision)
            recall = np.where(npos > 0, tp / npos, c.empty_gt_recall)
        return precision, recall, _fbeta(precision, recall, c.beta_sq)

    def compute(self) -> dict:
        if not len(self):
            raise ValueError("no images were scored (call update() first)")
        c = self.conventions
        precision, recall, f = self._curves()
        f_curve = _exact_mean(f)
        if c.max_over == "dataset":
            best = int(np.argmax(f_curve))
            max_f = float(f_curve[best])
            best_threshold = float(c.thresholds()[best])
        else:
            max_f = float(_exact_mean(f.max(axis=1)))
            best_threshold = None
        return {
            "max_fbeta": max_f,
            "mean_fbeta": float(_exact_mean(f_curve)),
            "iou": float(_exact_mean(np.asarray(self._iou))),
            "accuracy": float(_exact_mean(np.asarray(self._acc))),
            "mae": float(_exact_mean(np.asarray(self._mae))),
            "n_images": len(self),
            "best_threshold": best_threshold,
            "thresholds": c.thresholds().tolist(),
            "f_curve": f_curve.tolist(),
            "precision_curve": _exact_mean(precision).tolist(),
            "recall_curve": _exact_mean(recall).tolist(),
            "conventions": dataclasses.asdict(c),
        }

    def per_image(self) -> list[dict]:
        """One record per image (for worst/best grids): F at the dataset's best threshold
        (or the image's own best with max_over="image"), IoU, accuracy, MAE."""
        if not len(self):
            return []
        _, _, f = self._curves()
        if self.conventions.max_over == "dataset":
            best = int(np.argmax(_exact_mean(f)))
            f_img = f[:, best]
        else:
            f_img = f.max(axis=1)
        return [
            {"name": n, "fbeta": float(fi), "iou": i, "accuracy": a, "mae": m}
            for n, fi, i, a, m in zip(
                self.names, f_img, self._iou, self._acc, self._mae, strict=True
            )
        ]
