"""Parameter count and GFLOP per image of the GAN backends and mask labelers, on random weights.

    python benchmarks/gan_cost.py [--only NAME[,NAME...]] [--device cpu|cuda] [--rate]

For each case: the parameters of the network that runs per image and the floating-point
operations of one image's forward (torch.utils.flop_counter: a multiply-add counts 2), and with
`--rate` the images/s (masks/s: two images per mask for a latent-shift GAN) measured on
`--device`. The numbers are properties of the architecture, so random weights in the public
checkpoint layout give the same counts as the released files. Measured: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

# name -> builder(device) -> (module whose parameters are counted, forward(batch_size))
# Each backend module adds its own case here.
CASES: dict[str, Callable] = {}


def u2net_case(variant: str) -> Callable:
    """--mask labeler: U2NET ("u2net") or U2NETP ("u2netp") with random weights in the release
    layout, on the protocol's 320x320 input (one labelled image per mask)."""

    def build(device: torch.device):
        from generator.labelers.u2net import random_model

        model = random_model(variant).to(device)
        x = torch.randn(8, 3, 320, 320, generator=torch.Generator().manual_seed(0)).to(device)
        return model, lambda n: model(x[:n])

    return build


CASES.update(u2net=u2net_case("u2net"), u2netp=u2net_case("u2netp"))


def count(name: str, device: torch.device, rate: bool) -> dict:
    module, forward = CASES[name](device)
    params = sum(p.numel() for p in module.parameters())
    with torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            forward(1)
        row = {
            "case": name,
            "params_M": params / 1e6,
            "gflop_per_image": counter.get_total_flops() / 1e9,
        }
        if rate:
            forward(8)  # warm-up
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start, n = time.perf_counter(), 0
            while time.perf_counter() - start < 5.0:
                forward(8)
                n += 8
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            row["images_per_s"] = n / (time.perf_counter() - start)
    return row


def stylegan2_case(device: torch.device):
    """--gan stylegan2: config-f 256 px (the LSUN-Church model) with random weights in
    rosinality/stylegan2-pytorch's layout, loaded by the backend from a file; one image is the
    mapping network (prior -> W) and the synthesis network."""
    import tempfile

    from generator.gans.stylegan2 import build
    from generator.gans.stylegan2_model import StyleGAN2Config, random_state_dict

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/stylegan2-church-config-f.pt"
        state = random_state_dict(StyleGAN2Config())
        torch.save({"g_ema": state, "latent_avg": torch.zeros(512)}, path)
        gan = build(path, device)
    xi = torch.randn(8, 512, generator=torch.Generator().manual_seed(0)).to(device)
    return gan.model, lambda n: gan.generate(gan.map_prior(xi[:n]))


CASES["stylegan2-256-f"] = stylegan2_case


def biggan_file_case(device: torch.device, conditional: bool):
    """BigGAN-128 at G_ch 96 with random weights, saved as a plain state dict in ajbrock's
    layout and loaded by the backend: `--gan biggan` (the ImageNet release, one class per
    image) or `--gan bigbigan` (the authors' BigBiGAN_x1.pth: every embedding row equal)."""
    import tempfile

    from generator.gans import bigbigan_torch, biggan
    from generator.gans.biggan_layers import BigGANGenerator, random_init

    model = BigGANGenerator(biggan.release_config())
    random_init(model, seed=0)
    state = model.state_dict()
    if not conditional:
        state["shared.weight"] = state["shared.weight"][:1].repeat(1000, 1)
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(state, f"{tmp}/G.pth")
        gan = (biggan if conditional else bigbigan_torch).build(f"{tmp}/G.pth", device)
    z = torch.randn(8, 120, generator=torch.Generator().manual_seed(0)).to(device)
    if not conditional:
        return gan.model, lambda n: gan.generate(z[:n])
    labels = torch.arange(8, device=device) * 111
    return gan.model, lambda n: gan.generate(z[:n], labels[:n])


CASES["biggan-128"] = lambda device: biggan_file_case(device, conditional=True)
CASES["bigbigan"] = lambda device: biggan_file_case(device, conditional=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", default="", help="comma list of cases (default: all)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--rate", action="store_true", help="also measure images/s on --device")
    args = p.parse_args()
    names = [n for n in args.only.split(",") if n] or sorted(CASES)
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        p.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(sorted(CASES))}")
    device = torch.device(args.device)
    print(f"{'case':<24} {'params (M)':>11} {'GFLOP/image':>12} {'images/s':>9}")
    for name in names:
        row = count(name, device, args.rate)
        ips = f"{row['images_per_s']:9.1f}" if "images_per_s" in row else f"{'-':>9}"
        print(f"{name:<24} {row['params_M']:11.3f} {row['gflop_per_image']:12.2f} {ips}")


if __name__ == "__main__":
    main()
