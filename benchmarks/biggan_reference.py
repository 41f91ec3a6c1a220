"""The BigGAN-128 ports (`--gan biggan`, `--gan bigbigan`) against ajbrock's own `Generator`, CPU.

    PYTHONPATH=/path/to/BigGAN-PyTorch python benchmarks/biggan_reference.py [--ch 96] [--n 6]

For each configuration, ajbrock's `Generator(G_ch=ch, dim_z=120, resolution=128, G_attn='64',
G_shared=True, shared_dim=128, hier=True)` gets one random state dict (weights, `u0`, `sv0`,
stored BatchNorm statistics; the output BatchNorm's variances between 1e-5 and 1e-3 so that its
eps shows), runs in eval mode as `G(z, G.shared(y))`, and the same state dict, saved as a plain
file, is loaded by the backend. It prints the largest image difference and whether the eval
forwards left ajbrock's buffers as they were:

- biggan: the ImageNet release's configuration (BN_eps 1e-5, SN_eps 1e-6), 6 classes;
- bigbigan: the authors' (anvoynov/BigGANsAreWatching, BigGAN/gan_load.py: BN_eps 1e-4, SN_eps
  1e-4, every `shared` row equal, class 0), then the same weights with the output BatchNorm at
  TF-Hub's eps 1e-4 instead of ajbrock's 1e-5, which should differ.

Measured: docs/biggan.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile

import torch
from torch import nn


def random_state(model: nn.Module, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, v in model.state_dict().items():
        if k.endswith("stored_var"):
            low, span = (1e-5, 1e-3) if k.startswith("output_layer") else (0.5, 1.0)
            v = low + span * torch.rand(v.shape, generator=g)
        elif k.endswith("stored_mean"):
            v = 0.1 * torch.randn(v.shape, generator=g)
        elif k.endswith(".sv0"):
            v = 0.5 + torch.rand(v.shape, generator=g)  # logging only: any value
        elif k.endswith(".gamma"):
            v = torch.tensor(0.7)
        elif k == "output_layer.0.gain":
            v = 0.05 * torch.rand(v.shape, generator=g)
        else:
            v = torch.randn(v.shape, generator=g) * (1.0 if k.endswith(".u0") else 0.05)
        state[k] = v
    return state


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ch", type=int, default=96, help="G_ch (the releases: 96)")
    p.add_argument("--n", type=int, default=6, help="images per comparison")
    args = p.parse_args()

    import BigGAN  # ajbrock/BigGAN-PyTorch, from PYTHONPATH

    from generator.gans import bigbigan_torch, biggan
    from generator.gans.biggan_layers import BigGANGenerator, fold_spectral_norm, load_strict

    z = torch.randn(args.n, 120, generator=torch.Generator().manual_seed(2))
    y = torch.randint(1000, (args.n,), generator=torch.Generator().manual_seed(3))
    for name, bn_eps, sn_eps in (("biggan", 1e-5, 1e-6), ("bigbigan", 1e-4, 1e-4)):
        ref = BigGAN.Generator(
            G_ch=args.ch, dim_z=120, resolution=128, G_attn="64", n_classes=1000,
            G_shared=True, shared_dim=128, hier=True, BN_eps=bn_eps, SN_eps=sn_eps,
            G_activation=nn.ReLU(inplace=False), skip_init=True, no_optim=True,
        )  # fmt: skip
        state = random_state(ref, seed=1)
        if name == "bigbigan":
            state["shared.weight"] = state["shared.weight"][:1].repeat(1000, 1)
        ref.load_state_dict(state, strict=True)
        ref.eval()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "G.pth")
            torch.save(state, path)
            ours = (biggan if name == "biggan" else bigbigan_torch).build(path, "cpu")
        labels = y if name == "biggan" else torch.zeros_like(y)
        with torch.no_grad():
            image_ref = ref(z, ref.shared(labels))
            image = ours.generate(z, labels) if name == "biggan" else ours.generate(z)
        kept = all(torch.equal(state[k], v) for k, v in ref.state_dict().items())
        print(
            f"{name} (G_ch {args.ch}): max |image - image_ajbrock| "
            f"{float((image - image_ref).abs().max()):.3e} (ajbrock's image std "
            f"{float(image_ref.std()):.3f}); buffers unchanged by eval forwards: {kept}"
        )
        if name == "bigbigan":
            tf_eps = BigGANGenerator(dataclasses.replace(ours.model.config, out_bn_eps=1e-4))
            load_strict(tf_eps, state, "state")
            fold_spectral_norm(tf_eps)
            with torch.no_grad():
                other = bigbigan_torch.BigBiGANTorch(tf_eps, "cpu").generate(z)
            print(
                f"bigbigan with the output BN at eps 1e-4 (TF-Hub's): max |image - "
                f"image_ajbrock| {float((other - image_ref).abs().max()):.3e}"
            )


if __name__ == "__main__":
    main()
