"""`--gan biggan`: the class-conditional BigGAN-128 of ajbrock/BigGAN-PyTorch's ImageNet release.

    --gan biggan --weights G_ema.pth [--classes SPEC]   the released generator (EMA weights)
    --gan biggan --weights random                       random weights (tests/benchmarks only)

The release (`BigGAN_ch96_bs256x8_138k`, scripts/launch_BigGAN_bs256x8.sh) is ajbrock's
`Generator` with G_ch 96, dim_z 120 hierarchical (6 chunks of 20), a shared class embedding
1000 x 128, self-attention at 64 px, BN eps 1e-5, SN eps 1e-6; its output BN keeps `layers.bn`'s
default eps, also 1e-5. It is the model in which Voynov & Babenko (2020) found the "background
removal" direction the paper compares with in section 4.4. The layers, names and loading are
BigBiGAN's port's (generator/gans/biggan_layers.py); only the epsilons and the classes differ.

The checkpoint is a plain state dict of that `Generator`, loaded strictly (weights_only=True);
like every SN layer of ajbrock's code, each holds `u0` [1, out] and `sv0` [1] buffers. In eval
mode (`G.eval()`, as the release's sampling script runs it with --G_eval_mode) `SN.W_()` runs
one power iteration from `u0` with `update=self.training` = False and writes `sv0` only while
training, so the weight it uses is the constant W / sigma(W, u0): we fold it once at load, and
`sv0` (logging only) is not used. BatchNorms use their stored statistics.

Classes: `num_classes` (1000) is read from `shared.weight`; `generate(z, labels)` embeds the
labels with `shared` and feeds the embedding to every block, as ajbrock's `G(z, G.shared(y))`.
Which classes the samples get is the caller's: `--classes` (generator/classes.py).

GPU options, as for `--gan bigbigan`: `precision` "fp32" | "bf16" | "fp16" (autocast; the output
is float32) and `compile` (torch.compile); from the command line BIGGAN_PRECISION and
BIGGAN_COMPILE=1 in the environment.

Refused with one line: a checkpoint of another family or resolution, such as BigBiGAN's (same
keys and shapes, but the authors' conversion repeats BigBiGAN's one class embedding, so all
rows of `shared.weight` are equal) or a file written by `python -m generator.convert`.
"""

from __future__ import annotations

import os
import sys

import torch

from generator.gans.base import NoEncoderError
from generator.gans.bigbigan_torch import PRECISIONS
from generator.gans.biggan_layers import (
    BigGANConfig,
    BigGANGenerator,
    config_from_state_dict,
    fold_spectral_norm,
    load_strict,
    random_init,
    read_checkpoint,
)
from segcore.cli import UsageError

# The release's epsilons (scripts/launch_BigGAN_bs256x8.sh; output BN: layers.bn's default).
RELEASE_EPS = {"bn_eps": 1e-5, "sn_eps": 1e-6, "out_bn_eps": 1e-5}
RELEASE_CH = 96


class BigGANTorch:
    """The GAN backend (generator/gans/base.py) around a folded, eval-mode conditional BigGAN."""

    name = "biggan"
    differentiable = True
    has_encoder = False

    def __init__(
        self,
        model: BigGANGenerator,
        device,
        *,
        precision: str = "fp32",
        compile: bool = False,
        compile_mode: str | None = None,
        random_weights: bool = False,
    ):
        if precision not in PRECISIONS:
            raise UsageError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        self._device = torch.device(device)
        self.model = model.to(self._device).eval().requires_grad_(False)
        self.latent_dim = model.config.dim_z
        self.resolution = 128
        self.num_classes = model.config.n_classes
        self.precision = precision
        self.random_weights = random_weights
        # as the BigBiGAN port: static shapes (a smaller last batch costs one recompile)
        self._forward = (
            torch.compile(self._conditional, dynamic=False, mode=compile_mode)
            if compile
            else self._conditional
        )
        self.compiled = compile

    def _conditional(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.model(z, self.model.shared(labels))

    @property
    def device(self) -> torch.device:
        return self._device

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z [N, latent_dim], labels LongTensor [N] of class ids -> [N, 3, 128, 128] in [-1, 1]."""
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must be [N, {self.latent_dim}], got {list(z.shape)}")
        if labels is None:
            raise ValueError("biggan is class-conditional: generate(z, labels) needs labels")
        labels = torch.as_tensor(labels, device=self._device).long().reshape(-1)
        if labels.shape[0] != z.shape[0]:
            raise ValueError(f"{z.shape[0]} latents but {labels.shape[0]} labels")
        if labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) < self.num_classes:
            raise ValueError(f"labels must be in 0..{self.num_classes - 1}")
        z = z.to(self._device, torch.float32)
        dtype = PRECISIONS[self.precision]
        with torch.autocast(self._device.type, dtype=dtype or torch.float32, enabled=bool(dtype)):
            x = self._forward(z, labels)
        return x.float()

    def encode(self, x):
        raise NoEncoderError("biggan has no encoder")


def release_config(**shape) -> BigGANConfig:
    """The release's configuration (shape fields, such as a reduced `ch`, may be overridden)."""
    return BigGANConfig(**{**RELEASE_EPS, **shape})


def build_model(weights: str | None, seed: int = 0) -> tuple[BigGANGenerator, bool]:
    """(folded eval-mode model on CPU, is_random) for a checkpoint path or "random"."""
    if weights is None:
        raise UsageError(
            "--gan biggan needs --weights: G_ema.pth of ajbrock/BigGAN-PyTorch's BigGAN-128 "
            "ImageNet release, or 'random' for random weights (tests and benchmarks only)"
        )
    if weights == "random":
        model = BigGANGenerator(release_config())
        random_init(model, seed)
        fold_spectral_norm(model)
        return model.eval(), True
    from segcore import storage

    shown = storage.redact(weights)
    state, record = read_checkpoint(weights, "BigGAN")
    if record:
        raise UsageError(
            f"{shown} was written by `python -m generator.convert` (source "
            f"{record.get('source')!r}), a BigBiGAN generator: use --gan bigbigan"
        )
    config = config_from_state_dict(state, **RELEASE_EPS)
    shared = state["shared.weight"]
    if shared.shape[0] > 1 and bool((shared == shared[:1]).all()):
        raise UsageError(
            f"{shown}: all {shared.shape[0]} rows of shared.weight are equal, so it is an "
            "unconditional (BigBiGAN) checkpoint, not the conditional BigGAN: use --gan bigbigan"
        )
    model = BigGANGenerator(config)
    load_strict(model, state, shown)
    if config.ch != RELEASE_CH:
        print(
            f"biggan: {shown} is a reduced-width BigGAN-128 (ch={config.ch}, the release has "
            f"{RELEASE_CH})",
            file=sys.stderr,
        )
    fold_spectral_norm(model)
    return model.eval(), False


def build(
    weights: str | None = None,
    device="cpu",
    *,
    precision: str | None = None,
    compile: bool | None = None,
) -> BigGANTorch:
    """Registry factory (generator/gans/__init__.py): `--gan biggan --weights FILE|random`.
    GPU options as for `--gan bigbigan`, from the environment: BIGGAN_PRECISION
    (fp32 | bf16 | fp16, autocast; the output is float32) and BIGGAN_COMPILE=1."""
    if precision is None:
        precision = os.environ.get("BIGGAN_PRECISION", "fp32")
    if compile is None:
        compile = os.environ.get("BIGGAN_COMPILE", "0") not in ("", "0")
    model, is_random = build_model(weights)
    if is_random:
        print(
            "biggan: RANDOM weights (--weights random): for tests/benchmarks only", file=sys.stderr
        )
    return BigGANTorch(
        model, device, precision=precision, compile=compile, random_weights=is_random
    )
