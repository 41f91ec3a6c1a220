"""Pseudo-labels for self-training: predict, select, augment, and the loss that ignores.

A round's labels are the current model's foreground probabilities on every target image,
quantised to uint8 (q = round(255 p)), in eval mode and optionally averaged with the mirror
image's prediction. From them:
  - a pixel is foreground when q >= 128, and is *certain* when |p - 0.5| >= margin; uncertain
    pixels become IGNORE and do not enter the loss;
  - an image's confidence is its fraction of certain pixels; the `keep` most confident images
    (stable order on ties) are trained on in the round;
  - the agreement between rounds is the IoU of the two rounds' foreground over all images.
Every function is deterministic: equal inputs give equal labels and batches.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from trainer.unet import UNet, foreground_probability

IGNORE = 255  # label of a pixel the loss leaves out
FOREGROUND_Q = 128  # q >= 128 <=> p >= 0.5 (up to the uint8 rounding)
# Below these, a round's labels are too unsure or too unstable for self-training to be likely
# to help (label-free): on the world, where it helped, round 1 had 94% of the pixels outside
# the margin and the rounds agreed at 0.94-0.96; on real photos with the world's U-Net, where
# it hurt, 53-58% and 0.53-0.74 (docs/self-training.md).
DOUBT_CERTAIN = 0.8
DOUBT_AGREEMENT = 0.85


@torch.inference_mode()
def predict(
    net: UNet, images: np.ndarray, device: torch.device, flip: bool, batch: int = 256
) -> np.ndarray:
    """uint8 probabilities [N, R, R] of `net` (eval mode) on uint8 images [N, R, R, 3]."""
    was_training = net.training
    net.eval()
    out = np.empty(images.shape[:3], dtype=np.uint8)
    try:
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i : i + batch]).to(device).permute(0, 3, 1, 2).float()
            x = x.div_(127.5).sub_(1.0)
            p = foreground_probability(net(x), net.loss)
            if flip:
                mirrored = foreground_probability(net(x.flip(-1)), net.loss).flip(-1)
                p = (p + mirrored) / 2
            if not torch.isfinite(p).all():
                raise FloatingPointError("non-finite model output on the target images")
            q = torch.round(p[:, 0] * 255).to(torch.uint8)
            out[i : i + len(x)] = q.cpu().numpy()
    finally:
        net.train(was_training)
    return out


def certain(q: np.ndarray, margin: float) -> np.ndarray:
    """Pixels whose probability is at least `margin` away from 0.5."""
    return np.abs(q.astype(np.float32) / 255.0 - 0.5) >= margin


def select(q: np.ndarray, margin: float, keep: float) -> tuple[np.ndarray, dict]:
    """(indices of the kept images, ascending; the round's statistics)."""
    sure = certain(q, margin)
    score = sure.reshape(len(q), -1).mean(axis=1)
    n_keep = max(1, round(keep * len(q)))
    kept = np.sort(np.argsort(-score, kind="stable")[:n_keep])
    fg = q >= FOREGROUND_Q
    stats = {
        "adapt_images": len(q),
        "adapt_kept_images": int(n_keep),
        "adapt_kept_pixels": float(sure[kept].mean()),  # of the kept images' pixels
        "adapt_certain_pixels": float(sure.mean()),  # of all images' pixels
        "adapt_foreground": float(fg[kept].mean()),
        "adapt_min_kept_confidence": float(score[kept].min()),
    }
    return kept, stats


def refined_stats(raw: np.ndarray, refined: np.ndarray, kept: np.ndarray, margin: float) -> dict:
    """What --adapt-refine did to a round's labels: the share of the kept images' pixels whose
    label it flipped, and the share it leaves outside the margin (the images were kept by the
    model's own confidence, before refinement)."""
    flipped = (raw[kept] >= FOREGROUND_Q) != (refined[kept] >= FOREGROUND_Q)
    return {
        "adapt_refine_flipped": float(flipped.mean()),
        "adapt_refine_kept_pixels": float(certain(refined[kept], margin).mean()),
    }


def agreement(previous: np.ndarray, q: np.ndarray) -> float:
    """IoU of the foreground of two rounds' labels over all images (1.0 if both empty)."""
    a, b = previous >= FOREGROUND_Q, q >= FOREGROUND_Q
    union = int(np.logical_or(a, b).sum())
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def doubt(stats: dict) -> str | None:
    """Why a round's statistics make self-training unlikely to help, or None."""
    reasons = []
    if stats["adapt_certain_pixels"] < DOUBT_CERTAIN:
        reasons.append(
            f"only {stats['adapt_certain_pixels']:.0%} of the pixels are outside the margin"
        )
    agree = stats.get("adapt_agreement")
    if agree is not None and agree < DOUBT_AGREEMENT:
        reasons.append(f"the labels agree with the last round's at IoU {agree:.2f} only")
    if not reasons:
        return None
    return (
        "; ".join(reasons) + ": the model is unsure of the target images, and self-training "
        "may amplify its mistakes (docs/self-training.md#when-it-does-not-help)"
    )


def targets(q: np.ndarray, margin: float) -> np.ndarray:
    """uint8 labels: 1 foreground, 0 background, IGNORE where uncertain."""
    labels = (q >= FOREGROUND_Q).astype(np.uint8)
    labels[~certain(q, margin)] = IGNORE
    return labels


def target_batch(
    images: np.ndarray,
    labels: np.ndarray,
    kept: np.ndarray,
    n: int,
    key: tuple[int, ...],
    min_scale: float,
) -> tuple[np.ndarray, np.ndarray]:
    """n (image, label) pairs drawn with replacement from the kept images, each with a random
    resized crop (area in [min_scale, 1], aspect in [3/4, 4/3]) back to the full side and a
    random horizontal flip; the draw is a pure function of `key` (seed, rank, step)."""
    import cv2

    rng = np.random.default_rng(list(key))
    side = images.shape[1]
    out_x = np.empty((n, side, side, 3), dtype=np.uint8)
    out_y = np.empty((n, side, side), dtype=np.uint8)
    for j, idx in enumerate(kept[rng.integers(len(kept), size=n)]):
        area = rng.uniform(min_scale, 1.0)
        ratio = float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
        w = int(np.clip(round(side * np.sqrt(area * ratio)), 1, side))
        h = int(np.clip(round(side * np.sqrt(area / ratio)), 1, side))
        x0, y0 = int(rng.integers(side - w + 1)), int(rng.integers(side - h + 1))
        img = images[idx, y0 : y0 + h, x0 : x0 + w]
        lab = labels[idx, y0 : y0 + h, x0 : x0 + w]
        if (h, w) != (side, side):
            img = cv2.resize(img, (side, side), interpolation=cv2.INTER_LINEAR)
            lab = cv2.resize(lab, (side, side), interpolation=cv2.INTER_NEAREST)
        if rng.random() < 0.5:
            img, lab = img[:, ::-1], lab[:, ::-1]
        out_x[j], out_y[j] = img, lab
    return out_x, out_y


def jitter(images: np.ndarray, strength: float, key: tuple[int, ...]) -> np.ndarray:
    """The student's noise (Xie et al., Noisy Student, 2020): each uint8 image [N, R, R, 3]
    gets a random brightness, contrast and saturation factor, each uniform in
    [1 - strength, 1 + strength] and applied in that order, from a generator of its own keyed
    by `key` (so the crops and flips drawn from `key` do not change); the labels, made on the
    clean image, stay. strength 0 returns the images unchanged."""
    if strength == 0:
        return images
    rng = np.random.default_rng([*key, 1])
    factors = rng.uniform(1.0 - strength, 1.0 + strength, size=(len(images), 3)).astype(np.float32)
    x = images.astype(np.float32)
    x *= factors[:, 0, None, None, None]  # brightness
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    x = (x - mean) * factors[:, 1, None, None, None] + mean  # contrast
    gray = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    x = (x - gray[..., None]) * factors[:, 2, None, None, None] + gray[..., None]  # saturation
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def masked_loss(logits: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean per-pixel loss over the pixels whose `target` (uint8 [N,H,W]) is not IGNORE;
    0 (with a gradient path) when every pixel is ignored."""
    valid = target != IGNORE
    if loss == "ce":
        per_pixel = F.cross_entropy(
            logits.float(), torch.where(valid, target, 0).long(), reduction="none"
        )
    elif loss == "bce":
        per_pixel = F.binary_cross_entropy_with_logits(
            logits[:, 0].float(), (target == 1).float(), reduction="none"
        )
    else:
        raise ValueError(f"loss must be 'ce' or 'bce', got {loss!r}")
    weight = valid.float()
    return (per_pixel * weight).sum() / weight.sum().clamp(min=1.0)
