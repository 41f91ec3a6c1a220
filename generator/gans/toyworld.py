"""The embedded toy-world GAN as a backend of the generator protocol (`generator/gans/base.py`).

`build()` with no arguments loads the weights shipped in `toyworld/weights/` (trained on CPU by
`python -m toyworld.train`, see `weights/toyworld.json`), so `--gan toyworld`
works offline. `weights=` may name another `.pt` file written by the same script; its JSON
sidecar (same name, `.json`) holds the model configuration.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from segcore.cli import UsageError
from toyworld import DEFAULT_DIRECTION, DEFAULT_WEIGHTS
from toyworld.model import WEIGHTS_FORMAT, Encoder, Generator, ModelConfig


def _load_checkpoint(path: Path) -> tuple[ModelConfig, dict, dict]:
    if not path.is_file():
        raise UsageError(f"toyworld weights {path} do not exist")
    meta_path = path.with_suffix(".json")
    if not meta_path.is_file():
        raise UsageError(f"toyworld weights {path} have no sidecar {meta_path.name}")
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != WEIGHTS_FORMAT:
            raise UsageError(
                f"{meta_path}: format {meta.get('format')!r}, this version reads "
                f"{WEIGHTS_FORMAT!r}; retrain with python -m toyworld.train"
            )
        cfg = ModelConfig(**meta["model"])
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
        raise UsageError(f"cannot read toyworld weights {path}: {err}") from err
    if not isinstance(state, dict) or set(state) != {"generator", "encoder"}:
        keys = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise UsageError(f"{path}: expected keys ['encoder', 'generator'], found {keys}")
    return cfg, state, meta


class ToyWorldGan:
    """G and E of the embedded GAN, eval mode (stored BN statistics): deterministic in z."""

    name = "toyworld"
    differentiable = True
    has_encoder = True

    def __init__(self, weights: str | Path | None = None, device="cpu"):
        path = Path(weights) if weights else DEFAULT_WEIGHTS
        cfg, state, self.meta = _load_checkpoint(path)
        self.config = cfg
        self.latent_dim = cfg.latent_dim
        self.resolution = cfg.resolution
        self.encoder_resolution = cfg.resolution  # generator.embed resizes images to this
        self._device = torch.device(device)
        self.generator = Generator(cfg)
        self.encoder = Encoder(cfg)
        try:  # strict: a missing or unexpected key is an error, never silently ignored
            self.generator.load_state_dict(state["generator"], strict=True)
            self.encoder.load_state_dict(state["encoder"], strict=True)
        except RuntimeError as err:
            raise UsageError(f"{path}: weights do not match the model: {err}") from err
        self.generator.to(self._device).eval().requires_grad_(False)
        self.encoder.to(self._device).eval().requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return self._device

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """z [N, latent_dim] -> [N, 3, R, R] in [-1, 1]; differentiable w.r.t. z."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape [N, {self.latent_dim}], got {list(z.shape)}")
        return self.generator(z.to(self._device, torch.float32))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, 3, H, W] in [-1, 1] (any size; resized to R x R) -> z [N, latent_dim]."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"x must have shape [N, 3, H, W], got {list(x.shape)}")
        x = x.to(self._device, torch.float32)
        if x.shape[-2:] != (self.resolution, self.resolution):
            x = F.interpolate(
                x, size=(self.resolution, self.resolution), mode="bilinear", antialias=True
            )
        return self.encoder(x)

    def default_direction(self):
        """The shipped direction (found by `generator.directions` discover + score --pick)."""
        if not DEFAULT_DIRECTION.is_file():
            raise UsageError(
                f"the toyworld GAN ships no direction ({DEFAULT_DIRECTION} is missing); "
                "pass --direction FILE"
            )
        from generator.direction_file import load_direction

        return load_direction(DEFAULT_DIRECTION, self.latent_dim)


def build(weights=None, device="cpu") -> ToyWorldGan:
    return ToyWorldGan(weights=weights, device=device)
