"""Generator driver faults and scale, measured from outside with the real CLI (all on loopback).

    python benchmarks/generator_faults.py                 # both measurements, 3 repeats
    python benchmarks/generator_faults.py --shards 10000000 --repeats 1

Printed:
- dead address: seconds from starting `python -m generator --address 127.0.0.1:PORT` (nothing
  listens there) to its exit, its exit status and whether it wrote anything (goal: exit 2, one
  line, under 30 s, nothing written);
- queue memory: the driver's peak resident memory (VmRSS, MB) over the first `--watch`
  seconds of a run of `--shards` shards with one worker, against the same run with 8 shards
  (goal: the same, whatever --shards is).
Each figure is the median of `--repeats` runs.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from segcore.cli import run_cli
from segcore.options import Parser

PROG = "python benchmarks/generator_faults.py"
SMALL = ["--gan", "random", "--samples-per-shard", "4", "--batch-size", "16"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dead_address(folder: Path) -> tuple[float, int, int, bool]:
    """-> (seconds to exit, exit status, stderr lines, anything written)."""
    out = folder / "dead"
    cmd = [sys.executable, "-m", "generator", "--shards", "2", *SMALL, "--out", str(out)]
    cmd += ["--address", f"127.0.0.1:{_free_port()}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - t0
    return seconds, proc.returncode, len(proc.stderr.strip().splitlines()), out.exists()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def driver_peak_rss(folder: Path, shards: int, watch_s: float) -> float:
    """Peak VmRSS (MB) of the driver process over its first `watch_s` seconds; then stopped."""
    out = folder / f"run-{shards}-{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "generator", "--shards", str(shards), *SMALL]
    cmd += ["--workers", "1", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0.0
    deadline = time.monotonic() + watch_s
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            peak = max(peak, _rss_mb(proc.pid))
            time.sleep(0.2)
    finally:
        proc.terminate()  # the driver stops its own in-process Ray
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return peak


def main(argv=None) -> int:
    p = Parser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument(
        "--shards",
        type=int,
        default=10_000_000,
        help="shards of the large run (default: %(default)s)",
    )
    p.add_argument(
        "--watch",
        type=float,
        default=40.0,
        help="seconds each run is watched (default: %(default)s)",
    )
    p.add_argument("--repeats", type=int, default=3, help="runs per figure (default: %(default)s)")
    p.add_argument(
        "--only",
        choices=("all", "address", "memory"),
        default="all",
        help="what to measure (default: %(default)s)",
    )
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.only in ("all", "address"):
            dead = [dead_address(folder) for _ in range(args.repeats)]
            print(
                f"dead --address: exit {sorted({d[1] for d in dead})}, stderr lines "
                f"{sorted({d[2] for d in dead})}, wrote something {any(d[3] for d in dead)}, "
                f"{statistics.median(d[0] for d in dead):.1f} s to exit (median of "
                f"{args.repeats})"
            )
        if args.only in ("all", "memory"):
            for shards in (8, args.shards):
                peaks = [driver_peak_rss(folder, shards, args.watch) for _ in range(args.repeats)]
                print(
                    f"--shards {shards}: driver peak RSS {statistics.median(peaks):.0f} MB over "
                    f"the first {args.watch:.0f} s (median of {args.repeats}; runs "
                    f"{[round(x) for x in peaks]})"
                )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    run_cli(main, PROG)
