"""Trainer throughput: is the input pipeline ever the bottleneck?

First the loader's CPU cost: core-ms per 128 px sample (JPEG q95 + PNG mask, as the generator
writes them) of trainer/data.py's path in one process (tar read, decode, batch), with its parts
and the path it replaced (webdataset's tar reader, segcore's BGR decode + conversion, np.stack);
the samples/s one DataLoader worker sustains; from those, the workers per rank that the U-Net
step rate measured on an H200 (bf16, batch 95 and 256) needs, and what `--workers auto` gives on
8-GPU nodes. Then images/s of
  model   the training step alone (forward + backward + Adam) on tensors already in memory,
  loader  the input pipeline alone (trainer.data.ShardStream + DataLoader) over temp shards,
  both    the two together as in the training loop, with the data-wait fraction (time blocked
          on the loader / wall time);
and the goal check: loader >= 3x model, data-wait < 5% (measured numbers: docs/benchmarks.md).

CPU (default): loader cost, then 64 and 128 px, the paper's U-Net (width 1.0) at a small batch:
    python benchmarks/trainer_throughput.py
    python benchmarks/trainer_throughput.py --loader-only      # the loader cost alone
GPU (when CUDA is available): 128 px, batch 95 and 256, bf16 autocast, the card named:
    python benchmarks/trainer_throughput.py --gpu              # --workers auto, as the trainer
"""

from __future__ import annotations

import io
import math
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import webdataset as wds
from webdataset.tariterators import group_by_keys, tar_file_expander

from segcore import samples, schema
from segcore.cli import run_cli
from segcore.device import resolve_device
from segcore.options import Parser
from trainer import config, data
from trainer.unet import UNet, segmentation_loss
from trainer.validate import to_model_input

# The U-Net step rate on an H200, bf16 autocast, 128 px (docs/benchmarks.md): batch -> img/s.
H200_STEP_RATE = {95: 3126.0, 256: 3416.0}
# Loader workers needed: capacity of MARGIN x the step rate (jitter, a slower host core).
MARGIN = 1.5
NODE_CPUS = (96, 128, 192, 224)  # typical 8-GPU H100/H200 nodes


def write_shards(folder: Path, n_shards: int, per_shard: int, size: int) -> list[str]:
    """Shards as the generator writes them (segcore's encoders at JPEG q95 and PNG level 1, a
    TarWriter with fixed owner and mtime): GAN-like images (smooth noise + a brighter disk)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    urls = []
    for s in range(n_shards):
        path = folder / schema.shard_name(s)
        with open(path, "wb") as f:
            sink = wds.TarWriter(f, user="gan-objseg", group="gan-objseg", mtime=0.0)
            for i in range(per_shard):
                img = cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3), np.uint8), (5, 5), 0)
                mask = np.zeros((size, size), np.uint8)
                c, r = (
                    rng.integers(size // 4, 3 * size // 4, 2),
                    int(rng.integers(size // 8, size // 3)),
                )
                cv2.circle(mask, (int(c[0]), int(c[1])), r, 255, -1)
                img[mask > 0] = (img[mask > 0] // 2 + 100).astype(np.uint8)
                meta = {"shard": s, "sample": i}
                sink.write(samples.encode_sample(
                    schema.sample_key(s, i), img, mask > 0, meta, jpeg_quality=95,
                    png_compression=1,
                ))  # fmt: skip
            sink.close()
        urls.append(str(path))
    return urls


def cpu_ms(fn, repeats: int) -> float:
    """Median process CPU time of fn() in ms per item (fn returns its item count)."""
    runs = []
    for _ in range(repeats):
        t = time.process_time()
        n = fn()
        runs.append((time.process_time() - t) * 1e3 / n)
    return statistics.median(runs)


def webdataset_samples(url: str):
    """webdataset's tar reader (tar_file_expander + group_by_keys), as the loader used it."""
    with open(url, "rb") as f:
        stream = [{"url": url, "stream": io.BytesIO(f.read())}]
    return group_by_keys(tar_file_expander(stream))


def previous_path(urls, batch: int) -> int:
    """The loader's former path: webdataset's tar reader, segcore's decode, np.stack."""
    n, images, masks = 0, [], []
    for url in urls:
        for raw in webdataset_samples(url):
            img, mask = samples.decode_sample(raw)
            images.append(img)
            masks.append(mask)
            if len(images) == batch:
                torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(masks))
                n += batch
                images, masks = [], []
    return n


def loader_cost(urls, batch: int, size: int, repeats: int) -> dict:
    """Core-ms per sample of the loader path in this process, and of its parts."""
    counter = data.ErrorCounter()
    raws = [r for u in urls for r in data.iter_shard(u, counter)]
    n = len(raws) // batch
    spec = data.StreamSpec(tuple(urls), 0, 0, batch, size, 0.05)

    def stream() -> int:
        return sum(len(b["image"]) for b in data.ShardStream(spec, total=n, n_workers=1))

    return {
        "tar read": cpu_ms(
            lambda: sum(1 for u in urls for _ in data.iter_shard(u, counter)), repeats
        ),
        "decode": cpu_ms(
            lambda: [data.decode_sample(r, size) for r in raws] and len(raws), repeats
        ),
        "loader path": cpu_ms(stream, repeats),
        "previous tar read": cpu_ms(
            lambda: sum(1 for u in urls for _ in webdataset_samples(u)), repeats
        ),
        "previous path": cpu_ms(lambda: previous_path(urls, batch), repeats),
    }


def worker_cost(urls, batch: int, size: int, n_batches: int) -> tuple[float, float, float]:
    """(worker core-ms/sample, main-process core-ms/sample, wall samples/s) of a DataLoader with
    one worker. The worker's CPU time is read from the reaped children's rusage, so it does
    not depend on what else shares the cores."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = children.ru_utime + children.ru_stime
    main, wall = time.process_time(), time.perf_counter()
    n = sum(len(b["image"]) for b in make_loader(urls, batch, size, n_batches, 1))
    main, wall = time.process_time() - main, time.perf_counter() - wall
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the worker has exited: reaped
    worker = children.ru_utime + children.ru_stime - before
    return worker * 1e3 / n, main * 1e3 / n, n / wall


def report_loader(folder: Path, workers: int, repeats: int) -> None:
    cv2.setNumThreads(1)  # as in the loader's workers
    urls = write_shards(folder / "cost", n_shards=4, per_shard=256, size=128)
    size_kb = Path(urls[0]).stat().st_size / 256 / 1024
    cost = loader_cost(urls, 95, 128, repeats)
    print(f"loader cost, 128 px samples ({size_kb:.1f} KB each in the tar), one process, "
          f"median of {repeats}:")  # fmt: skip
    for name, ms in cost.items():
        print(f"  {name:>14}: {ms:6.3f} core-ms/sample  ({1e3 / ms:7,.0f} samples/s per core)")
    runs = [worker_cost(urls, 95, 128, n_batches=40) for _ in range(3)]
    worker_ms, main_ms, wall = (statistics.median(r[k] for r in runs) for k in range(3))
    per_worker = 1e3 / worker_ms
    print(f"one DataLoader worker: {worker_ms:.3f} core-ms/sample in the worker (start-up "
          f"included), {main_ms:.3f} in the main process; it sustains {per_worker:,.0f} "
          f"samples/s on a core of its own ({wall:,.0f}/s wall-clock here, cores shared; "
          "median of 3)")  # fmt: skip
    for batch, rate in H200_STEP_RATE.items():
        need = math.ceil(rate / per_worker)
        margin = math.ceil(MARGIN * rate / per_worker)
        print(f"  H200 step at batch {batch} ({rate:,.0f} img/s): {need} worker(s) per rank to "
              f"keep up, {margin} for a {MARGIN}x margin (data-wait < 5%)")  # fmt: skip
    want = math.ceil(MARGIN * max(H200_STEP_RATE.values()) / per_worker)
    for cpus in NODE_CPUS:
        auto = config.auto_workers(True, cpus, 8, 8)
        print(
            f"  --workers auto on an 8-GPU node with {cpus} CPUs: {auto} per rank -> "
            f"{auto * per_worker:,.0f} samples/s ({'enough' if auto >= want else 'NOT enough'})"
        )
    if workers:
        print(f"(this run's loader columns below use {workers} worker(s))")


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
    p.add_argument(
        "--workers",
        type=config.workers_option,
        default=None,
        help="DataLoader workers, or auto as the trainer resolves it (default: auto)",
    )
    p.add_argument("--threads", type=int, default=1, help=f"torch intra-op threads (CPU) {dflt}")
    p.add_argument("--loader-only", action="store_true", help="only the loader cost (CPU)")
    p.add_argument("--repeats", type=int, default=5, help=f"loader cost repeats {dflt}")
    args = p.parse_args(argv)
    workers = args.workers
    if workers is None:
        gpus = torch.cuda.device_count() if args.gpu else 0
        workers = config.auto_workers(args.gpu, config.usable_cpus(), 1, gpus)
    with tempfile.TemporaryDirectory(prefix="trainer-bench-") as tmp:
        if args.gpu:
            device = resolve_device("cuda", option="--gpu")
            torch.backends.cudnn.benchmark = True
            print(f"GPU: {torch.cuda.get_device_name(device)}, bf16 autocast, width {args.width}, "
                  f"{workers} loader workers")  # fmt: skip
            for batch in (95, 256):
                run("gpu", device, 128, batch, args.width, args.steps, workers, True, Path(tmp))
            return 0
        torch.set_num_threads(args.threads)
        report_loader(Path(tmp), 0 if args.loader_only else workers, args.repeats)
        if args.loader_only:
            return 0
        print(f"CPU: {args.threads} torch thread(s), {workers} loader worker(s), "
              f"width {args.width}, fp32")  # fmt: skip
        for size in (64, 128):
            run("cpu", torch.device("cpu"), size, args.batch, args.width, args.steps,
                workers, False, Path(tmp))  # fmt: skip
    return 0


if __name__ == "__main__":
    run_cli(main, PROG)
