"""Trainer throughput: is the input pipeline ever the bottleneck?

Prints images/s of
  model   the training step alone (forward + backward + Adam) on tensors already in memory,
  loader  the input pipeline alone (trainer.data.ShardStream + DataLoader: tar read, JPEG/PNG
          decode, batching) over shards written to a temp dir,
  both    the two together as in the training loop, with the data-wait fraction (time blocked
          on the loader / wall time);
and the goal check: loader >= 3x model, data-wait < 5% (measured numbers: docs/benchmarks.md).

CPU (default): 64 and 128 px, the paper's U-Net (width 1.0) at a small batch:
    python benchmarks/trainer_throughput.py
GPU (when CUDA is available): 128 px, batch 95 and 256, bf16 autocast, the card named:
    python benchmarks/trainer_throughput.py --gpu
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import webdataset as wds

from segcore import schema
from segcore.cli import run_cli
from segcore.device import resolve_device
from segcore.options import Parser
from trainer import data
from trainer.unet import UNet, segmentation_loss
from trainer.validate import to_model_input


def write_shards(folder: Path, n_shards: int, per_shard: int, size: int) -> list[str]:
    """Shards in the generator's format: GAN-like JPEG (noise + blob) and a 0/255 PNG mask."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    urls = []
    for s in range(n_shards):
        path = folder / schema.shard_name(s)
        with wds.TarWriter(str(path)) as sink:
            for i in range(per_shard):
                img = cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3), np.uint8), (5, 5), 0)
                mask = np.zeros((size, size), np.uint8)
                c, r = (
                    rng.integers(size // 4, 3 * size // 4, 2),
                    int(rng.integers(size // 8, size // 3)),
                )
                cv2.circle(mask, (int(c[0]), int(c[1])), r, 255, -1)
                img[mask > 0] = (img[mask > 0] // 2 + 100).astype(np.uint8)
                sink.write({
                    "__key__": schema.sample_key(s, i),
                    schema.IMAGE_KEY: cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes(),
                    schema.MASK_KEY: cv2.imencode(".png", mask)[1].tobytes(),
                    schema.META_KEY: json.dumps({"shard": s, "sample": i}).encode(),
                })  # fmt: skip
        urls.append(str(path))
    return urls


def make_loader(urls, batch, size, steps, workers):
    spec = data.StreamSpec(tuple(urls), 0, 0, batch, size, 0.05)
    stream = data.ShardStream(spec, total=steps, n_workers=workers)
    return data.train_loader(stream, workers, pin_memory=torch.cuda.is_available())


class Step:
    def __init__(self, width, device, amp):
        torch.manual_seed(0)
        self.net = UNet(width, "ce").to(device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.device, self.amp = device, amp

    def __call__(self, images, masks):
        x = to_model_input(images, self.device)
        y = masks.to(self.device, non_blocking=True) >= 128
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            logits = self.net(x)
        loss = segmentation_loss(logits, y, "ce")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_model(step, batch, size, steps, warmup):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, generator=g)
    masks = (torch.rand(batch, size, size, generator=g) > 0.5).to(torch.uint8) * 255
    images, masks = images.to(step.device), masks.to(step.device)
    for _ in range(warmup):
        step(images, masks)
    sync(step.device)
    t = time.perf_counter()
    for _ in range(steps):
        step(images, masks)
    sync(step.device)
    return batch * steps / (time.perf_counter() - t)


def bench_loader(urls, batch, size, steps, workers):
    loader = make_loader(urls, batch, size, steps, workers)
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    t = time.perf_counter()
    n = sum(1 for _ in it)
    return batch * n / (time.perf_counter() - t)


def bench_both(step, urls, batch, size, steps, warmup, workers):
    loader = make_loader(urls, batch, size, steps + warmup, workers)
    it = iter(loader)
    for _ in range(warmup):
        b = next(it)
        step(b["image"], b["mask"])
    sync(step.device)
    wait, t = 0.0, time.perf_counter()
    for _ in range(steps):
        t0 = time.perf_counter()
        b = next(it)
        wait += time.perf_counter() - t0
        step(b["image"], b["mask"])
    sync(step.device)
    wall = time.perf_counter() - t
    assert next(it, None) is None
    return batch * steps / wall, wait / wall


def run(label, device, size, batch, width, steps, workers, amp, folder):
    urls = write_shards(folder / f"{size}", n_shards=4, per_shard=max(64, 2 * batch), size=size)
    step = Step(width, device, amp)
    model = bench_model(step, batch, size, steps, warmup=2)
    loader = bench_loader(urls, batch, size, max(steps, 40), workers)
    both, wait = bench_both(step, urls, batch, size, steps, 2, workers)
    ok = loader >= 3 * model and wait < 0.05
    print(
        f"{label:>10} {size:>4}px batch {batch:>3} | model {model:8.1f} img/s | loader "
        f"{loader:8.1f} img/s ({loader / model:5.1f}x) | both {both:8.1f} img/s, data-wait "
        f"{100 * wait:4.1f}% | goal {'met' if ok else 'NOT met'}",
        flush=True,
    )


PROG = "python benchmarks/trainer_throughput.py"


def main(argv=None) -> int:
    dflt = "(default: %(default)s)"
    p = Parser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--gpu", action="store_true", help="GPU mode (needs CUDA)")
    p.add_argument("--width", type=float, default=1.0, help=f"U-Net width multiplier {dflt}")
    p.add_argument("--batch", type=int, default=8, help=f"CPU batch {dflt}")
    p.add_argument("--steps", type=int, default=6, help=f"timed steps per measurement {dflt}")
    p.add_argument("--workers", type=int, default=1, help=f"DataLoader workers {dflt}")
    p.add_argument("--threads", type=int, default=1, help=f"torch intra-op threads (CPU) {dflt}")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="trainer-bench-") as tmp:
        if args.gpu:
            device = resolve_device("cuda", option="--gpu")
            torch.backends.cudnn.benchmark = True
            print(f"GPU: {torch.cuda.get_device_name(device)}, bf16 autocast, width {args.width}, "
                  f"{args.workers} loader workers")  # fmt: skip
            for batch in (95, 256):
                run(
                    "gpu", device, 128, batch, args.width, args.steps, args.workers, True, Path(tmp)
                )
            return 0
        torch.set_num_threads(args.threads)
        print(f"CPU: {args.threads} torch thread(s), {args.workers} loader worker(s), "
              f"width {args.width}, fp32")  # fmt: skip
        for size in (64, 128):
            run("cpu", torch.device("cpu"), size, args.batch, args.width, args.steps,
                args.workers, False, Path(tmp))  # fmt: skip
    return 0


if __name__ == "__main__":
    run_cli(main, PROG)
