"""Pseudo-label refinement by the target image's colours: a fully connected CRF's mean field,
cut to a window (`--adapt-refine crf`).

The U-Net learnt its object borders from GAN images; on the user's images the borders it
draws need not follow the image's own edges. A conditional random field with Gaussian edge
potentials (Krähenbühl & Koltun, "Efficient Inference in Fully Connected CRFs with Gaussian
Edge Potentials", NIPS 2011) moves each pixel towards the label of the pixels near it that
have its colour, so a label border settles on a colour border. The model's probability p is
the unary term (-log p, -log(1 - p)); two Potts pairwise terms act between pixels i, j:

  appearance  W_APPEARANCE * exp(-|x_i - x_j|^2 / 2 theta_a^2 - |I_i - I_j|^2 / 2 theta_b^2)
  smoothness  W_SMOOTHNESS * exp(-|x_i - x_j|^2 / 2 theta_g^2)

with positions x in pixels and colours I in 0..255 RGB. Mean-field inference runs ITERATIONS
updates: Q <- softmax(log p + W_a m_a + W_g m_g), where m is each kernel's average of the
neighbours' Q (each kernel normalised to sum 1 over a pixel's neighbours, as the reference
implementation's default symmetric normalisation nearly does). The weights and colour width
are the reference implementation's example values (pydensecrf: bilateral sxy 80, srgb 13,
compat 10; Gaussian sxy 3, compat 3; 5 iterations), chosen there on ~500 px photos: theta_a
is scaled with the image side (80 / 500 of it), theta_g stays one pixel's reach at the small
sides this runs at. The field is cut to a window of radius <= MAX_RADIUS pixels, as in
Teichmann & Cipolla's ConvCRF (2018), so memory grows with the pixels, not their square.

Pure torch, device-agnostic, deterministic (no random draw).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

W_APPEARANCE = 10.0
W_SMOOTHNESS = 3.0
THETA_B = 13.0  # colour, 0..255 RGB
THETA_A_OF_SIDE = 80 / 500  # spatial width of the appearance kernel, as a share of the side
THETA_G = 1.0  # spatial width of the smoothness kernel, pixels
ITERATIONS = 5
MAX_RADIUS = 7  # window radius, pixels
EPS = 1e-4  # probabilities are clamped to [EPS, 1 - EPS] before the log
CUT = -30.0  # kernel weights below exp(CUT) ~ 1e-13 are 0
MEMORY = 1 << 28  # bytes of float32 neighbour tensors per batch


def window(side: int) -> tuple[float, int]:
    """(theta_a in pixels, window radius) at an image side."""
    theta_a = THETA_A_OF_SIDE * side
    return theta_a, max(1, min(MAX_RADIUS, math.ceil(2 * theta_a)))


def cut_exp(exponent: torch.Tensor) -> torch.Tensor:
    """exp, with weights below exp(CUT) set to 0: they change nothing, and the subnormal
    floats they would become make CPU arithmetic tens of times slower."""
    keep = exponent > CUT
    return exponent.clamp_min(CUT).exp_().mul_(keep)


def appearance_kernel(images: torch.Tensor, theta_a: float, radius: int) -> torch.Tensor:
    """The appearance kernel [N, K, H, W] over the K = (2r+1)^2 window offsets of each pixel of
    float images [N, 3, H, W], normalised to sum 1 over a pixel's neighbours (0 on the pixel
    itself, outside the image, and for a pixel no neighbour of which is near in colour)."""
    n, _, h, w = images.shape
    k = 2 * radius + 1
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    d2 = (offsets[:, None] ** 2 + offsets[None, :] ** 2).reshape(1, k * k, 1, 1)
    neighbours = F.unfold(images, k, padding=radius).view(n, 3, k * k, h, w)
    exponent = neighbours.sub_(images[:, :, None]).square_().sum(1)  # colour distance^2
    exponent.mul_(-1 / (2 * THETA_B**2)).sub_(d2 / (2 * theta_a**2))
    inside = F.unfold(torch.ones_like(images[:, :1]), k, padding=radius).view(n, k * k, h, w)
    inside[:, (k * k) // 2] = 0  # not the pixel itself
    kernel = cut_exp(exponent).mul_(inside)
    return kernel.div_(kernel.sum(1, keepdim=True).clamp_min(1e-12))


def smoothness_filter(radius: int, like: torch.Tensor) -> torch.Tensor:
    """The smoothness kernel as a [1, 1, k, k] filter (0 at its centre); it is the same at
    every pixel, so a convolution applies it (normalised by the same convolution of ones)."""
    offsets = torch.arange(-radius, radius + 1, device=like.device, dtype=like.dtype)
    d2 = offsets[:, None] ** 2 + offsets[None, :] ** 2
    g = cut_exp(-d2 / (2 * THETA_G**2))
    g[radius, radius] = 0
    return g[None, None]


def mean_field(p: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Refined foreground probabilities [N, H, W] from p [N, H, W] and images [N, 3, H, W]
    (float, 0..255). Two labels, so the update is written for the foreground alone: with
    kernels that sum to s over a pixel's neighbours, the background's message is s - m."""
    n, h, w = p.shape
    theta_a, radius = window(max(h, w))
    k = 2 * radius + 1
    appearance = appearance_kernel(images, theta_a, radius)
    reach = appearance.sum(1)  # 1, or 0 where no neighbour is near in colour
    gauss = smoothness_filter(radius, p)
    norm = F.conv2d(torch.ones_like(p[:, None]), gauss, padding=radius)[:, 0]
    p = p.clamp(EPS, 1 - EPS)
    unary = torch.log(p) - torch.log1p(-p)  # foreground's minus background's
    q = p  # the softmax of the unary terms alone
    for _ in range(ITERATIONS):
        m_a = (F.unfold(q[:, None], k, padding=radius).view(n, k * k, h, w) * appearance).sum(1)
        m_g = F.conv2d(q[:, None], gauss, padding=radius)[:, 0] / norm
        q = torch.sigmoid(unary + W_APPEARANCE * (2 * m_a - reach) + W_SMOOTHNESS * (2 * m_g - 1))
    return q


@torch.inference_mode()
def refine(q: np.ndarray, images: np.ndarray, device: torch.device) -> np.ndarray:
    """uint8 probabilities [N, R, R] refined by the uint8 RGB images [N, R, R, 3] they label."""
    if len(q) == 0:
        return q.copy()
    side = images.shape[1]
    radius = window(side)[1]
    per_image = 4 * (3 + 3) * (2 * radius + 1) ** 2 * side * side  # unfolded floats
    batch = max(1, MEMORY // per_image)
    out = np.empty_like(q)
    for i in range(0, len(q), batch):
        x = torch.from_numpy(images[i : i + batch]).to(device).permute(0, 3, 1, 2).float()
        p = torch.from_numpy(q[i : i + batch]).to(device).float() / 255.0
        refined = mean_field(p, x)
        if not torch.isfinite(refined).all():
            raise FloatingPointError("non-finite refined pseudo-labels")
        out[i : i + batch] = torch.round(refined * 255).to(torch.uint8).cpu().numpy()
    return out
