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

import dataclasses
import os
import sys

import torch
from torch import nn

from generator.gans.base import NoEncoderError
from generator.gans.biggan_layers import (
    Attention,
    GBlock,
    SNConv2d,
    SNLinear,
    bn,
    fold_spectral_norm,
)
from segcore.cli import UsageError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
PAPER_CH = 96


@dataclasses.dataclass(frozen=True)
class BigGANConfig:
    ch: int = PAPER_CH
    dim_z: int = 120
    shared_dim: int = 128
    n_classes: int = 1000
    bottom_width: int = 4
    attn_res: int = 64
    bn_eps: float = 1e-4
    sn_eps: float = 1e-4

    # BigGAN-128: five upsampling blocks 8 -> 128 px.
    @property
    def in_channels(self) -> list[int]:
        return [self.ch * m for m in (16, 16, 8, 4, 2)]

    @property
    def out_channels(self) -> list[int]:
        return [self.ch * m for m in (16, 8, 4, 2, 1)]

    @property
    def block_resolutions(self) -> list[int]:
        return [8, 16, 32, 64, 128]

    @property
    def num_slots(self) -> int:
        return len(self.in_channels) + 1

    @property
    def z_chunk(self) -> int:
        return self.dim_z // self.num_slots


class BigGANGenerator(nn.Module):
    """ajbrock BigGAN-PyTorch `Generator` (hier=True, G_shared=True) with the same module names."""

    def __init__(self, config: BigGANConfig = BigGANConfig()):
        super().__init__()
        c = self.config = config
        if c.dim_z % c.num_slots:
            raise ValueError(f"dim_z {c.dim_z} does not split into {c.num_slots} chunks")
        cond = c.shared_dim + c.z_chunk
        self.shared = nn.Embedding(c.n_classes, c.shared_dim)
        self.linear = SNLinear(c.z_chunk, c.in_channels[0] * c.bottom_width**2, eps=c.sn_eps)
        blocks = []
        for i, (cin, cout) in enumerate(zip(c.in_channels, c.out_channels, strict=True)):
            block = [GBlock(cin, cout, cond, c.bn_eps, c.sn_eps)]
            if c.block_resolutions[i] == c.attn_res:
                block.append(Attention(cout, c.sn_eps))
            blocks.append(nn.ModuleList(block))
        self.blocks = nn.ModuleList(blocks)
        self.output_layer = nn.Sequential(
            bn(c.out_channels[-1], c.bn_eps), nn.ReLU(), SNConv2d(c.out_channels[-1], 3, 3, 1)
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """z [N, dim_z], y [N, shared_dim] (already embedded) -> [N, 3, 128, 128] in [-1, 1]."""
        c = self.config
        zs = torch.split(z, c.z_chunk, 1)
        # ajbrock's order: cat(y, z_i) (the TF graph has cat(z_i, y); the converter swaps).
        ys = [torch.cat([y, zi], 1) for zi in zs[1:]]
        h = self.linear(zs[0]).view(z.shape[0], -1, c.bottom_width, c.bottom_width)
        for index, blocklist in enumerate(self.blocks):
            for block in blocklist:
                h = block(h, ys[index])
        return torch.tanh(self.output_layer(h))


def random_init(model: BigGANGenerator, seed: int) -> None:
    """Random, reproducible weights (speed tests; SN folding normalizes the scale)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if getattr(m, "bias", None) is not None:
                    nn.init.normal_(m.bias, 0.0, 0.02)
            if isinstance(m, Attention):
                nn.init.constant_(m.gamma, 0.1)


def config_from_state_dict(state: dict) -> BigGANConfig:
    """Read the width, z size and class count from a checkpoint's tensor shapes."""
    try:
        lin = state["linear.weight"]
        shared = state["shared.weight"]
    except KeyError as err:
        raise UsageError(f"not a BigGAN generator checkpoint: missing key {err}") from None
    if lin.dim() != 2 or lin.shape[0] % 256 or shared.dim() != 2:
        raise UsageError(
            f"not a BigGAN-128 generator checkpoint: linear.weight {list(lin.shape)}, "
            f"shared.weight {list(shared.shape)}"
        )
    return BigGANConfig(
        ch=lin.shape[0] // 256,
        dim_z=lin.shape[1] * 6,
        shared_dim=shared.shape[1],
        n_classes=shared.shape[0],
    )


def read_checkpoint(path: str) -> dict:
    """A plain state dict from `path` (torch.load with weights_only=True); UsageError if not."""
    from segcore import storage

    if not storage.exists(path):
        raise UsageError(f"BigBiGAN checkpoint not found: {storage.redact(path)}")
    import io

    try:
        state = torch.load(
            io.BytesIO(storage.read_bytes(path)), map_location="cpu", weights_only=True
        )
    except Exception as err:  # any unpickling failure is a bad file, reported in one line
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UsageError(f"cannot read checkpoint {storage.redact(path)}: {msg}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UsageError(f"{storage.redact(path)} is not a state dict of tensors")
    return state


def load_strict(model: BigGANGenerator, state: dict, source: str) -> None:
    """load_state_dict(strict=True) with a one-line UsageError that lists every mismatch."""
    expected = model.state_dict()
    optional = {k for k in expected if k.endswith(".sv0")}
    missing = sorted(k for k in expected if k not in state and k not in optional)
    unexpected = sorted(k for k in state if k not in expected)
    wrong = sorted(
        f"{k} {list(state[k].shape)} (expected {list(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    )
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            shown = ", ".join(items[:8]) + (
                f", ... ({len(items) - 8} more)" if len(items) > 8 else ""
            )
            problems.append(f"{len(items)} {label}: {shown}")
    if problems:
        raise UsageError(
            f"checkpoint {source} does not match BigGAN-128 ch={model.config.ch}: "
            + "; ".join(problems)
        )
    full = dict(state)
    for k in optional - set(state):
        full[k] = expected[k]  # logging-only buffer; the folded value is written by fold()
    model.load_state_dict(full, strict=True)


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

        state = read_checkpoint(weights)
        config = config_from_state_dict(state)
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
