"""`--labeler u2net`: U²-Net (Qin et al., 2020), the supervised saliency model of the paper's
Table 6 (Appendix A.1), in PyTorch, with the authors' test-time protocol.

    --mask labeler --labeler u2net --labeler-weights u2net.pth     the full model, 44.0 M params
    --mask labeler --labeler u2net --labeler-weights u2netp.pth    the small one, 1.13 M params

The checkpoint layout is that of the authors' released files: a plain state dict of `U2NET` or
`U2NETP`, keys `stage1.rebnconvin.conv_s1.weight`, ..., `stage6.*`, `stage5d.*` ... `stage1d.*`,
`side1.*` ... `side6.*`, `outconv.*`. Which of the two models a file holds is read from its
shapes (the width of `stage1.rebnconv1`: 32 channels in U2NET, 16 in U2NETP). Loading is
strict: a missing, unexpected or mis-shaped key is a one-line error naming it. The BatchNorm
`num_batches_tracked` counters are optional (they only count training steps; whether the
released files hold them could not be checked here), so a file with or without them loads.

Network: each stage is a residual U-block RSU-L (L = 7, 6, 5, 4: an input layer, then an
encoder of L-1 3x3 conv-BN-ReLU layers with a 2x2 max pooling (ceil mode) after each of the
first L-2, a dilation-2 layer at the bottom, a decoder whose layers take the previous decoder
output concatenated with the encoder layer of the same size and upsample bilinearly to the next
size; the block returns the decoder's output plus the input layer's) or RSU-4F (no pooling:
dilations 1, 2, 4, 8). The stages are joined the same way, with pooling between the six encoder
stages. Six side outputs (3x3 conv to one channel, upsampled to the input size) are fused by a
1x1 conv into d0. The protocol (generator/labelers/protocol.py) uses sigmoid(d0) only.
"""

from __future__ import annotations

import sys

import torch
from torch import nn
from torch.nn import functional as F

from generator.state_dicts import is_tensor_dict, load_file, mismatches
from segcore.cli import UsageError

# (block kind, in channels, mid channels, out channels) of stage1..stage6 and stage5d..stage1d
FULL = {
    "encoder": [(7, 3, 32, 64), (6, 64, 32, 128), (5, 128, 64, 256), (4, 256, 128, 512),
                ("4F", 512, 256, 512), ("4F", 512, 256, 512)],
    "decoder": [("4F", 1024, 256, 512), (4, 1024, 128, 256), (5, 512, 64, 128),
                (6, 256, 32, 64), (7, 128, 16, 64)],
}  # fmt: skip
SMALL = {
    "encoder": [(7, 3, 16, 64), (6, 64, 16, 64), (5, 64, 16, 64), (4, 64, 16, 64),
                ("4F", 64, 16, 64), ("4F", 64, 16, 64)],
    "decoder": [("4F", 128, 16, 64), (4, 128, 16, 64), (5, 128, 16, 64),
                (6, 128, 16, 64), (7, 128, 16, 64)],
}  # fmt: skip
VARIANTS = {"u2net": FULL, "u2netp": SMALL}
# the key and the dimension that tell the two models apart: stage1's mid channels
PROBE_KEY = "stage1.rebnconv1.conv_s1.weight"
PROBE = {32: "u2net", 16: "u2netp"}
OPTIONAL_SUFFIX = ".num_batches_tracked"


class ConvBNReLU(nn.Module):
    """3x3 conv (dilation d, padding d) -> BatchNorm (eps 1e-5) -> ReLU; the release's
    REBNCONV, whose parameters are `conv_s1.*` and `bn_s1.*`."""

    def __init__(self, cin: int, cout: int, dilation: int = 1):
        super().__init__()
        self.conv_s1 = nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation)
        self.bn_s1 = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn_s1(self.conv_s1(x)))


def upsample_like(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of `x` to the height and width of `like` (half-pixel centres)."""
    return F.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=False)


class RSU(nn.Module):
    """RSU-L (`height` L in 4..7): layers `rebnconvin`, `rebnconv1`..`rebnconv{L}` and
    `rebnconv{L-1}d`..`rebnconv1d`, as named in the release."""

    def __init__(self, height: int, cin: int, mid: int, cout: int):
        super().__init__()
        self.height = height
        self.rebnconvin = ConvBNReLU(cin, cout)
        self.add_module("rebnconv1", ConvBNReLU(cout, mid))
        for i in range(2, height):
            self.add_module(f"rebnconv{i}", ConvBNReLU(mid, mid))
        self.add_module(f"rebnconv{height}", ConvBNReLU(mid, mid, dilation=2))
        for i in range(height - 1, 1, -1):
            self.add_module(f"rebnconv{i}d", ConvBNReLU(2 * mid, mid))
        self.add_module("rebnconv1d", ConvBNReLU(2 * mid, cout))

    def forward(self, x):
        top = self.height
        hxin = self.rebnconvin(x)
        skips, h = [], hxin
        for i in range(1, top):
            h = getattr(self, f"rebnconv{i}")(h)
            skips.append(h)
            if i < top - 1:
                h = F.max_pool2d(h, 2, stride=2, ceil_mode=True)
        d = getattr(self, f"rebnconv{top}")(h)
        for i in range(top - 1, 0, -1):
            d = getattr(self, f"rebnconv{i}d")(torch.cat([d, skips[i - 1]], 1))
            if i > 1:
                d = upsample_like(d, skips[i - 2])
        return d + hxin


class RSU4F(nn.Module):
    """RSU-4F: no pooling, dilations 1, 2, 4 and 8 in the encoder, 4, 2, 1 in the decoder."""

    def __init__(self, cin: int, mid: int, cout: int):
        super().__init__()
        self.rebnconvin = ConvBNReLU(cin, cout)
        self.rebnconv1 = ConvBNReLU(cout, mid)
        self.rebnconv2 = ConvBNReLU(mid, mid, dilation=2)
        self.rebnconv3 = ConvBNReLU(mid, mid, dilation=4)
        self.rebnconv4 = ConvBNReLU(mid, mid, dilation=8)
        self.rebnconv3d = ConvBNReLU(2 * mid, mid, dilation=4)
        self.rebnconv2d = ConvBNReLU(2 * mid, mid, dilation=2)
        self.rebnconv1d = ConvBNReLU(2 * mid, cout)

    def forward(self, x):
        hxin = self.rebnconvin(x)
        h1 = self.rebnconv1(hxin)
        h2 = self.rebnconv2(h1)
        h3 = self.rebnconv3(h2)
        h4 = self.rebnconv4(h3)
        d = self.rebnconv3d(torch.cat([h4, h3], 1))
        d = self.rebnconv2d(torch.cat([d, h2], 1))
        return self.rebnconv1d(torch.cat([d, h1], 1)) + hxin


def _block(kind, cin: int, mid: int, cout: int) -> nn.Module:
    return RSU4F(cin, mid, cout) if kind == "4F" else RSU(kind, cin, mid, cout)


class U2Net(nn.Module):
    """U2NET (`variant` "u2net") or U2NETP ("u2netp"), one output channel.

    forward(x [N, 3, H, W], normalised as the protocol says) -> the seven side-output logits
    [d0, d1, ..., d6], each [N, 1, H, W]; d0 is the fused one."""

    def __init__(self, variant: str = "u2net"):
        super().__init__()
        spec = VARIANTS[variant]
        self.variant = variant
        for i, block in enumerate(spec["encoder"], start=1):
            self.add_module(f"stage{i}", _block(*block))
        for i, block in zip(range(5, 0, -1), spec["decoder"], strict=True):
            self.add_module(f"stage{i}d", _block(*block))
        # side i reads stage i's decoder output (stage6's encoder output for side 6)
        side_in = [spec["decoder"][5 - i][3] for i in range(1, 6)] + [spec["encoder"][5][3]]
        for i, cin in enumerate(side_in, start=1):
            self.add_module(f"side{i}", nn.Conv2d(cin, 1, 3, padding=1))
        self.outconv = nn.Conv2d(6, 1, 1)

    def forward(self, x):
        enc, h = [], x
        for i in range(1, 7):
            h = getattr(self, f"stage{i}")(h)
            enc.append(h)
            if i < 6:
                h = F.max_pool2d(h, 2, stride=2, ceil_mode=True)
        dec = {6: enc[5]}
        d = enc[5]
        for i in range(5, 0, -1):
            d = getattr(self, f"stage{i}d")(
                torch.cat([upsample_like(d, enc[i - 1]), enc[i - 1]], 1)
            )
            dec[i] = d
        sides = [getattr(self, f"side{i}")(dec[i]) for i in range(1, 7)]
        sides = [sides[0]] + [upsample_like(s, sides[0]) for s in sides[1:]]
        return [self.outconv(torch.cat(sides, 1)), *sides]


def read_state_dict(path: str) -> dict:
    """A plain state dict of tensors from `path` (torch.load, weights_only=True); UsageError
    (one line) for a missing, truncated or foreign file."""
    from segcore import storage

    shown = storage.redact(path)
    state = load_file(path, "labeler weights")
    if not is_tensor_dict(state):
        raise UsageError(f"labeler weights {shown} are not a state dict of tensors")
    return state


def variant_of(state: dict, source: str) -> str:
    """ "u2net" or "u2netp" from the width of stage1's first inner layer; UsageError if the
    file holds neither."""
    probe = state.get(PROBE_KEY)
    if probe is None or probe.dim() != 4 or int(probe.shape[0]) not in PROBE:
        shape = "absent" if probe is None else list(probe.shape)
        some = ", ".join(sorted(state)[:3])
        raise UsageError(
            f"labeler weights {source} are not a U2NET or U2NETP state dict ({PROBE_KEY} "
            f"{shape}; expected [32, 64, 3, 3] or [16, 64, 3, 3]; the file starts with {some})"
        )
    return PROBE[int(probe.shape[0])]


def load_strict(model: U2Net, state: dict, source: str) -> None:
    """load_state_dict(strict=True) with a one-line UsageError listing every mismatch."""
    expected = model.state_dict()
    optional = {k for k in expected if k.endswith(OPTIONAL_SUFFIX)}
    problems = mismatches(expected, state, optional)
    if problems:
        raise UsageError(
            f"labeler weights {source} do not match {model.variant.upper()}: " + "; ".join(problems)
        )
    full = dict(state)
    for k in optional - set(state):
        full[k] = expected[k]  # a training-step counter, unused in eval mode
    model.load_state_dict(full, strict=True)


def load_model(path: str) -> U2Net:
    """The eval-mode model (on the CPU) that the file at `path` holds."""
    from segcore import storage

    source = storage.redact(path)
    state = read_state_dict(path)
    model = U2Net(variant_of(state, source))
    load_strict(model, state, source)
    return model.eval().requires_grad_(False)


def random_model(variant: str = "u2net", seed: int = 0) -> U2Net:
    """Random weights in the release layout (tests and benchmarks): conv weights from
    PyTorch's default init under `seed`, BatchNorm statistics and affine drawn so that the
    activations stay in a sane range."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = U2Net(variant)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            c = module.num_features
            module.weight.data = 0.5 + torch.rand(c, generator=gen)
            module.bias.data = 0.2 * torch.randn(c, generator=gen)
            module.running_mean.data = 0.1 * torch.randn(c, generator=gen)
            module.running_var.data = 0.5 + torch.rand(c, generator=gen)
    return model.eval().requires_grad_(False)


def build(weights: str | None, device="cpu"):
    """Registry factory (generator/labelers/__init__.py): the labeler for `--labeler-weights`."""
    from generator.labelers.protocol import SaliencyLabeler
    from segcore import storage

    if not weights:
        raise UsageError(
            "--labeler u2net needs --labeler-weights: the authors' u2net.pth (full, 176 MB) "
            "or u2netp.pth (small, 4.7 MB)"
        )
    model = load_model(weights)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(
        f"labeler: {storage.redact(weights)} holds {model.variant.upper()} ({params:.2f} M "
        "parameters)",
        file=sys.stderr,
    )
    return SaliencyLabeler(model, device, name=model.variant)
