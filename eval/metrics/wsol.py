"""WSOL metrics of Choe et al. 2020 (`clovaai/wsolevaluation`), re-implemented exactly.

MaxBoxAcc (v1: IoU delta 0.5, largest contour; v2: mean over delta in {0.3, 0.5, 0.7}, all
contours) and PxAP (pixel average precision, dataset-pooled score histograms, ignore regions).
Conventions follow the reference code line by line (docs/metrics.md, WSOL): score maps are
224x224 min-max normalised floats, `u8 = uint8(255 s)`, foreground at tau is
`u8 > int(tau * max(u8))`, boxes use `(x, y, min(x+w, W-1), min(y+h, H-1))` and box IoU counts
both end pixels.

Speed without changing a single result: the binary map at tau depends only on how many
distinct values of `u8` are <= int(tau * max(u8)), so `cv2.findContours` runs once per
distinct level (<= 256), not once per tau (1000 with the default interval 0.001), and the box
IoUs of all levels are computed in one vectorised call.
"""

from __future__ import annotations

import cv2
import numpy as np

RESIZE_LENGTH = 224  # wsolevaluation's _RESIZE_LENGTH
IOU_DELTAS = (0.3, 0.5, 0.7)  # MaxBoxAccV2 (reference: iou_threshold_list = (30, 50, 70))
INTERVAL = 0.001  # CAM threshold step, as in the reference library


def cam_thresholds(interval: float = INTERVAL) -> np.ndarray:
    """tau in `np.arange(0, 1, interval)` (0.001 in the library; 0.01 in its CLI/README)."""
    if not 0 < interval < 1:
        raise ValueError(f"threshold interval must be in (0, 1), got {interval!r}")
    return np.arange(0, 1, interval)


def normalize_scoremap(cam: np.ndarray) -> np.ndarray:
    """Reference `normalize_scoremap`: NaN or constant maps -> zeros, else min-max to [0, 1]."""
    cam = np.asarray(cam, dtype=np.float64).copy()
    if np.isnan(cam).any() or cam.min() == cam.max():
        return np.zeros_like(cam)
    cam -= cam.min()
    cam /= cam.max()
    return cam


def check_scoremap(scoremap: np.ndarray) -> None:
    if not isinstance(scoremap, np.ndarray) or scoremap.ndim != 2:
        raise ValueError(
            f"score map must be a 2-D numpy array, got {getattr(scoremap, 'shape', type(scoremap))}"
        )
    if np.isnan(scoremap).any():
        raise ValueError("score map contains NaN")
    if scoremap.size and (scoremap.min() < 0 or scoremap.max() > 1):
        raise ValueError(
            f"score map values must lie in [0, 1], got [{scoremap.min():.6g}, {scoremap.max():.6g}]"
        )


def resize_bbox(box, image_size, resize_size) -> tuple[int, int, int, int]:
    """Reference `resize_bbox`: sizes are (width, height); coordinates truncated with int()."""
    x0, y0, x1, y1 = map(float, box)
    orig_w, orig_h = image_size
    target_w, target_h = resize_size
    return (
        int(x0 * target_w / orig_w),
        int(y0 * target_h / orig_h),
        int(x1 * target_w / orig_w),
        int(y1 * target_h / orig_h),
    )


def box_iou(boxes_a, boxes_b) -> np.ndarray:
    """IoU matrix [len(a), len(b)] of inclusive-coordinate boxes (x0, y0, x1, y1).

    Both end pixels count: area = (x1 - x0 + 1)(y1 - y0 + 1), as in the reference's
    `calculate_multiple_iou`; a non-positive union gives IoU 0.
    """
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)[:, None, :]
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)[None, :, :]
    ix = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1, 0)
    iy = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1, 0)
    inter = ix * iy
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    union = area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where(union > 0, iou, 0.0)


def _box(contour, width: int, height: int) -> list[int]:
    x, y, w, h = cv2.boundingRect(contour)
    # x + w (not x + w - 1), clipped to the last pixel: the reference's convention.
    return [x, y, min(x + w, width - 1), min(y + h, height - 1)]


def contour_boxes(mask_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(boxes of all contours [K, 4], box of the largest contour [1, 4]) of a 0/255 map,
    as the reference's `scoremap2bbox` with and without `multi_contour_eval`."""
    height, width = mask_u8.shape
    contours = cv2.findContours(mask_u8, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    if len(contours) == 0:
        zero = np.zeros((1, 4), dtype=np.int64)
        return zero, zero
    largest = max(contours, key=cv2.contourArea)  # first of equal areas, like the reference
    boxes = np.asarray([_box(c, width, height) for c in contours], dtype=np.int64)
    return boxes, np.asarray([_box(largest, width, height)], dtype=np.int64)


def boxes_from_binary(mask_u8: np.ndarray, multi_contour: bool) -> np.ndarray:
    """Boxes [K, 4] of the contours of a 0/255 uint8 map (reference `scoremap2bbox`)."""
    every, largest = contour_boxes(mask_u8)
    return every if multi_contour else largest


def threshold_levels(u8: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """The integer cut `int(tau * max(u8))` of the reference, for every tau."""
    # float64 tau times the uint8 maximum, truncated: identical to the reference's int().
    return (taus * np.max(u8)).astype(np.int64)


def distinct_maps(scoremap: np.ndarray, taus: np.ndarray):
    """(binary maps, index [len(taus)] into them): one map per distinct `u8 > cut`."""
    u8 = (scoremap * 255).astype(np.uint8)
    cuts = threshold_levels(u8, taus)
    values = np.unique(u8)
    # Two cuts give the same map `u8 > cut` iff the same number of values are <= cut.
    keys = np.searchsorted(values, cuts, side="right")
    uniq_keys, inverse = np.unique(keys, return_inverse=True)
    maps = []
    for key in uniq_keys:
        # Any cut with this key gives the same map; the largest value below it is one.
        if key == 0:  # every value is above the cut
            maps.append(np.full_like(u8, 255))
        else:
            maps.append(cv2.threshold(u8, int(values[key - 1]), 255, cv2.THRESH_BINARY)[1])
    return maps, inverse.reshape(-1)


def boxes_at_thresholds(scoremap: np.ndarray, taus: np.ndarray, multi_contour: bool):
    """Boxes for every tau: (list of distinct box arrays, index [len(taus)] into that list).

    Contours are computed once per distinct binary map (see module docstring).
    """
    maps, index = distinct_maps(scoremap, taus)
    return [boxes_from_binary(m, multi_contour) for m in maps], index


def _best_iou(box_sets: list[np.ndarray], index: np.ndarray, gt: np.ndarray) -> np.ndarray:
    counts = [len(b) for b in box_sets]
    iou = box_iou(np.concatenate(box_sets), gt).max(axis=1)
    best_per_set = np.maximum.reduceat(iou, np.cumsum([0, *counts[:-1]]))
    return best_per_set[index]


def best_iou_per_threshold(
    scoremap: np.ndarray, gt_boxes, taus: np.ndarray, multi_contour: bool
) -> np.ndarray:
    """[len(taus)] best IoU over (predicted x ground-truth) box pairs at each tau."""
    box_sets, index = boxes_at_thresholds(scoremap, taus, multi_contour)
    return _best_iou(box_sets, index, np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4))


class MaxBoxAcc:
    """Streaming MaxBoxAcc (Choe et al. 2020, Sec. 4): v1 = delta 0.5 with the largest contour,
    v2 = mean over deltas 0.3/0.5/0.7 with all contours. One instance per contour mode.

    `update(scoremap, gt_boxes)`: scoremap 2-D float in [0, 1] (already resized to 224 and
    normalised, see `prepare_scoremap`), gt_boxes [[x0, y0, x1, y1], ...] in the same frame.
    """

    def __init__(
        self,
        multi_contour: bool,
        interval: float = INTERVAL,
        deltas: tuple[float, ...] = IOU_DELTAS,
    ):
        self.multi_contour = multi_contour
        self.interval = interval
        self.deltas = tuple(deltas)
        self.taus = cam_thresholds(interval)
        self.num_correct = {d: np.zeros(len(self.taus), np.int64) for d in self.deltas}
        self.count = 0

    def update(self, scoremap: np.ndarray, gt_boxes) -> None:
        check_scoremap(scoremap)
        gt = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
        if len(gt) == 0:
            raise ValueError("an image needs at least one ground-truth box")
        self._add(best_iou_per_threshold(scoremap, gt, self.taus, self.multi_contour))

    def _add(self, best: np.ndarray) -> None:
        for d in self.deltas:
            self.num_correct[d] += best >= d
        self.count += 1

    def accuracy_curves(self) -> dict[float, np.ndarray]:
        if not self.count:
            raise ValueError("no images were scored")
        return {d: self.num_correct[d] * 100.0 / float(self.count) for d in self.deltas}

    def compute(self) -> dict:
        curves = self.accuracy_curves()
        per_delta = {d: float(curves[d].max()) for d in self.deltas}
        best_tau = {d: float(self.taus[int(np.argmax(curves[d]))]) for d in self.deltas}
        return {
            "maxboxacc": float(np.mean(list(per_delta.values()))),
            "per_delta": {str(d): v for d, v in per_delta.items()},
            "best_tau": {str(d): v for d, v in best_tau.items()},
            "n_images": self.count,
        }


class WsolBoxMetrics:
    """Both MaxBoxAccV1 (delta 0.5, largest contour) and MaxBoxAccV2 in one pass."""

    def __init__(self, interval: float = INTERVAL):
        self.v1 = MaxBoxAcc(multi_contour=False, interval=interval, deltas=(0.5,))
        self.v2 = MaxBoxAcc(multi_contour=True, interval=interval, deltas=IOU_DELTAS)

    @property
    def count(self) -> int:
        return self.v1.count

    def update(self, scoremap, gt_boxes) -> None:
        """One findContours per distinct binary map serves both versions."""
        check_scoremap(scoremap)
        gt = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
        if len(gt) == 0:
            raise ValueError("an image needs at least one ground-truth box")
        maps, index = distinct_maps(scoremap, self.v1.taus)
        every, largest = zip(*(contour_boxes(m) for m in maps), strict=True)
        self.v1._add(_best_iou(list(largest), index, gt))
        self.v2._add(_best_iou(list(every), index, gt))

    def compute(self) -> dict:
        v1, v2 = self.v1.compute(), self.v2.compute()
        return {
            "maxboxacc_v1": v1["maxboxacc"],
            "maxboxacc_v2": v2["maxboxacc"],
            "maxboxacc_v2_per_delta": v2["per_delta"],
            "best_tau_v1": v1["best_tau"]["0.5"],
            "n_images": v1["n_images"],
            "interval": self.v1.interval,
        }


class PxAP:
    """Pixel average precision (Choe et al. 2020; reference `MaskEvaluator`).

    Histograms of foreground and background scores are pooled over the dataset with right
    edges `thresholds + [1, 2, 3]`; pixels of the ignore region are excluded.
    `update(scoremap, gt_mask, ignore=None)`: gt_mask bool [H, W], ignore bool [H, W] or None.
    """

    def __init__(self, interval: float = INTERVAL):
        self.interval = interval
        self.edges = np.append(cam_thresholds(interval), [1.0, 2.0, 3.0])
        self.fg_hist = np.zeros(len(self.edges) - 1, np.int64)
        self.bg_hist = np.zeros(len(self.edges) - 1, np.int64)
        self.count = 0

    def update(self, scoremap: np.ndarray, gt_mask: np.ndarray, ignore=None) -> None:
        check_scoremap(scoremap)
        gt_mask = np.asarray(gt_mask, dtype=bool)
        if gt_mask.shape != scoremap.shape:
            raise ValueError(f"mask shape {gt_mask.shape} != score map shape {scoremap.shape}")
        valid = np.ones_like(gt_mask)
        if ignore is not None:
            ignore = np.asarray(ignore, dtype=bool)
            valid = ~(ignore & ~gt_mask)  # the ignore box minus the foreground
        self.fg_hist += np.histogram(scoremap[gt_mask & valid], bins=self.edges)[0]
        self.bg_hist += np.histogram(scoremap[~gt_mask & valid], bins=self.edges)[0]
        self.count += 1

    def compute(self) -> dict:
        fg = self.fg_hist.astype(np.float64)
        bg = self.bg_hist.astype(np.float64)
        tp = fg[::-1].cumsum()
        fp = bg[::-1].cumsum()
        fn = fg.sum() - tp
        if ((tp + fn) <= 0).all():
            raise ValueError("PxAP: no foreground pixel in the whole evaluation set")
        if ((tp + fp) <= 0).all():
            raise ValueError("PxAP: no scored pixel in the whole evaluation set")
        nonzero = (tp + fp) != 0
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = tp / (tp + fp)
            recall = tp / (tp + fn)
        terms = precision[1:] * np.diff(recall)
        pxap = 100.0 * float(terms[nonzero[1:]].sum())
        return {"pxap": pxap, "n_images": self.count, "interval": self.interval}


def prepare_scoremap(prob: np.ndarray) -> np.ndarray:
    """A segmenter's probability map -> the reference's 224x224 normalised score map
    (bicubic resize of the CAM, then `normalize_scoremap`)."""
    prob = np.asarray(prob, dtype=np.float32)
    resized = cv2.resize(prob, (RESIZE_LENGTH, RESIZE_LENGTH), interpolation=cv2.INTER_CUBIC)
    return normalize_scoremap(resized)
