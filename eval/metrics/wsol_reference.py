"""A literal, per-threshold transcription of wsolevaluation's box evaluation (slow on purpose).

Kept as the oracle for `eval.metrics.wsol` (tests assert identical results) and as the
baseline of `benchmarks/eval_maxboxacc_speed.py`. It thresholds and runs `cv2.findContours`
once per tau, exactly like the reference's `compute_bboxes_from_scoremaps` /
`BoxEvaluator.accumulate` (MaxBoxAccV2 version with `multi_contour_eval`).
"""

from __future__ import annotations

import cv2
import numpy as np


def reference_iou(box_a: np.ndarray, box_b: np.ndarray) -> np.ndarray:
    """The reference's `calculate_multiple_iou` (tile/transposes included)."""
    num_a, num_b = box_a.shape[0], box_b.shape[0]
    box_a = np.tile(box_a, num_b)
    box_a = np.expand_dims(box_a, axis=1).reshape((num_a, num_b, -1))
    box_b = np.tile(box_b, num_a)
    box_b = np.expand_dims(box_b, axis=1).reshape((num_b, num_a, -1))
    box_b = np.transpose(box_b, (1, 0, 2))
    min_x = np.maximum(box_a[:, :, 0], box_b[:, :, 0])
    min_y = np.maximum(box_a[:, :, 1], box_b[:, :, 1])
    max_x = np.minimum(box_a[:, :, 2], box_b[:, :, 2])
    max_y = np.minimum(box_a[:, :, 3], box_b[:, :, 3])
    area_intersect = np.maximum(0, max_x - min_x + 1) * np.maximum(0, max_y - min_y + 1)
    area_a = (box_a[:, :, 2] - box_a[:, :, 0] + 1) * (box_a[:, :, 3] - box_a[:, :, 1] + 1)
    area_b = (box_b[:, :, 2] - box_b[:, :, 0] + 1) * (box_b[:, :, 3] - box_b[:, :, 1] + 1)
    denominator = (area_a + area_b - area_intersect).astype(np.float64)
    degenerate = np.where(denominator <= 0)
    denominator[degenerate] = 1
    ious = area_intersect / denominator
    ious[degenerate] = 0
    return ious


def reference_boxes(scoremap, threshold_list, multi_contour_eval):
    """Reference `compute_bboxes_from_scoremaps`: (boxes per tau, number of boxes per tau)."""
    height, width = scoremap.shape
    scoremap_image = np.expand_dims((scoremap * 255).astype(np.uint8), 2)

    def scoremap2bbox(threshold):
        _, thr_gray_heatmap = cv2.threshold(
            src=scoremap_image,
            thresh=int(threshold * np.max(scoremap_image)),
            maxval=255,
            type=cv2.THRESH_BINARY,
        )
        contours = cv2.findContours(
            image=thr_gray_heatmap, mode=cv2.RETR_TREE, method=cv2.CHAIN_APPROX_SIMPLE
        )[0]
        if len(contours) == 0:
            return np.asarray([[0, 0, 0, 0]]), 1
        if not multi_contour_eval:
            contours = [max(contours, key=cv2.contourArea)]
        estimated_boxes = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            x0, y0, x1, y1 = x, y, x + w, y + h
            x1 = min(x1, width - 1)
            y1 = min(y1, height - 1)
            estimated_boxes.append([x0, y0, x1, y1])
        return np.asarray(estimated_boxes), len(contours)

    boxes, counts = zip(*[scoremap2bbox(t) for t in threshold_list], strict=True)
    return list(boxes), list(counts)


class ReferenceBoxEvaluator:
    """Reference `BoxEvaluator.accumulate` / `compute` for one contour mode."""

    def __init__(self, threshold_list, iou_threshold_list=(30, 50, 70), multi_contour=False):
        self.threshold_list = list(threshold_list)
        self.iou_threshold_list = list(iou_threshold_list)
        self.multi_contour = multi_contour
        self.num_correct = {t: np.zeros(len(self.threshold_list)) for t in self.iou_threshold_list}
        self.cnt = 0

    def accumulate(self, scoremap, gt_boxes):
        boxes_at_thresholds, number_of_box_list = reference_boxes(
            scoremap, self.threshold_list, self.multi_contour
        )
        boxes_at_thresholds = np.concatenate(boxes_at_thresholds, axis=0)
        multiple_iou = reference_iou(np.array(boxes_at_thresholds), np.array(gt_boxes))
        idx = 0
        sliced_multiple_iou = []
        for nr_box in number_of_box_list:
            sliced_multiple_iou.append(max(multiple_iou.max(1)[idx : idx + nr_box]))
            idx += nr_box
        for thr in self.iou_threshold_list:
            correct = np.where(np.asarray(sliced_multiple_iou) >= (thr / 100))[0]
            self.num_correct[thr][correct] += 1
        self.cnt += 1

    def compute(self) -> list[float]:
        return [
            float((self.num_correct[t] * 100.0 / float(self.cnt)).max())
            for t in self.iou_threshold_list
        ]
