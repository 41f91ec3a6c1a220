"""The segmenter: U-Net as in the authors' code (an early milesial/Pytorch-UNet layout).

DoubleConv = (conv3x3 + bias -> BN -> ReLU) x 2; encoder widths 64,128,256,512,512; decoder
Up(1024,256), Up(512,128), Up(256,64), Up(128,64) with bilinear upsampling
(align_corners=True) and padding to the skip's size (so odd and non-square inputs work); a 1x1
conv to the output. About 13.4 M parameters at width 1 with 2 output classes.

`width` scales every channel count (0.125 gives a ~0.2 M-parameter net for CPU tests).

Loss (named, since the paper, section 3.4, and the authors' code differ): "ce" = 2-class
cross-entropy, P(fg) = softmax(logits)[:, 1] (the authors' code, default); "bce" = one logit,
P(fg) = sigmoid(logit) (the paper's text).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Loss = Literal["ce", "bce"]
LOSSES: tuple[str, ...] = ("ce", "bce")
BASE_WIDTHS = (64, 128, 256, 512, 512)


def out_channels(loss: str) -> int:
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    return 2 if loss == "ce" else 1


class DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class Down(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(nn.MaxPool2d(2), DoubleConv(cin, cout))


class Up(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = DoubleConv(cin, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
        # Pad (never crop) to the skip's size: inputs whose sides are not multiples of 16
        # lose a row/column at each max-pool, and the upsampled map comes back one short.
        dy = skip.shape[2] - x.shape[2]
        dx = skip.shape[3] - x.shape[3]
        x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    """[N,3,H,W] in [-1,1] -> logits [N,C,H,W] (C = 2 for "ce", 1 for "bce")."""

    def __init__(self, width: float = 1.0, loss: Loss = "ce", in_channels: int = 3):
        super().__init__()
        if not width > 0:
            raise ValueError(f"width must be > 0, got {width}")
        c = [max(1, round(w * width)) for w in BASE_WIDTHS]
        self.width, self.loss = float(width), loss
        self.inc = DoubleConv(in_channels, c[0])
        self.down1 = Down(c[0], c[1])
        self.down2 = Down(c[1], c[2])
        self.down3 = Down(c[2], c[3])
        self.down4 = Down(c[3], c[4])
        self.up1 = Up(c[3] + c[4], c[2])
        self.up2 = Up(c[2] + c[2], c[1])
        self.up3 = Up(c[1] + c[1], c[0])
        self.up4 = Up(c[0] + c[0], c[0])
        self.outc = nn.Conv2d(c[0], out_channels(loss), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)


def foreground_probability(logits: torch.Tensor, loss: str) -> torch.Tensor:
    """Logits -> P(foreground) [N,1,H,W] under the named loss's convention."""
    if loss == "ce":
        return torch.softmax(logits.float(), dim=1)[:, 1:2]
    if loss == "bce":
        return torch.sigmoid(logits.float())
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean per-pixel loss; `target` is [N,H,W] with 1 = foreground."""
    if loss == "ce":
        return F.cross_entropy(logits.float(), target.long())
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(logits[:, 0].float(), target.float())
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


class ProbabilityModel(nn.Module):
    """The model-file contract (segcore.modelfile): [N,3,H,W] in [-1,1] -> P(fg) [N,1,H,W]."""

    def __init__(self, unet: UNet):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return foreground_probability(self.unet(x), self.unet.loss)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
