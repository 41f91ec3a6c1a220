"""BigGAN-128 generator (layers, model, strict loading) with ajbrock BigGAN-PyTorch parameter
names, SN folded at load; shared by `--gan bigbigan` (bigbigan_torch.py) and `--gan biggan`
(biggan.py).

The module and parameter names match ajbrock/BigGAN-PyTorch `layers.py` and `BigGAN.py` (the
layout of its released ImageNet checkpoints and of the authors' converted `BigBiGAN_x1.pth`,
anvoynov/BigGANsAreWatching), so a state dict from that code loads key for key:

    SNConv2d / SNLinear   weight, bias, u0 [1, out], sv0 [1]
    ccbn                  gain.{weight,u0,sv0}, bias.{weight,u0,sv0}, stored_mean, stored_var
    bn                    gain, bias, stored_mean, stored_var
    Attention             theta, phi, g, o (SNConv2d 1x1, no bias), gamma

Spectral norm: in eval mode ajbrock's `SN.W_()` runs one power iteration
from the stored `u0` without updating it, so W / sigma is a constant of the checkpoint. We
compute it once (`fold_spectral_norm`) and then run plain conv/linear: same numbers, no
per-forward power iteration. A layer refuses to run before it is folded, so unfolded weights can
never be used by mistake.

The epsilons are the model's, not the layers': `BigGANConfig` holds the conditional-BN eps, the
output BN's eps (ajbrock's `BigGAN.py` builds `output_layer` with `layers.bn(...)` without passing
its `BN_eps`, so that layer keeps `layers.bn`'s default 1e-5 whatever the model's BN eps) and
the SN eps, and each backend sets them for the model its weights come from.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from generator.state_dicts import is_tensor_dict, load_file, mismatches
from segcore.cli import UsageError


def sn_sigma(weight: torch.Tensor, u: torch.Tensor, eps: float) -> torch.Tensor:
    """sigma of `weight` as ajbrock's `power_iteration(W, [u], update=False, eps)` computes it.

    One step of the power method from the stored left singular vector u [1, out]:
    v = normalize(u W), u' = normalize(v W^T), sigma = v W^T u'^T.
    F.normalize divides by max(||x||, eps), exactly like the reference.
    """
    # float32 like the reference (it runs SN in the weight's dtype at every forward).
    w = weight.detach().float().reshape(weight.shape[0], -1)
    u = u.detach().float().reshape(1, -1)
    v = F.normalize(u @ w, eps=eps)
    u2 = F.normalize(v @ w.t(), eps=eps)
    return (v @ w.t() @ u2.t()).squeeze()


class _SNMixin:
    """Spectral-norm buffers with ajbrock's names; `fold()` divides the weight by sigma once."""

    def _init_sn(self, num_outputs: int, eps: float) -> None:
        self.sn_eps = eps
        self.sn_folded = False
        self.register_buffer("u0", torch.randn(1, num_outputs))
        self.register_buffer("sv0", torch.ones(1))

    @torch.no_grad()
    def fold(self) -> None:
        if self.sn_folded:
            raise RuntimeError("spectral norm already folded")
        sigma = sn_sigma(self.weight, self.u0, self.sn_eps)
        self.weight.copy_(self.weight / sigma.to(self.weight.dtype))
        self.sv0.fill_(float(sigma))
        self.sn_folded = True

    def _check_folded(self) -> None:
        if not self.sn_folded:
            raise RuntimeError(
                "spectral norm not folded: call fold_spectral_norm(model) after loading weights"
            )


class SNConv2d(nn.Conv2d, _SNMixin):
    def __init__(self, in_ch, out_ch, kernel_size=3, padding=1, bias=True, *, eps: float):
        nn.Conv2d.__init__(self, in_ch, out_ch, kernel_size, padding=padding, bias=bias)
        self._init_sn(out_ch, eps)

    def forward(self, x):
        self._check_folded()
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)


class SNLinear(nn.Linear, _SNMixin):
    def __init__(self, in_features, out_features, bias=True, *, eps: float):
        nn.Linear.__init__(self, in_features, out_features, bias=bias)
        self._init_sn(out_features, eps)

    def forward(self, x):
        self._check_folded()
        return F.linear(x, self.weight, self.bias)


def fold_spectral_norm(model: nn.Module) -> int:
    """Fold every SN layer of `model` (once); returns how many were folded."""
    n = 0
    for m in model.modules():
        if isinstance(m, _SNMixin):
            m.fold()
            n += 1
    return n


class ccbn(nn.Module):
    """Conditional BN: stored statistics, gain = 1 + SNLinear(y), bias = SNLinear(y)."""

    def __init__(self, channels: int, cond_dim: int, bn_eps: float, sn_eps: float):
        super().__init__()
        self.eps = bn_eps
        self.gain = SNLinear(cond_dim, channels, bias=False, eps=sn_eps)
        self.bias = SNLinear(cond_dim, channels, bias=False, eps=sn_eps)
        self.register_buffer("stored_mean", torch.zeros(channels))
        self.register_buffer("stored_var", torch.ones(channels))

    def forward(self, x, y):
        gain = (1 + self.gain(y)).view(y.shape[0], -1, 1, 1)
        bias = self.bias(y).view(y.shape[0], -1, 1, 1)
        # Eval-mode BN with the stored statistics (outputs do not depend
        # on the batch, so z and z + r h can share one batch).
        out = F.batch_norm(x, self.stored_mean, self.stored_var, None, None, False, 0.0, self.eps)
        return out * gain + bias


class bn(nn.Module):
    """Plain BN with stored statistics (the output layer's)."""

    def __init__(self, channels: int, eps: float):
        super().__init__()
        self.eps = eps
        self.gain = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("stored_mean", torch.zeros(channels))
        self.register_buffer("stored_var", torch.ones(channels))

    def forward(self, x):
        return F.batch_norm(
            x, self.stored_mean, self.stored_var, self.gain, self.bias, False, 0.0, self.eps
        )


class GBlock(nn.Module):
    """bn1 -> ReLU -> nearest x2 -> conv1 -> bn2 -> ReLU -> conv2, plus x2 -> 1x1 conv_sc."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int, bn_eps: float, sn_eps: float):
        super().__init__()
        self.conv1 = SNConv2d(in_ch, out_ch, 3, 1, eps=sn_eps)
        self.conv2 = SNConv2d(out_ch, out_ch, 3, 1, eps=sn_eps)
        # Every BigGAN-128 G block upsamples, so the shortcut is always learnable.
        self.conv_sc = SNConv2d(in_ch, out_ch, 1, 0, eps=sn_eps)
        self.bn1 = ccbn(in_ch, cond_dim, bn_eps, sn_eps)
        self.bn2 = ccbn(out_ch, cond_dim, bn_eps, sn_eps)

    def forward(self, x, y):
        h = F.relu(self.bn1(x, y))
        h = F.interpolate(h, scale_factor=2, mode="nearest")
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        h = self.conv1(h)
        h = F.relu(self.bn2(h, y))
        h = self.conv2(h)
        return h + self.conv_sc(x)


class Attention(nn.Module):
    """SA-GAN non-local block as in BigGAN (keys/values max-pooled 2x2)."""

    def __init__(self, ch: int, sn_eps: float):
        super().__init__()
        self.ch = ch
        self.theta = SNConv2d(ch, ch // 8, 1, 0, bias=False, eps=sn_eps)
        self.phi = SNConv2d(ch, ch // 8, 1, 0, bias=False, eps=sn_eps)
        self.g = SNConv2d(ch, ch // 2, 1, 0, bias=False, eps=sn_eps)
        self.o = SNConv2d(ch // 2, ch, 1, 0, bias=False, eps=sn_eps)
        self.gamma = nn.Parameter(torch.tensor(0.0))

    def forward(self, x, y=None):
        n, _, h, w = x.shape
        theta = self.theta(x).view(n, self.ch // 8, h * w)
        phi = F.max_pool2d(self.phi(x), [2, 2]).view(n, self.ch // 8, h * w // 4)
        g = F.max_pool2d(self.g(x), [2, 2]).view(n, self.ch // 2, h * w // 4)
        beta = F.softmax(torch.bmm(theta.transpose(1, 2), phi), -1)
        o = self.o(torch.bmm(g, beta.transpose(1, 2)).view(n, self.ch // 2, h, w))
        return self.gamma * o + x


# ---- the model -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BigGANConfig:
    """BigGAN-128 (ajbrock `Generator` with hier=True, G_shared=True). The defaults are BigBiGAN
    as the paper's authors ran it in ajbrock's code (anvoynov/BigGANsAreWatching,
    BigGAN/gan_load.py: BN_eps 1e-4, SN_eps 1e-4; the output BN at ajbrock's fixed 1e-5)."""

    ch: int = 96
    dim_z: int = 120
    shared_dim: int = 128
    n_classes: int = 1000
    bottom_width: int = 4
    attn_res: int = 64
    bn_eps: float = 1e-4  # the blocks' conditional BNs
    sn_eps: float = 1e-4
    out_bn_eps: float = 1e-5  # the output layer's BN

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
            bn(c.out_channels[-1], c.out_bn_eps),
            nn.ReLU(),
            SNConv2d(c.out_channels[-1], 3, 3, 1, eps=c.sn_eps),
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


# ---- loading ---------------------------------------------------------------------------------


def config_from_state_dict(state: dict, **eps) -> BigGANConfig:
    """Width, z size and class count read from a checkpoint's tensor shapes (BigGAN-128 only);
    `eps` (bn_eps, sn_eps, out_bn_eps) are the backend's, they are not in a state dict."""
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
    n_blocks = 1 + max(
        (
            int(k.split(".")[1])
            for k in state
            if k.startswith("blocks.") and k.split(".")[1].isdigit()
        ),
        default=-1,
    )
    if n_blocks != 5:
        raise UsageError(
            f"not a BigGAN-128 generator checkpoint: {n_blocks} blocks (BigGAN-128 has 5; "
            "BigGAN-256 has 6 and BigGAN-512 7, which are not supported)"
        )
    return BigGANConfig(
        ch=lin.shape[0] // 256,
        dim_z=lin.shape[1] * 6,
        shared_dim=shared.shape[1],
        n_classes=shared.shape[0],
        **eps,
    )


def read_checkpoint(path: str, what: str) -> tuple[dict, dict]:
    """(state dict, record) from `path`, read with torch.load(weights_only=True).

    A plain state dict of tensors (ajbrock's and the authors' files) comes with an empty record;
    a file written by `python -m generator.convert` is {"state_dict": ..., "source": ..., ...}
    and its record is everything but the state dict. UsageError (one line) for anything else;
    `what` names the checkpoint in messages ("BigBiGAN", "BigGAN")."""
    from segcore import storage

    shown = storage.redact(path)
    obj = load_file(path, f"{what} checkpoint")
    record: dict = {}
    if isinstance(obj, dict) and "state_dict" in obj:
        record = {k: v for k, v in obj.items() if k != "state_dict"}
        obj = obj["state_dict"]
        if not isinstance(record.get("source"), str):
            raise UsageError(f"{shown} holds a 'state_dict' but no 'source' string")
    if not is_tensor_dict(obj):
        raise UsageError(f"{shown} is not a state dict of tensors")
    return obj, record


def load_strict(model: BigGANGenerator, state: dict, source: str) -> None:
    """load_state_dict(strict=True) with a one-line UsageError that lists every mismatch.

    The one tolerated absence is the `sv0` buffers: ajbrock's code uses them for logging only
    and the authors' converter does not write them ("Ignore missing sv0 entries",
    anvoynov/BigGANsAreWatching tf_tools/tf_to_torch.py); `fold()` writes their value."""
    expected = model.state_dict()
    optional = {k for k in expected if k.endswith(".sv0")}
    problems = mismatches(expected, state, optional, shown=8)
    if problems:
        raise UsageError(
            f"checkpoint {source} does not match BigGAN-128 ch={model.config.ch}: "
            + "; ".join(problems)
        )
    full = dict(state)
    for k in optional - set(state):
        full[k] = expected[k]  # logging-only buffer; the folded value is written by fold()
    model.load_state_dict(full, strict=True)
