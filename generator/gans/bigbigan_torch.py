"""`--gan bigbigan`: BigBiGAN's generator (the paper's) as a PyTorch BigGAN-128 port.

    --gan bigbigan --weights BigBiGAN_x1.pth    the authors' converted checkpoint, or the output
                                                of `python -m generator.convert bigbigan`
    --gan bigbigan --weights random             random weights (tests/benchmarks only; labelled)

Architecture: BigGAN-128 (not -deep) with BigBiGAN's configuration: G_ch 96, dim_z 120 split in
6 chunks of 20 (chunk 0 -> SN-linear 20 -> 1536x4x4; chunks 1..5 condition the 5 GBlocks through
conditional BN on cat(class embedding 128, chunk 20) = 148-d), self-attention after the 64 px
block, BN eps 1e-4, SN eps 1e-4, tanh output; 70.4 M parameters. BigBiGAN is unconditional: the
checkpoint keeps BigGAN's `shared` embedding table (1000 x 128, all rows equal after the authors'
conversion) and we always use row `class_index` = 0, like the authors' `UnconditionalBigGAN`.

Two sources, two output layers. The port reproduces the model the weights come from, which
differ in one number, the eps of the output layer's BatchNorm:
- TF-Hub's BigBiGAN uses 1e-4 there, like in every other BN. A file written by
  `python -m generator.convert` is {"state_dict": ..., "source": "tf-hub", ...}: it records
  that it came from TF-Hub and gets 1e-4.
- ajbrock's `Generator` (BigGAN.py) builds `output_layer` with `layers.bn(...)` without passing
  its BN eps, so that layer keeps `layers.bn`'s default 1e-5; the paper's authors ran
  BigBiGAN_x1.pth in that code (with BN_eps 1e-4 elsewhere). A plain state dict, such as their
  file, gets 1e-5.

Loading is strict: every key of the model must be in the checkpoint with the right shape and no
extra key is accepted; the only tolerated absence is the `sv0` buffers, which ajbrock's code uses
for logging only and which the authors' own converter does not produce ("Ignore missing sv0
entries", tf_tools/tf_to_torch.py). Spectral norms are folded once after loading.

Width is read from the checkpoint (`linear.weight` is [16*ch*16, 20]); anything but ch=96 is
reported as a reduced-width model (the test fixtures use one).

Speed options (GPU): `precision` "fp32" | "bf16" | "fp16" (autocast; output is always float32)
and `compile` (torch.compile). From the command line, where the registry passes only weights
and device, set BIGBIGAN_PRECISION and BIGBIGAN_COMPILE=1 in the environment.
"""

from __future__ import annotations

import os
import sys

import torch

from generator.gans.base import NoEncoderError
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

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
PAPER_CH = 96
# The output BN's eps of the model the weights come from (module docstring, "Two sources").
SOURCE_TF_HUB = "tf-hub"  # the `source` that `python -m generator.convert` records
SOURCE_PYTORCH = "pytorch"  # a plain state dict (the authors' BigBiGAN_x1.pth)
OUTPUT_BN_EPS = {SOURCE_TF_HUB: 1e-4, SOURCE_PYTORCH: 1e-5}


class BigBiGANTorch:
    """The GAN backend (generator/gans/base.py) around a folded, eval-mode BigGANGenerator."""

    name = "bigbigan"
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
        class_index: int = 0,
        random_weights: bool = False,
    ):
        if precision not in PRECISIONS:
            raise UsageError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        self._device = torch.device(device)
        self.model = model.to(self._device).eval().requires_grad_(False)
        self.latent_dim = model.config.dim_z
        self.resolution = 128
        self.precision = precision
        self.random_weights = random_weights
        self.class_index = class_index
        # dynamic=False: the generator runs a fixed batch size, static-shape kernels are faster
        # (a smaller last batch costs one recompile).
        self._forward = (
            torch.compile(self._uncond, dynamic=False, mode=compile_mode)
            if compile
            else self._uncond
        )
        self.compiled = compile

    @property
    def device(self) -> torch.device:
        return self._device

    def _uncond(self, z: torch.Tensor) -> torch.Tensor:
        # One constant class embedding (BigBiGAN is unconditional).
        y = self.model.shared.weight[self.class_index].expand(z.shape[0], -1)
        return self.model(z, y)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must be [N, {self.latent_dim}], got {list(z.shape)}")
        z = z.to(self._device, torch.float32)
        dtype = PRECISIONS[self.precision]
        with torch.autocast(self._device.type, dtype=dtype or torch.float32, enabled=bool(dtype)):
            x = self._forward(z)
        return x.float()

    def encode(self, x):
        raise NoEncoderError("bigbigan (PyTorch port) has no encoder; use --gan bigbigan-hub")


def build_model(weights: str | None, seed: int = 0) -> tuple[BigGANGenerator, bool]:
    """(folded eval-mode model on CPU, is_random) for a checkpoint path or "random"."""
    if weights is None:
        raise UsageError(
            "--gan bigbigan needs --weights: the converted checkpoint BigBiGAN_x1.pth "
            "(or the output of `python -m generator.convert bigbigan`), or 'random' for "
            "random weights (tests and benchmarks only)"
        )
    if weights == "random":
        model = BigGANGenerator(BigGANConfig())
        random_init(model, seed)
        is_random = True
    else:
        from segcore import storage

        state, record = read_checkpoint(weights, "BigBiGAN")
        source = record.get("source", SOURCE_PYTORCH)
        if source not in OUTPUT_BN_EPS:
            raise UsageError(
                f"{storage.redact(weights)} records source {source!r}; a BigBiGAN checkpoint "
                f"comes from one of: {', '.join(sorted(OUTPUT_BN_EPS))}"
            )
        config = config_from_state_dict(state, out_bn_eps=OUTPUT_BN_EPS[source])
        model = BigGANGenerator(config)
        load_strict(model, state, storage.redact(weights))
        is_random = False
        if config.ch != PAPER_CH:
            print(
                f"bigbigan: {storage.redact(weights)} is a reduced-width BigGAN-128 (ch={config.ch}, "
                f"BigBiGAN has {PAPER_CH})",
                file=sys.stderr,
            )
    fold_spectral_norm(model)
    return model.eval(), is_random


def build(
    weights: str | None = None,
    device="cpu",
    *,
    precision: str | None = None,
    compile: bool | None = None,
) -> BigBiGANTorch:
    """Registry factory (generator/gans/__init__.py): `--gan bigbigan --weights FILE|random`."""
    if precision is None:
        precision = os.environ.get("BIGBIGAN_PRECISION", "fp32")
    if compile is None:
        compile = os.environ.get("BIGBIGAN_COMPILE", "0") not in ("", "0")
    model, is_random = build_model(weights)
    if is_random:
        print(
            "bigbigan: RANDOM weights (--weights random): for tests/benchmarks only",
            file=sys.stderr,
        )
    return BigBiGANTorch(
        model,
        device,
        precision=precision,
        compile=compile,
        random_weights=is_random,
    )
