"""The StyleGAN2 backend against rosinality/stylegan2-pytorch's own `Generator`, on the CPU.

    PYTHONPATH=/path/to/stylegan2-pytorch python benchmarks/stylegan2_reference.py \
        [--size 256] [--multiplier 2] [--n 4]

One random state dict in the port's layout (generator.gans.stylegan2_model.random_state_dict)
is loaded strictly into both: the port's `Generator(size, 512, 8, channel_multiplier)` and,
through a checkpoint file {"g_ema", "latent_avg"}, `--gan stylegan2`. For the same z it prints
the largest difference of w (the mapping, then truncation with the file's latent_avg) and of
the images (the port's output clamped to [-1, 1]), for psi 1 and 0.7. The port is called as its
convert_weight.py checks a conversion: g([z], truncation=psi, truncation_latent=latent_avg,
randomize_noise=False).

The port compiles CUDA extensions when its `op` package is imported; on a machine without
them, replace the two `load(...)` calls in op/fused_act.py and op/upfirdn2d.py by None: the
port then takes its own pure-torch CPU paths (upfirdn2d_native, F.leaky_relu). Measured:
docs/stylegan2.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--multiplier", type=int, default=2)
    p.add_argument("--n", type=int, default=4, help="images per comparison")
    args = p.parse_args()

    from model import Generator  # rosinality/stylegan2-pytorch, from PYTHONPATH

    from generator.gans.stylegan2 import build
    from generator.gans.stylegan2_model import StyleGAN2Config, port_channels, random_state_dict

    config = StyleGAN2Config(
        resolution=args.size, channels=port_channels(args.size, args.multiplier)
    )
    state = random_state_dict(config, seed=3)
    avg = 0.1 * torch.randn(512, generator=torch.Generator().manual_seed(4))
    ref = Generator(args.size, 512, 8, channel_multiplier=args.multiplier).eval()
    ref.load_state_dict(state, strict=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "g.pt")
        torch.save({"g_ema": state, "latent_avg": avg}, path)
        ours = build(path, "cpu")
    print(f"{ours.description}; {sum(p.numel() for p in ref.parameters()):,} parameters")
    z = torch.randn(args.n, 512, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for psi in (1.0, 0.7):
            image_ref, _ = ref(
                [z], truncation=psi, truncation_latent=avg[None], randomize_noise=False
            )
            w_ref = ref.get_latent(z)
            if psi < 1:
                w_ref = avg + psi * (w_ref - avg)
            w = ours.map_prior(z, psi)
            image = ours.generate(w)
            print(
                f"psi {psi}: max |w - w_port| {float((w - w_ref).abs().max()):.3e}, "
                f"max |image - clamp(image_port)| "
                f"{float((image - image_ref.clamp(-1, 1)).abs().max()):.3e} "
                f"(port's image std {float(image_ref.std()):.3f})"
            )


if __name__ == "__main__":
    main()
