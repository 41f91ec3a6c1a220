"""Masks/s of the PyTorch BigBiGAN port (random weights: speed does not depend on values).

    python benchmarks/bigbigan_speed.py                          # GPU: batches 64..512, all modes
    python benchmarks/bigbigan_speed.py --device cpu             # CPU figure, tiny batch
    python benchmarks/bigbigan_speed.py --batch-sizes 256 --modes bf16,bf16-compiled
    python benchmarks/bigbigan_speed.py --weights G.pth --json   # another checkpoint; one JSON

One mask needs two generator forwards, G(z) and G(z + r h) (the paper, section 2), so
masks/s = images/s / 2; "batch" is images per forward. The FLOP count per image is measured with
torch.utils.flop_counter (convs and matmuls; ~42.2 GFLOP, so ~84.5 GFLOP per mask). On an H100
the FLOP limit is ~9.5k masks/s (about 800 dense bf16 TFLOP/s); the goal is >= 40% of it.
`--peak-tflops` sets the limit for another card; without it the H100 figure is used on GPU.
Modes: fp32, bf16 (autocast), fp16, and '<mode>-compiled' (torch.compile on top). Measured
numbers: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from generator.gans.bigbigan_torch import BigBiGANTorch, build_model
from segcore.cli import run_cli
from segcore.device import resolve_device
from segcore.options import Parser

PROG = "python benchmarks/bigbigan_speed.py"
H100_MASKS_PER_S = 9.5e3  # the FLOP limit of one H100: ~800 dense bf16 TFLOP/s / 84.5 GFLOP


def flops_per_image(model) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    backend = BigBiGANTorch(model, "cpu")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        backend.generate(torch.zeros(1, 120))
    return float(counter.get_total_flops())


def time_mode(model, device, mode, batch, iters, warmup, channels_last, compile_mode):
    precision = mode.removesuffix("-compiled")
    backend = BigBiGANTorch(
        model,
        device,
        precision=precision,
        compile=mode.endswith("-compiled"),
        compile_mode=compile_mode,
    )
    if channels_last:
        backend.model.to(memory_format=torch.channels_last)
    z = torch.randn(batch, 120, device=device)
    sync = torch.cuda.synchronize if backend.device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        for _ in range(warmup):
            backend.generate(z)
        sync()
        start = time.perf_counter()
        for _ in range(iters):
            backend.generate(z)
        sync()
    seconds = (time.perf_counter() - start) / iters
    return batch / seconds / 2.0  # masks/s: two forwards per mask


def main(argv=None) -> int:
    parser = Parser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (cuda if any), cpu, cuda or cuda:N (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-sizes", default=None, help="comma list (default: 64,128,256,512 on GPU, 2 on CPU)"
    )
    parser.add_argument(
        "--modes",
        default=None,
        help="comma list (default: fp32,bf16,bf16-compiled on GPU, fp32 on CPU)",
    )
    parser.add_argument("--iters", type=int, default=None, help="default: 20 on GPU, 2 on CPU")
    parser.add_argument("--warmup", type=int, default=None, help="default: 3 on GPU, 1 on CPU")
    parser.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    parser.add_argument(
        "--compile-mode",
        default=None,
        help="torch.compile mode, e.g. max-autotune-no-cudagraphs (default: torch's own)",
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="dense bf16 peak of the card (default on GPU: the H100 limit)",
    )
    parser.add_argument(
        "--weights",
        default="random",
        help="a checkpoint in the port's layout (any width), or random: the paper's width with "
        "random weights (default: %(default)s)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the table"
    )
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    batches = [int(b) for b in (args.batch_sizes or ("64,128,256,512" if gpu else "2")).split(",")]
    modes = (args.modes or ("fp32,bf16,bf16-compiled" if gpu else "fp32")).split(",")
    iters = args.iters or (20 if gpu else 2)
    warmup = args.warmup or (3 if gpu else 1)
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True

    model, _ = build_model(args.weights)
    flops = flops_per_image(model)
    card = torch.cuda.get_device_name(device) if gpu else f"CPU ({torch.get_num_threads()} threads)"
    say = (lambda *a, **k: None) if args.json else print
    say(f"device: {card}; torch {torch.__version__}; random weights (speed only)")
    say(f"FLOP per image {flops / 1e9:.1f} G, per mask (2 forwards) {2 * flops / 1e9:.1f} G")
    limit = None
    if gpu:
        peak = args.peak_tflops * 1e12 if args.peak_tflops else H100_MASKS_PER_S * 84.5e9
        limit = peak / (2 * flops)
        say(f"FLOP limit: {limit:,.0f} masks/s (peak {peak / 1e12:.0f} TFLOP/s); goal >= 40%")
    say(f"{'mode':>16} {'batch':>6} {'masks/s':>10}" + (f" {'of limit':>9}" if limit else ""))
    results = []
    for mode in modes:
        for batch in batches:
            rate = time_mode(
                model,
                device,
                mode,
                batch,
                iters,
                warmup,
                args.channels_last,
                args.compile_mode,
            )
            frac = f" {rate / limit:8.1%}" if limit else ""
            say(f"{mode:>16} {batch:>6} {rate:>10.2f}{frac}", flush=True)
            results.append({"mode": mode, "batch": batch, "masks_per_s": rate})
    if args.json:
        print(json.dumps({
            "card": card,
            "torch": torch.__version__,
            "channels": model.config.ch,
            "gflop_per_image": flops / 1e9,
            "flop_limit_masks_per_s": limit,
            "results": results,
        }))  # fmt: skip
    return 0


if __name__ == "__main__":
    run_cli(main, PROG)
