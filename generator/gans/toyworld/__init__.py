"""The embedded toy-world GAN (issue 8): a procedural world with true masks (`world`), a small GAN
trained on its images only (`model`, `train`), and its backend (`backend.build`).

Importing this package is light; torch is imported by `backend`, `model` and `train` only.
"""


def build(weights=None, device="cpu"):
    from generator.gans.toyworld.backend import build as _build

    return _build(weights=weights, device=device)
