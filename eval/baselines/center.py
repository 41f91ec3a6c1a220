"""Center prior: a fixed anisotropic Gaussian at the image centre (a floor for any method)."""

from __future__ import annotations

import numpy as np


def center_prior(height: int, width: int, sigma_frac: float = 0.25) -> np.ndarray:
    """float32 [H, W] in [0, 1]: exp(-(dx^2 / 2 sx^2 + dy^2 / 2 sy^2)), sx = sigma_frac * W."""
    y = (np.arange(height) + 0.5 - height / 2) / (sigma_frac * height)
    x = (np.arange(width) + 0.5 - width / 2) / (sigma_frac * width)
    return np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2)).astype(np.float32)


class CenterPrior:
    """Predictor-like: `predict_batch(images)` -> maps; ignores the image content."""

    name = "center"

    def __init__(self, sigma_frac: float = 0.25):
        self.sigma_frac = sigma_frac
        self.batch_size = 16

    def settings(self) -> dict:
        return {"method": "center", "sigma_frac": self.sigma_frac}

    def predict(self, image: np.ndarray) -> np.ndarray:
        return center_prior(image.shape[0], image.shape[1], self.sigma_frac)

    def predict_batch(self, images) -> list[np.ndarray]:
        return [self.predict(im) for im in images]
