"""RBD / wCtr*: "Saliency Optimization from Robust Background Detection" (Zhu, Liang, Wei,
Sun, CVPR 2014), on SLIC superpixels.

Implemented from the paper's equations with its fixed parameters (not the MATLAB release's
data-dependent ones): sigma_clr = 10 (Lab units), sigma_bndCon = 1, sigma_spa = 0.25
(coordinates normalised to [0, 1]), mu = 0.1.

1. SLIC superpixels; the graph links adjacent superpixels and all boundary superpixels with
   each other; edge weight = Euclidean distance of mean Lab colours (Eq. 2 of the paper).
2. Geodesic distance d_geo = shortest path on that graph;
   Area(p) = sum_i exp(-d_geo(p, p_i)^2 / 2 sigma_clr^2)            (Eq. 3)
   Len_bnd(p) = the same sum over boundary superpixels                (Eq. 4)
   BndCon(p) = Len_bnd(p) / sqrt(Area(p))                            (Eq. 1)
3. Background probability w_bg = 1 - exp(-BndCon^2 / 2 sigma_bndCon^2)        (Eq. 6)
4. Background-weighted contrast wCtr(p) = sum_i d_app(p, p_i) w_spa(p, p_i) w_bg_i (Eq. 5)
5. Saliency optimisation (Eq. 7): minimise sum w_bg s^2 + sum w_fg (s - 1)^2
   + sum_{adjacent i, j} w_ij (s_i - s_j)^2 with w_fg = wCtr (normalised to [0, 1]) and
   w_ij = exp(-d_app^2 / 2 sigma_clr^2) + mu; closed form (diag(w_bg + w_fg) + L) s = w_fg.

Runs on a copy of the image whose longer side is at most `max_side` (speed), and the map is
resized back bilinearly.
"""

from __future__ import annotations

import cv2
import numpy as np


def _adjacency(labels: np.ndarray, n: int) -> np.ndarray:
    adj = np.zeros((n, n), bool)
    for a, b in (
        (labels[:, :-1], labels[:, 1:]),
        (labels[:-1, :], labels[1:, :]),
    ):
        diff = a != b
        adj[a[diff], b[diff]] = True
    adj |= adj.T
    return adj


def rbd_saliency(
    image: np.ndarray,
    n_segments: int = 200,
    compactness: float = 10.0,
    sigma_clr: float = 10.0,
    sigma_bndcon: float = 1.0,
    sigma_spa: float = 0.25,
    mu: float = 0.1,
    max_side: int = 300,
) -> np.ndarray:
    """float32 [H, W] saliency in [0, 1] of a uint8 RGB image."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra
    from skimage.segmentation import slic

    h0, w0 = image.shape[:2]
    scale = min(1.0, max_side / max(h0, w0))
    small = image
    if scale < 1.0:
        size = (max(1, round(w0 * scale)), max(1, round(h0 * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    h, w = small.shape[:2]
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float64)
    # OpenCV's 8-bit Lab: L * 255/100, a + 128, b + 128 -> back to CIE units
    lab[..., 0] *= 100.0 / 255.0
    lab[..., 1:] -= 128.0
    labels = slic(small, n_segments=n_segments, compactness=compactness, start_label=0)
    _, labels = np.unique(labels, return_inverse=True)
    labels = labels.reshape(h, w)
    n = int(labels.max()) + 1
    if n < 2:
        return np.zeros((h0, w0), np.float32)
    counts = np.bincount(labels.ravel(), minlength=n).astype(np.float64)
    mean_lab = np.stack(
        [np.bincount(labels.ravel(), lab[..., c].ravel(), n) / counts for c in range(3)], 1
    )
    yy, xx = np.mgrid[0:h, 0:w]
    pos = np.stack(
        [
            np.bincount(labels.ravel(), (yy / h).ravel(), n) / counts,
            np.bincount(labels.ravel(), (xx / w).ravel(), n) / counts,
        ],
        1,
    )
    d_app = np.linalg.norm(mean_lab[:, None] - mean_lab[None], axis=2)
    d_spa = np.linalg.norm(pos[:, None] - pos[None], axis=2)
    adj = _adjacency(labels, n)
    boundary = np.zeros(n, bool)
    boundary[np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))] = True

    graph = adj | (boundary[:, None] & boundary[None, :])
    np.fill_diagonal(graph, False)
    # tiny epsilon: a zero weight would read as "no edge" in the sparse graph
    weights = np.where(graph, d_app + 1e-6, 0.0)
    d_geo = dijkstra(csr_matrix(weights), directed=False)
    sim = np.exp(-(d_geo**2) / (2 * sigma_clr**2))
    area = sim.sum(axis=1)
    len_bnd = sim[:, boundary].sum(axis=1)
    bndcon = len_bnd / np.sqrt(area)
    w_bg = 1.0 - np.exp(-(bndcon**2) / (2 * sigma_bndcon**2))

    w_spa = np.exp(-(d_spa**2) / (2 * sigma_spa**2))
    wctr = (d_app * w_spa * w_bg[None, :]).sum(axis=1)
    span = wctr.max() - wctr.min()
    w_fg = (wctr - wctr.min()) / span if span > 0 else np.zeros(n)

    w_smooth = np.where(adj, np.exp(-(d_app**2) / (2 * sigma_clr**2)) + mu, 0.0)
    laplacian = np.diag(w_smooth.sum(axis=1)) - w_smooth
    s = np.linalg.solve(np.diag(w_bg + w_fg) + laplacian, w_fg)
    s = np.clip(s, 0.0, None)
    if s.max() > s.min():
        s = (s - s.min()) / (s.max() - s.min())
    sal = s[labels].astype(np.float32)
    if (h, w) != (h0, w0):
        sal = cv2.resize(sal, (w0, h0), interpolation=cv2.INTER_LINEAR)
    return np.clip(sal, 0.0, 1.0)


class RBD:
    """Predictor-like wrapper for reports and the CLI."""

    name = "rbd"

    def __init__(self, n_segments: int = 200, max_side: int = 300):
        self.n_segments = n_segments
        self.max_side = max_side
        self.batch_size = 8

    def settings(self) -> dict:
        return {
            "method": "rbd (Zhu et al. 2014, wCtr* with saliency optimisation)",
            "n_segments": self.n_segments,
            "max_side": self.max_side,
            "sigma_clr": 10.0,
            "sigma_bndcon": 1.0,
            "sigma_spa": 0.25,
            "mu": 0.1,
        }

    def predict(self, image: np.ndarray) -> np.ndarray:
        return rbd_saliency(image, n_segments=self.n_segments, max_side=self.max_side)

    def predict_batch(self, images) -> list[np.ndarray]:
        return [self.predict(im) for im in images]
