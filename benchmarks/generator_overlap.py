"""Does the generator keep up with its GAN? CPU work per kept sample, the pipeline's CPU
capacity, and the end-to-end rate against a GAN stand-in of a set speed, all on the CPU.

    python benchmarks/generator_overlap.py                    # 128 px, this machine's CPUs
    python benchmarks/generator_overlap.py --cpus-per-worker 4 --fractions 0.5,0.7

The GAN is `generator.gans.standin` (a benchmark stand-in, not a user-facing backend): a call
lasts `wait_ms` with the GIL released, as a CUDA synchronisation does, and returns fixed images
whose masks are realistic and pass the filters. One actor's work runs in-process exactly as the
Ray actor runs it (`ShardActor`, `ACTOR_CONCURRENCY` shards at once sharing the GAN and an
encoder pool of `--cpus-per-worker` threads), without Ray's RPC around it.

Printed:
- CPU core-ms per kept sample: all the work that is not the GAN (process CPU time, every
  thread, minus the stand-in's own), with an instant stand-in;
- capacity: kept samples/s with an instant stand-in;
- for stand-in rates of 10% to 90% of the capacity: the end-to-end rate / the stand-in's rate.
Goals: end-to-end >= 90% of the stand-in's rate at every rate up to 70% of the capacity, and
<= 0.6 core-ms per kept sample. Each figure is the median of `--repeats` runs.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import torch

from generator.ray_runner import ACTOR_CONCURRENCY, ShardActor
from generator.run import resolve_config
from segcore.cli import UsageError, run_cli
from segcore.options import Parser

PROG = "python benchmarks/generator_overlap.py"
STANDIN = "generator.gans.standin:build"
STAGES = ("latents", "masks", "filters", "to_uint8", "accept", "encode", "tar_upload")
CPU_PARTS = ("stages_cpu", "encode_cpu")


def make_actor(args, wait_ms: float) -> ShardActor:
    config, _ = resolve_config(
        shards=args.shards + 1,
        gan_name=STANDIN,
        weights=f"wait_ms={wait_ms},resolution={args.resolution}",
        direction_file=None,
        shift=None,
        latents="prior",
        samples_per_shard=args.samples,
        batch_size=args.batch_size,
    )
    return ShardActor(config, None, use_gpu=False, cpus_per_worker=args.cpus_per_worker)


def run(args, wait_ms: float) -> dict:
    """One timed run of `args.shards` shards after one warm-up shard."""
    actor = make_actor(args, wait_ms)
    maker, gan = actor.maker, actor.maker.gan
    out = tempfile.mkdtemp(prefix="gen-overlap-")
    actor.make_shard(args.shards, out)  # warm-up, not timed
    maker.timers.clear()
    gan_cpu0, cpu0, t0 = gan.cpu_seconds, time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(ACTOR_CONCURRENCY) as calls:  # the threaded actor's calls
        records = list(calls.map(lambda i: actor.make_shard(i, out), range(args.shards)))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0 - (gan.cpu_seconds - gan_cpu0)
    kept = sum(r["count"] for r in records)
    draws = sum(r["attempts"] for r in records)
    return {
        "kept_per_s": kept / wall,
        "core_ms": cpu * 1000 / kept,
        "acceptance": kept / draws,
        "stages": {k: maker.timers.get(k, 0.0) * 1000 / kept for k in STAGES + CPU_PARTS},
    }


def median_run(args, wait_ms: float) -> dict:
    runs = [run(args, wait_ms) for _ in range(args.repeats)]
    best = sorted(runs, key=lambda r: r["kept_per_s"])[len(runs) // 2]
    return {
        **best,
        "kept_per_s": statistics.median(r["kept_per_s"] for r in runs),
        "core_ms": statistics.median(r["core_ms"] for r in runs),
    }


def main(argv=None) -> int:
    dflt = "(default: %(default)s)"
    p = Parser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--resolution", type=int, default=128, help=f"image size {dflt}")
    p.add_argument("--samples", type=int, default=256, help=f"samples per shard {dflt}")
    p.add_argument("--shards", type=int, default=6, help=f"timed shards per run {dflt}")
    p.add_argument("--batch-size", type=int, default=64, help=f"latents per GAN call {dflt}")
    p.add_argument(
        "--cpus-per-worker",
        type=int,
        default=os.cpu_count() or 1,
        help=f"the actor's CPUs: its encoder pool (default: this machine's CPUs, {os.cpu_count()})",
    )
    p.add_argument(
        "--fractions", default="0.1,0.3,0.5,0.7,0.9", help=f"stand-in rates / capacity {dflt}"
    )
    p.add_argument("--repeats", type=int, default=3, help=f"runs per figure (median) {dflt}")
    p.add_argument(
        "--helper-threads",
        type=int,
        default=None,
        help="threads of torch's and OpenCV's own pools in this process, which run the CPU "
        "stages' big operations in parallel (default: their defaults)",
    )
    args = p.parse_args(argv)
    if min(args.samples, args.shards, args.batch_size, args.repeats, args.cpus_per_worker) < 1:
        raise UsageError("--samples, --shards, --batch-size, --repeats, --cpus-per-worker: >= 1")
    fractions = [float(f) for f in args.fractions.split(",")]
    if args.helper_threads is not None:
        if args.helper_threads < 1:
            raise UsageError(f"--helper-threads must be >= 1, got {args.helper_threads}")
        torch.set_num_threads(args.helper_threads)
        cv2.setNumThreads(args.helper_threads)
    print(
        f"{args.resolution}px, {args.shards} shards x {args.samples} samples, batch "
        f"{args.batch_size}, {args.cpus_per_worker} encoder threads, {ACTOR_CONCURRENCY} shards "
        f"at once, torch threads {torch.get_num_threads()}, OpenCV threads "
        f"{cv2.getNumThreads()}, {os.cpu_count()} CPUs, "
        f"median of {args.repeats}"
    )
    base = median_run(args, 0.0)
    capacity = base["kept_per_s"]
    wall = ", ".join(f"{k} {base['stages'][k]:.3f}" for k in STAGES)
    device_side, encode = (base["stages"][k] for k in CPU_PARTS)
    print(f"CPU work per kept sample: {base['core_ms']:.3f} core-ms (goal <= 0.6)")
    print(
        f"    of which the device stages (masks, components, size, histogram, uint8; on a GPU "
        f"they run there): {device_side:.3f}, JPEG + PNG encoding: {encode:.3f}, the rest "
        f"(tar, threads, Python): {base['core_ms'] - device_side - encode:.3f}"
    )
    print(f"    wall ms per kept sample by stage, summed over threads: {wall}")
    print(
        f"capacity (instant stand-in): {capacity:.0f} kept samples/s "
        f"(acceptance {base['acceptance']:.1%})"
    )
    print("| stand-in rate | of capacity | end-to-end | end-to-end / stand-in |")
    print("|---|---|---|---|")
    for f in fractions:
        # the stand-in's rate in kept samples/s: batch_size draws per call, at the acceptance
        wait_ms = args.batch_size * base["acceptance"] / (f * capacity) * 1000
        standin = args.batch_size * base["acceptance"] / (wait_ms / 1000)
        got = median_run(args, wait_ms)["kept_per_s"]
        print(f"| {standin:.0f}/s | {f:.0%} | {got:.0f}/s | {got / standin:.2f} |")
    return 0


if __name__ == "__main__":
    run_cli(main, PROG)
