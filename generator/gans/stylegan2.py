"""`--gan stylegan2 --weights FILE.pt`: StyleGAN2 in W space (the paper, Appendix B).

FILE.pt is a checkpoint of rosinality/stylegan2-pytorch:
- a converted release file (its convert_weight.py): {"g_ema": state dict, "latent_avg": [512]}
  (optionally also "g" and "d" when converted with --gen / --disc);
- a training checkpoint (its train.py): "g", "d", "g_ema", "g_optim", "d_optim", "args" (an
  argparse.Namespace), "ada_aug_p"; no latent_avg.
It is read with torch.load(weights_only=True), allow-listing only argparse.Namespace; only
g_ema is used. Resolution, style size, mapping depth and channel widths come from the keys and
shapes (stylegan2_model.config_from_state_dict); when the file carries `args`, its size and
channel multiplier must agree with them.

The backend's latent space is W: `map_prior(xi, truncation)` is the mapping network followed
by the truncation w_avg + psi (w - w_avg), and `generate(w)` is the synthesis network with
the same w for every layer and the checkpoint's stored noise buffers (deterministic). w_avg is
the file's latent_avg when present, else the mean of the mapping of W_AVG_SAMPLES draws
z ~ N(0, I) from torch.Generator seed W_AVG_SEED, computed on the CPU (`w_avg_source` says
which). Output: RGB float32 in [-1, 1], clamped.
"""

from __future__ import annotations

import argparse
import copy
import io

import torch

from generator.gans.base import NoEncoderError, check_prior
from generator.gans.stylegan2_model import (
    StyleGAN2Config,
    StyleGAN2Generator,
    config_from_state_dict,
)
from generator.state_dicts import mismatches
from segcore.cli import UsageError

# the top-level keys of the port's checkpoints (convert_weight.py and train.py)
KNOWN_KEYS = ("g_ema", "latent_avg", "g", "d", "g_optim", "d_optim", "args", "ada_aug_p")
W_AVG_SAMPLES = 4096  # as the port's generate.py --truncation_mean
W_AVG_SEED = 0


def read_checkpoint(path: str) -> dict:
    """The checkpoint dict of `path` (local or object-store URL); UsageError (one line) for a
    missing, truncated or foreign file."""
    from segcore import storage

    name = storage.redact(path)
    if not storage.exists(path):
        raise UsageError(f"StyleGAN2 checkpoint not found: {name}")
    try:
        data = io.BytesIO(storage.read_bytes(path))
        with torch.serialization.safe_globals([argparse.Namespace]):
            ckpt = torch.load(data, map_location="cpu", weights_only=True)
    except Exception as err:  # any read or unpickling failure is a bad file, reported in one line
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"cannot read StyleGAN2 checkpoint {name}: {msg}") from None
    if not isinstance(ckpt, dict) or "g_ema" not in ckpt:
        keys = list(ckpt)[:5] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise UsageError(
            f"{name} is not a rosinality/stylegan2-pytorch checkpoint (no 'g_ema'; found {keys})"
        )
    unknown = sorted(str(k) for k in ckpt if k not in KNOWN_KEYS)
    if unknown:
        raise UsageError(f"{name}: unexpected top-level key(s) {', '.join(unknown)}")
    state = ckpt["g_ema"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UsageError(f"{name}: 'g_ema' is not a state dict of tensors")
    return ckpt


def load_strict(model: StyleGAN2Generator, state: dict, source: str) -> None:
    """load_state_dict(strict=True) with a one-line UsageError naming every mismatch."""
    expected = model.state_dict()
    problems = mismatches(expected, state)
    if problems:
        c = model.config
        raise UsageError(
            f"{source}: g_ema does not match a {c.resolution} px StyleGAN2 (style {c.style_dim}, "
            f"{c.n_mlp} mapping layers): " + "; ".join(problems)
        )
    bad = sorted(k for k in expected if not torch.isfinite(state[k]).all())
    if bad:
        raise UsageError(f"{source}: g_ema holds NaN or inf in {', '.join(bad[:6])}")
    model.load_state_dict(state, strict=True)


def check_args(args, config: StyleGAN2Config, source: str) -> None:
    """A training checkpoint's argparse.Namespace must describe the network its g_ema is."""
    if args is None:
        return
    if not isinstance(args, argparse.Namespace):
        raise UsageError(f"{source}: 'args' is a {type(args).__name__}, not an argparse.Namespace")
    size = getattr(args, "size", config.resolution)
    multiplier = getattr(args, "channel_multiplier", None)
    if size != config.resolution:
        raise UsageError(f"{source}: args.size is {size}, g_ema is {config.resolution} px")
    if multiplier is not None and config.channel_multiplier not in (None, multiplier):
        raise UsageError(
            f"{source}: args.channel_multiplier is {multiplier}, g_ema's widths are those of "
            f"multiplier {config.channel_multiplier}"
        )


def read_latent_avg(ckpt: dict, config: StyleGAN2Config, source: str) -> torch.Tensor | None:
    avg = ckpt.get("latent_avg")
    if avg is None:
        return None
    if not isinstance(avg, torch.Tensor) or avg.reshape(-1).shape != (config.style_dim,):
        shape = list(avg.shape) if isinstance(avg, torch.Tensor) else type(avg).__name__
        raise UsageError(f"{source}: latent_avg is {shape}, expected [{config.style_dim}]")
    if not torch.isfinite(avg).all():
        raise UsageError(f"{source}: latent_avg holds NaN or inf")
    return avg.reshape(-1).float()


class StyleGAN2Backend:
    """The GAN backend (generator/gans/base.py) of a StyleGAN2 g_ema, in W space."""

    name = "stylegan2"
    differentiable = True
    has_encoder = False
    latent_space = "W"

    def __init__(self, model: StyleGAN2Generator, device, latent_avg: torch.Tensor | None = None):
        self._device = torch.device(device)
        self.model = model.to(self._device).eval().requires_grad_(False)
        self.config = model.config
        self.latent_dim = model.config.style_dim
        self.resolution = model.config.resolution
        self._latent_avg = latent_avg
        self._w_avg: torch.Tensor | None = None
        self.w_avg_source = (
            "latent_avg of the checkpoint"
            if latent_avg is not None
            else f"mean mapping of {W_AVG_SAMPLES} z ~ N(0, I), torch seed {W_AVG_SEED}, on CPU"
        )
        # what was loaded, in one line (the paper's LSUN-Church model: 256 px, multiplier 2)
        self.description = f"{describe(self.config)}; w_avg: {self.w_avg_source}"

    @property
    def device(self) -> torch.device:
        return self._device

    def w_avg(self) -> torch.Tensor:
        """[style_dim] on the device: latent_avg of the file, else estimated (once) on the CPU."""
        if self._w_avg is None:
            if self._latent_avg is not None:
                avg = self._latent_avg
            else:
                gen = torch.Generator().manual_seed(W_AVG_SEED)
                z = torch.randn(W_AVG_SAMPLES, self.latent_dim, generator=gen)
                mapping = copy.deepcopy(self.model.style).cpu()
                with torch.no_grad():
                    avg = mapping(z).mean(0)
            self._w_avg = avg.to(self._device, torch.float32)
        return self._w_avg

    def map_prior(self, xi: torch.Tensor, truncation: float = 1.0) -> torch.Tensor:
        """xi ~ N(0, I) [N, style_dim] -> w [N, style_dim]: mapping network, then truncation
        toward w_avg when truncation < 1 (the port's formula)."""
        check_prior(self, truncation)
        self._check(xi)
        w = self.model.mapping(xi.to(self._device, torch.float32))
        if truncation < 1:
            avg = self.w_avg()
            w = avg + truncation * (w - avg)
        return w

    def generate(self, w: torch.Tensor) -> torch.Tensor:
        """w [N, style_dim] -> RGB [N, 3, R, R] float32 in [-1, 1] (clamped)."""
        self._check(w)
        return self.model(w.to(self._device, torch.float32)).clamp(-1.0, 1.0).float()

    def encode(self, x):
        raise NoEncoderError("stylegan2 has no encoder")

    def _check(self, v: torch.Tensor) -> None:
        if v.dim() != 2 or v.shape[1] != self.latent_dim:
            raise ValueError(f"latents must be [N, {self.latent_dim}], got {list(v.shape)}")


def describe(config: StyleGAN2Config) -> str:
    widths = (
        f"channel multiplier {config.channel_multiplier}"
        if config.channel_multiplier is not None
        else f"custom widths {list(config.channels)}"
    )
    return (
        f"{config.resolution} px, style {config.style_dim}, {config.n_mlp} mapping layers, {widths}"
    )


def load(weights: str) -> tuple[StyleGAN2Generator, torch.Tensor | None]:
    """(eval-mode g_ema on the CPU, latent_avg or None) of a checkpoint path."""
    from segcore import storage

    source = storage.redact(weights)
    ckpt = read_checkpoint(weights)
    config = config_from_state_dict(ckpt["g_ema"])
    check_args(ckpt.get("args"), config, source)
    model = StyleGAN2Generator(config)
    load_strict(model, ckpt["g_ema"], source)
    return model.eval(), read_latent_avg(ckpt, config, source)


def build(weights: str | None = None, device="cpu") -> StyleGAN2Backend:
    """Registry factory (generator/gans/__init__.py): `--gan stylegan2 --weights FILE.pt`."""
    if not weights:
        raise UsageError(
            "--gan stylegan2 needs --weights FILE.pt: a rosinality/stylegan2-pytorch checkpoint "
            "(e.g. stylegan2-church-config-f.pt, converted by its convert_weight.py)"
        )
    model, latent_avg = load(weights)
    return StyleGAN2Backend(model, device, latent_avg)
