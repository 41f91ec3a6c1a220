"""What the self-training refinement (`--adapt-refine crf`) costs per image, by image side.

    python benchmarks/adapt_refine_cost.py [--sides 32,64,128] [--images 256] [--device cpu]

Times trainer.adapt_refine.refine on random images and probabilities (its cost does not depend
on their content) and prints milliseconds per image and the window it used; each round of
self-training refines every target image once (each rank its slice).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from segcore.device import resolve_device
from trainer.adapt_refine import refine, window


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sides", default="32,64,128", help="comma list of image sides")
    p.add_argument("--images", type=int, default=256, help="images per side")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    args = p.parse_args()
    device = resolve_device(args.device)
    rng = np.random.default_rng(0)
    print(f"device {device}, {torch.get_num_threads()} threads, {args.images} images a side")
    print(f"{'side':>5s} {'radius':>6s} {'ms/image':>9s}")
    for side in (int(s) for s in args.sides.split(",")):
        images = rng.integers(0, 256, (args.images, side, side, 3), dtype=np.uint8)
        q = rng.integers(0, 256, (args.images, side, side), dtype=np.uint8)
        refine(q[:2], images[:2], device)  # warm-up
        t0 = time.perf_counter()
        refine(q, images, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        ms = 1000 * (time.perf_counter() - t0) / args.images
        print(f"{side:5d} {window(side)[1]:6d} {ms:9.2f}")


if __name__ == "__main__":
    main()
