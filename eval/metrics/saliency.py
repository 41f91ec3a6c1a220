"""Saliency / segmentation metrics as a streaming accumulator (METRICS.md, PAPER.md section 6).

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
    binarize_at: float = 0.5  # IoU and accuracy use p >= binarize_at

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
        if not self.beta_sq > 0:
            raise ValueError(f"beta_sq must be > 0, got {self.beta_sq!r}")

    @classmethod
    def paper(cls) -> SaliencyConventions:
        return cls()

    @classmethod
    def pysod(cls) -> SaliencyConventions:
        """PySODMetrics' `Fmeasure(beta=0.3)` + `MAE` conventions (its `step(normalize=True)`)."""
        return cls(
            n_thresholds=256,
            threshold_op=">=",
            quantize="floor",
            gt_rule=">128",
            minmax_normalize=True,
            empty_pred_precision=0.0,
            empty_gt_recall=0.0,
        )

    def thresholds(self) -> np.ndarray:
        return np.arange(self.n_thresholds, dtype=np.float64) / 255.0


def binarize_gt(gt: np.ndarray, rule: str = ">=128") -> np.ndarray:
    """Ground truth as bool: bool arrays as is, integer masks by `rule` (PAPER.md section 6)."""
    gt = np.asarray(gt)
    if gt.dtype == bool:
        return gt
    if not np.issubdtype(gt.dtype, np.integer):
        raise TypeError(f"ground truth must be bool or an integer mask, got dtype {gt.dtype}")
    return gt >= 128 if rule == ">=128" else gt > 128


def _as_float_pred(pred: np.ndarray) -> np.ndarray:
    """Prediction as float64 in [0, 1]; uint8 maps mean q/255. Rejects NaN / out of range."""
    pred = np.asarray(pred)
    if pred.dtype == np.uint8:
        return pred / 255.0
    if pred.dtype == bool or not np.issubdtype(pred.dtype, np.floating):
        raise TypeError(f"prediction must be float in [0, 1] or uint8, got dtype {pred.dtype}")
    pred = pred.astype(np.float64, copy=False)
    if pred.size and not np.isfinite(pred).all():
        raise ValueError("prediction contains NaN or infinite values")
    if pred.size and (pred.min() < 0.0 or pred.max() > 1.0):
        raise ValueError(
            f"prediction values must lie in [0, 1], got [{pred.min():.6g}, {pred.max():.6g}]"
        )
    return pred


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
        # p > k/255 <=> ceil(255 p) > k ;  p >= k/255 <=> floor(255 p) >= k
        if c.threshold_op == ">":
            return np.clip(np.ceil(scaled - _GRID_TOL), 0, 255).astype(np.uint8)
        return np.clip(np.floor(scaled + _GRID_TOL), 0, 255).astype(np.uint8)

    def _update_one(self, pred_in: np.ndarray, gt_in: np.ndarray) -> None:
        c = self.conventions
        if pred_in.size == 0:
            raise ValueError("empty prediction map (0 pixels)")
        p = _as_float_pred(pred_in)
        g = binarize_gt(gt_in, c.gt_rule)
        if c.minmax_normalize:
            lo, hi = p.min(), p.max()
            if hi != lo:
                p = (p - lo) / (hi - lo)
        v = self._levels(pred_in, p)
        # One pass: bin = level + 256 * is_foreground.
        hist = np.bincount(v.ravel().astype(np.intp) + 256 * g.ravel(), minlength=512)
        fg, allp = hist[256:], hist[:256] + hist[256:]
        # revcum[j] = number of pixels with level >= j, j = 0..256
        tp = np.zeros(257, np.int64)
        pp = np.zeros(257, np.int64)
        tp[:256] = np.cumsum(fg[::-1])[::-1]
        pp[:256] = np.cumsum(allp[::-1])[::-1]
        self._tp.append(tp)
        self._pp.append(pp)
        npos = int(tp[0])
        self._npos.append(npos)

        b = p >= c.binarize_at
        inter = int(np.count_nonzero(b & g))
        union = int(np.count_nonzero(b | g))
        # Empty prediction and empty ground truth agree perfectly: IoU 1.
        self._iou.append(inter / union if union else 1.0)
        self._acc.append(float(np.count_nonzero(b == g)) / g.size)
        self._mae.append(float(np.abs(p - g).mean()))

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
