"""Cost of the directions tools on one backend: seconds per scored direction (Appendix B
settings: 200 steps x batch 4 + an evaluation batch) with and without a z pool, and discovery
steps per second (batch 32, ResNet-18-width reconstructor unless --width).

    .venv/bin/python benchmarks/directions_speed.py --gan random \
        --weights resolution=128,width=32,latent_dim=120 --directions 3 --discover-steps 10
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from generator.directions.backend import resolve_device
from generator.directions.config import DiscoverConfig
from generator.directions.discover import discover
from generator.directions.score import FitSettings, score_directions
from generator.gans import load_gan


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gan", required=True)
    p.add_argument("--weights", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--directions", type=int, default=3, help="directions to score")
    p.add_argument("--pool-size", type=int, default=64)
    p.add_argument("--discover-steps", type=int, default=10)
    p.add_argument("--width", type=int, default=64)
    args = p.parse_args()
    device = resolve_device(args.device)
    backend = load_gan(args.gan, args.weights, device)
    dirs = torch.eye(backend.latent_dim)[: args.directions]
    result = {"gan": args.gan, "weights": args.weights, "device": str(device)}
    for pool in (0, args.pool_size):
        settings = FitSettings(pool_size=pool)
        _sync(device)
        t0 = time.perf_counter()
        score_directions(backend, dirs, settings, progress=False)
        _sync(device)
        key = "fresh_z" if pool == 0 else f"pool_{pool}"
        result[f"score_seconds_per_direction_{key}"] = (time.perf_counter() - t0) / len(dirs)
    if backend.differentiable and args.discover_steps:
        cfg = DiscoverConfig(gan=args.gan, out="", k=backend.latent_dim,
                             steps=args.discover_steps, width=args.width)  # fmt: skip
        discover(backend, DiscoverConfig(**{**cfg.__dict__, "steps": 1}), progress=False)  # warm
        _sync(device)
        t0 = time.perf_counter()
        discover(backend, cfg, progress=False)
        _sync(device)
        result["discover_steps_per_second"] = args.discover_steps / (time.perf_counter() - t0)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
