"""Cost of the directions tools on one backend: seconds per scored direction (Appendix B
settings: 200 steps x batch 4 + an evaluation batch) with and without a z pool, and discovery
steps per second (batch 32, ResNet-18-width reconstructor unless --width).

    python benchmarks/directions_speed.py --gan random \
        --weights resolution=128,width=32,latent_dim=120 --directions 3 --discover-steps 10
"""

from __future__ import annotations

import json
import time

import torch

from generator.directions.config import DiscoverConfig
from generator.directions.discover import discover
from generator.directions.score import FitSettings, score_directions
from generator.gans import load_gan
from segcore.cli import run_cli
from segcore.device import resolve_device
from segcore.options import Parser

PROG = "python benchmarks/directions_speed.py"


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None) -> int:
    dflt = "(default: %(default)s)"
    p = Parser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--gan", required=True, help="registry name or module:factory (required)")
    p.add_argument("--weights", default=None, help="the backend's weights (default: its own)")
    p.add_argument("--device", default="auto", help=f"auto, cpu, cuda or cuda:N {dflt}")
    p.add_argument("--directions", type=int, default=3, help=f"directions to score {dflt}")
    p.add_argument("--pool-size", type=int, default=64, help=f"z pool of the pooled timing {dflt}")
    p.add_argument("--discover-steps", type=int, default=10, help=f"timed discovery steps {dflt}")
    p.add_argument("--width", type=int, default=64, help=f"reconstructor width {dflt}")
    args = p.parse_args(argv)
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
    return 0


if __name__ == "__main__":
    run_cli(main, PROG)
