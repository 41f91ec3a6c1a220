"""Validation: the hold-out synthetic shards (how the paper tunes without labels, the paper,
section 3.4) and, optionally, real images through eval's inference protocol (docs/eval.md).

Metrics come from `eval.metrics.SaliencyMetrics` (maxFβ over thresholds k/255, IoU of
p >= 0.5); this module computes none itself.
"""

from __future__ import annotations

import numpy as np
import torch

from trainer.unet import ProbabilityModel, UNet, foreground_probability, segmentation_loss


def to_model_input(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 [N,H,W,3] RGB -> float32 [N,3,H,W] in [-1,1] (the model-file convention)."""
    x = images.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    return x.div_(127.5).sub_(1.0)


@torch.inference_mode()
def synthetic(
    net: UNet, images: np.ndarray, masks: np.ndarray, device: torch.device, batch: int = 64
) -> dict:
    """Loss, IoU and maxFβ of `net` on the hold-out samples (uint8 arrays)."""
    from eval.metrics import SaliencyMetrics

    was_training = net.training
    net.eval()
    metrics = SaliencyMetrics()
    loss_sum = 0.0
    try:
        for i in range(0, len(images), batch):
            x = to_model_input(torch.from_numpy(images[i : i + batch]), device)
            gt = torch.from_numpy(masks[i : i + batch]) >= 128  # ground-truth rule: docs/metrics.md
            logits = net(x)
            if not torch.isfinite(logits).all():
                raise FloatingPointError("non-finite model output on the hold-out set")
            loss_sum += float(segmentation_loss(logits, gt.to(device), net.loss)) * len(x)
            prob = foreground_probability(logits, net.loss)[:, 0].float().cpu().numpy()
            metrics.update(prob, gt.numpy())
    finally:
        net.train(was_training)
    m = metrics.compute()
    return {
        "val_loss": loss_sum / len(images),
        "val_iou": float(m["iou"]),
        "val_max_fbeta": float(m["max_fbeta"]),
        "val_n": int(m["n_images"]),
    }


def check_real_available(folder: str) -> None:
    """Fail at start (not hours later) if --val-data cannot be used."""
    from eval.datasets import FolderPairs  # noqa: F401
    from eval.inference import Predictor  # noqa: F401

    len(list(iter_real(folder, limit=1)))


def iter_real(folder: str, limit: int | None = None):
    from eval.datasets import FolderPairs

    for i, item in enumerate(FolderPairs(folder)):
        if limit is not None and i >= limit:
            return
        yield item


@torch.inference_mode()
def real(net: UNet, folder: str, device: torch.device, short_side: int) -> dict:
    """maxFβ / IoU / accuracy on real images, with eval's protocol (resize short side, run,
    resize the probability back, uint8 quantisation: eval.inference.Predictor)."""
    from eval.batching import predict_stream
    from eval.inference import Predictor
    from eval.metrics import SaliencyMetrics

    was_training = net.training
    net.eval()
    try:
        predictor = Predictor(ProbabilityModel(net), device=str(device), short_side=short_side)
        metrics = SaliencyMetrics()
        for item, prob in predict_stream(predictor, iter_real(folder), lambda s: s.image):
            if not np.isfinite(prob).all():
                raise FloatingPointError("non-finite model output on --val-data")
            metrics.update(prob, item.mask)
    finally:
        net.train(was_training)
    m = metrics.compute()
    return {
        "real_max_fbeta": float(m["max_fbeta"]),
        "real_iou": float(m["iou"]),
        "real_accuracy": float(m["accuracy"]),
        "real_n": int(m["n_images"]),
    }
