"""A GAN stand-in for benchmarks of the pipeline around the GAN: NOT a user-facing backend, and
not in the registry. Name it as `--gan generator.gans.standin:build`.

A `generate` call lasts a set time (`wait_ms`): it makes its output, then sleeps the rest of
that time with the GIL released (`time.sleep`, as a CUDA synchronisation does), and returns
fixed 128 px images (by default) that make realistic masks and pass the paper's filters: a
two-tone textured background that does not depend on z, and a round object whose brightness
rises with the latent's first coordinate. Its `default_direction()` is that first axis, so
G(z + r h) has the same picture with a lighter object and the "lighter" mask is the object
(about 20% of the image). Every sample is kept by the default filters.

The images are precomputed for 64 brightness levels, so a call costs one gather of its output
and almost no CPU; `cpu_seconds` counts that CPU time so a benchmark can subtract it.

Options travel in the `weights` string, as for the random backend: `--weights
"wait_ms=4,resolution=128"` (keys: wait_ms, a float >= 0, the wait per `generate` call;
resolution, latent_dim and seed, integers).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import torch

from generator.gans.base import NoEncoderError
from segcore.cli import UsageError

DEFAULTS = {"wait_ms": 0.0, "resolution": 128, "latent_dim": 120, "seed": 0}
LEVELS = 64  # brightness levels of the object
LEVELS_PER_UNIT = 3  # levels per unit of the latent's first coordinate
LEVEL_AT_ZERO = 24  # level of z[0] = 0; a shift of 5 adds 15 levels


def parse_options(spec: str | None) -> dict:
    """`"wait_ms=4,resolution=128"` -> the options, defaults filled in; UsageError if bad."""
    opts = dict(DEFAULTS)
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in DEFAULTS:
            raise UsageError(
                f"standin GAN: bad option {item!r}; expected key=value with key in "
                f"{', '.join(DEFAULTS)} (e.g. 'wait_ms=4,resolution=128')"
            )
        try:
            opts[key] = type(DEFAULTS[key])(value)
        except ValueError as err:
            raise UsageError(f"standin GAN: option {key} must be a number, got {value!r}") from err
    if not opts["wait_ms"] >= 0 or opts["resolution"] < 8 or opts["latent_dim"] < 1:
        raise UsageError("standin GAN: wait_ms must be >= 0, resolution >= 8, latent_dim >= 1")
    return opts


def _templates(resolution: int, seed: int) -> torch.Tensor:
    """[LEVELS, 3, R, R] in [-1, 1]: background left third dark, the rest light, a fixed
    texture everywhere, the object's brightness rising with the level."""
    rng = np.random.default_rng(seed)
    r = resolution
    yy, xx = np.mgrid[0:r, 0:r] / r
    background = (
        np.where(xx < 1 / 3, -0.55, 0.45)[None] + np.array([0.05, 0.0, -0.05])[:, None, None]
    )
    texture = rng.uniform(-0.06, 0.06, size=(3, r, r))
    blob = (yy - 0.5) ** 2 + (xx - 0.55) ** 2 < 0.25**2  # about 20% of the image
    tint = np.array([0.1, 0.0, -0.1])[:, None, None]
    out = np.empty((LEVELS, 3, r, r), np.float32)
    for level in range(LEVELS):
        brightness = -0.9 + 1.6 * level / (LEVELS - 1)
        out[level] = np.clip(np.where(blob, brightness + tint, background) + texture, -1, 1)
    return torch.from_numpy(out)


class StandinGan:
    name = "standin"
    differentiable = False
    has_encoder = False

    def __init__(self, options: dict, device="cpu"):
        self.wait_s = options["wait_ms"] / 1000
        self.resolution = options["resolution"]
        self.latent_dim = options["latent_dim"]
        self._device = torch.device(device)
        self.templates = _templates(self.resolution, options["seed"]).to(self._device)
        self.cpu_seconds = 0.0  # thread CPU time spent in generate (for benchmarks)
        self._lock = threading.Lock()

    @property
    def device(self) -> torch.device:
        return self._device

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        start, cpu = time.perf_counter(), time.thread_time()
        level = (z[:, 0] * LEVELS_PER_UNIT).floor().long() + LEVEL_AT_ZERO
        out = self.templates.index_select(0, level.clamp(0, LEVELS - 1))
        used = time.thread_time() - cpu
        with self._lock:
            self.cpu_seconds += used
        left = self.wait_s - (time.perf_counter() - start)
        if left > 0:
            time.sleep(left)  # releases the GIL, like waiting on the GPU
        return out

    def encode(self, x):
        raise NoEncoderError("the standin GAN has no encoder")

    def default_direction(self):
        from generator.direction_file import Direction

        vector = np.zeros(self.latent_dim, np.float32)
        vector[0] = 1.0
        return Direction(vector=vector, info={"source": "standin: the first latent axis"})


def build(weights: str | None = None, device="cpu") -> StandinGan:
    return StandinGan(parse_options(weights), device)
