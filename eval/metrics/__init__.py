"""Metrics (numpy + OpenCV only; importing this never imports torch, Ray or TensorFlow)."""

from eval.metrics.saliency import SaliencyConventions, SaliencyMetrics, binarize_gt
from eval.metrics.wsol import MaxBoxAcc, PxAP, WsolBoxMetrics, box_iou, resize_bbox

__all__ = [
    "MaxBoxAcc",
    "PxAP",
    "SaliencyConventions",
    "SaliencyMetrics",
    "WsolBoxMetrics",
    "binarize_gt",
    "box_iou",
    "resize_bbox",
]
