"""Latent codes for one shard: the prior, or the paper's dataset-adapted (E-BigBiGAN) latents.

- prior: z ~ N(0, I)
- dataset-adapted ("E-BigBiGAN"): z = E(I_i) + alpha * xi, i ~ U{0..N-1}, xi ~ N(0, I), with
  E(I_i) the rows of an embeddings file (`python -m generator.embed`, float32 .npy [N, d]).

Determinism: shard i draws from `numpy.random.SeedSequence([seed, i])` only, so its codes do not
depend on how many workers run or which one gets the shard. The index stream and the noise
stream are separate children of that seed sequence, so drawing in batches of any size gives the
same sequence of codes.
"""

from __future__ import annotations

import io

import numpy as np

from segcore import storage
from segcore.cli import UsageError

PRIOR = "prior"
PRIOR_SOURCE = -1  # source index recorded for prior samples


def load_embeddings(url: str, latent_dim: int) -> np.ndarray:
    """Read and validate an embeddings .npy (local path or object-store URL)."""
    try:
        data = storage.read_bytes(url)
        emb = np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read embeddings file {storage.redact(url)}: {err}") from err
    if emb.ndim != 2 or emb.shape[1] != latent_dim or emb.shape[0] == 0:
        raise UsageError(
            f"embeddings file {storage.redact(url)} has shape {emb.shape}, "
            f"expected [N >= 1, {latent_dim}] for this GAN"
        )
    emb = emb.astype(np.float32, copy=False)
    if not np.isfinite(emb).all():
        raise UsageError(f"embeddings file {storage.redact(url)} contains NaN or inf")
    return emb


class ShardLatents:
    """The stream of latent codes of one shard: `draw(n)` -> (z [n, d] float32, source [n])."""

    def __init__(
        self,
        seed: int,
        shard: int,
        latent_dim: int,
        embeddings: np.ndarray | None = None,
        alpha: float = 0.2,
    ):
        # spawn(3) gives the same first two children as spawn(2): the index and noise streams
        # (and so every unconditional shard) are unchanged by the class stream, child 2
        index_seq, noise_seq, class_seq = np.random.SeedSequence([seed, shard]).spawn(3)
        self._index_rng = np.random.Generator(np.random.PCG64(index_seq))
        self._noise_rng = np.random.Generator(np.random.PCG64(noise_seq))
        self._class_rng = np.random.Generator(np.random.PCG64(class_seq))
        self.latent_dim = latent_dim
        self.embeddings = embeddings
        self.alpha = float(alpha)

    def draw_labels(
        self, n: int, num_classes: int, classes: tuple[int, ...] | None = None
    ) -> np.ndarray:
        """The classes of the next n samples of a conditional GAN (int64 [n]), from the shard's
        own class stream: uniform over `classes` (None: all num_classes), batch-size free."""
        from generator.classes import draw_labels

        return draw_labels(self._class_rng, n, num_classes, classes)

    def draw(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        xi = self._noise_rng.standard_normal((n, self.latent_dim), dtype=np.float32)
        if self.embeddings is None:
            return xi, np.full(n, PRIOR_SOURCE, dtype=np.int64)
        idx = self._index_rng.integers(0, len(self.embeddings), size=n, dtype=np.int64)
        return self.embeddings[idx] + np.float32(self.alpha) * xi, idx
