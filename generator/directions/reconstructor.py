"""The reconstructor of Voynov & Babenko 2020: a ResNet-18-style CNN on the channel-stacked
pair (G(z), G(z + A(eps e_k))) that predicts the direction index k and the magnitude eps.

Layout as torchvision's ResNet-18 (4 stages of 2 basic blocks, widths w, 2w, 4w, 8w; w = 64
is ResNet-18) with 6 input channels. Small images (< 64 px) get a 3x3 stride-1 stem instead of
the 7x7 stride-2 stem + max-pool, so that 16-32 px test GANs keep some spatial detail.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.short = None
        if stride != 1 or c_in != c_out:
            self.short = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.short is None else self.short(x)))


class Reconstructor(nn.Module):
    def __init__(self, k: int, resolution: int, width: int = 64, in_channels: int = 6):
        super().__init__()
        if resolution >= 64:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, width, 7, 2, 3, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, 1),
            )
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            )
        blocks, c = [], width
        for i, mult in enumerate((1, 2, 4, 8)):
            c_out = width * mult
            blocks += [BasicBlock(c, c_out, 1 if i == 0 else 2), BasicBlock(c_out, c_out, 1)]
            c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.type_head = nn.Linear(c, k)  # which direction
        self.shift_head = nn.Linear(c, 1)  # how far (eps)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.blocks(self.stem(torch.cat([x, y], dim=1)))
        feat = feat.mean(dim=(2, 3))
        return self.type_head(feat), self.shift_head(feat)[:, 0]
