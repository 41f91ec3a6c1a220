"""One GPU check of the whole GPU path; prints ONE JSON object on stdout (progress on stderr).

    bash scripts/gpu_check.sh                       # a CUDA machine, the project installed
    GPU_CHECK_SMOKE=1 bash scripts/gpu_check.sh     # CPU smoke run: tiny sizes, a narrow port

Phases, each time-boxed so that the whole stays under 8 minutes; a phase that fails or runs
out of time records its error (and what it measured before) and the others still run:
  port       benchmarks/bigbigan_speed.py on the random-weights file: masks/s of the BigBiGAN
             port, bf16 autocast + torch.compile, batch 256 images per forward
  generator  python -m generator --gan bigbigan --weights FILE --direction DIR.npy, one GPU
             actor, local output: kept samples/s after warm-up (the shards that finish after
             the first one, timed by their manifest records), acceptance
  ratio      (kept samples/s / acceptance) / port masks/s: the share of the port's rate the
             whole generator reaches (goal >= 0.85)
  trainer    python -m trainer on those shards with the default --workers (auto), bf16: img/s
             and data-wait at batch 95 and 256 after the first logging interval (goal < 5%)
The weights file is random (speed does not depend on the values) in the port's checkpoint
layout (generator/gans/bigbigan_torch.py), as `python -m generator.convert` writes one.
Environment: GPU_CHECK_SMOKE=1, GPU_CHECK_WORK=DIR (kept; default a temp dir, removed),
GPU_CHECK_TOTAL_S (default 420: with the grace given to stopped phases, under 8 minutes). Manual: docs/benchmarks.md#gpu-check.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from generator.gans.bigbigan_torch import BigGANConfig, BigGANGenerator, random_init
from segcore import schema

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GOAL_RATIO = 0.85
GOAL_DATA_WAIT = 0.05


@dataclass(frozen=True)
class Sizes:
    """What each phase runs, and its time box in seconds."""

    device: str
    channels: int  # the port's width (96: BigBiGAN)
    port_args: tuple[str, ...]
    port_s: float
    gen_args: tuple[str, ...]
    gen_env: dict = field(default_factory=dict)
    gen_s: float = 170
    train_batches: tuple[int, ...] = (95, 256)
    train_steps: tuple[int, ...] = (600, 300)
    train_log_every: tuple[int, ...] = (50, 25)
    train_args: tuple[str, ...] = ()
    train_s: float = 70


GPU = Sizes(
    device="cuda",
    channels=96,
    port_args=("--batch-sizes", "256", "--modes", "bf16-compiled", "--iters", "20"),
    port_s=100,
    gen_args=("--shards", "24", "--samples-per-shard", "1500", "--batch-size", "128"),
    gen_env={"BIGBIGAN_PRECISION": "bf16", "BIGBIGAN_COMPILE": "1"},
)
SMOKE = Sizes(
    device="cpu",
    channels=8,
    port_args=("--batch-sizes", "2", "--modes", "fp32", "--iters", "1", "--warmup", "1"),
    port_s=60,
    gen_args=("--shards", "3", "--samples-per-shard", "8", "--batch-size", "4"),
    gen_s=120,
    train_batches=(4, 8),
    train_steps=(4, 4),
    train_log_every=(2, 2),
    train_args=("--width", "0.125", "--amp", "off"),
    train_s=90,
)


def log(msg: str) -> None:
    print(f"gpu_check: {msg}", file=sys.stderr, flush=True)


def random_weights(path: Path, channels: int, seed: int = 0) -> None:
    """A random BigGAN-128 generator checkpoint in the port's layout (no `sv0`, like the
    authors' converter), initialised as the port's own random-weights mode does."""
    model = BigGANGenerator(BigGANConfig(ch=channels))
    random_init(model, seed)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith(".sv0")}
    torch.save(state, path)


def random_direction(path: Path, dim: int, seed: int = 0) -> None:
    vec = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    np.save(path, vec / np.linalg.norm(vec))


class Clock:
    """The overall deadline: each phase gets its box, but leaves 50 s to each later one."""

    def __init__(self, total_s: float):
        self.start = time.monotonic()
        self.deadline = self.start + total_s

    def box(self, want: float, later: int) -> float:
        left = self.deadline - time.monotonic() - 50 * later
        return max(10.0, min(want, left))

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def run(cmd: list[str], logfile: Path, timeout: float, env: dict | None = None, on_tick=None):
    """(exit code or None when timed out, seconds). Output goes to `logfile`; the command runs
    in its own session so a timeout ends it with all its children."""
    t = time.monotonic()
    with open(logfile, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
            start_new_session=True,
        )  # fmt: skip
        while proc.poll() is None:
            if on_tick is not None:
                on_tick()
            if time.monotonic() - t > timeout:
                stop(proc)
                return None, time.monotonic() - t
            time.sleep(0.5)
    return proc.returncode, time.monotonic() - t


def stop(proc: subprocess.Popen) -> None:
    """End a timed-out command's session: SIGTERM (Ray's driver then stops its processes),
    SIGKILL after 10 s."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def failure(code, seconds: float, logfile: Path) -> str:
    tail = logfile.read_text(errors="replace").strip().splitlines()[-3:]
    what = f"timed out after {seconds:.0f} s" if code is None else f"exit {code}"
    return f"{what}: {' | '.join(tail)[-400:]}"


def port_phase(sizes: Sizes, weights: Path, work: Path, timeout: float) -> dict:
    out = {"masks_per_s": None, "batch": None, "mode": None, "channels": sizes.channels}
    logfile = work / "port.log"
    cmd = [sys.executable, str(HERE / "bigbigan_speed.py"), "--device", sizes.device,
           "--weights", str(weights), "--json", *sizes.port_args]  # fmt: skip
    code, seconds = run(cmd, logfile, timeout)
    out["seconds"] = round(seconds, 1)
    if code != 0:
        return {**out, "error": failure(code, seconds, logfile)}
    lines = [x for x in logfile.read_text().splitlines() if x.startswith("{")]
    result = json.loads(lines[-1])["results"][-1]
    return {**out, "masks_per_s": result["masks_per_s"], "batch": result["batch"],
            "mode": result["mode"], "error": None}  # fmt: skip


def generator_phase(sizes: Sizes, weights: Path, work: Path, timeout: float) -> dict:
    out_dir = work / "gen"
    manifest = out_dir / schema.MANIFEST_DIR
    direction = work / "direction.npy"
    random_direction(direction, BigGANConfig().dim_z)
    seen: dict[str, float] = {}  # record name -> time it was written

    def tick():
        if manifest.is_dir():
            for entry in os.scandir(manifest):
                if entry.name.endswith(".json") and entry.name not in seen:
                    seen[entry.name] = entry.stat().st_mtime

    cmd = [sys.executable, "-m", "generator", "--gan", "bigbigan", "--weights", str(weights),
           "--direction", str(direction), "--out", str(out_dir), "--device", sizes.device,
           "--workers", "1", *sizes.gen_args]  # fmt: skip
    logfile = work / "generator.log"
    code, seconds = run(cmd, logfile, timeout, env=sizes.gen_env, on_tick=tick)
    tick()
    records = sorted(
        (seen[n], json.loads((manifest / n).read_text())) for n in seen if (manifest / n).exists()
    )
    out = {"kept_per_s": None, "draws_per_s": None, "acceptance": None, "shards": len(records),
           "samples": sum(r["count"] for _, r in records), "warmup_excluded": None,
           "seconds": round(seconds, 1), "error": None}  # fmt: skip
    if code != 0:
        out["error"] = failure(code, seconds, logfile)
    if records:
        kept = sum(r["count"] for _, r in records)
        out["acceptance"] = kept / max(1, sum(r["attempts"] for _, r in records))
        if len(records) >= 3:  # steady state: the shards finished after the first one
            span = records[-1][0] - records[0][0]
            rate = sum(r["count"] for _, r in records[1:]) / max(span, 1e-9)
            out["warmup_excluded"] = True
        else:
            rate = kept / seconds
            out["warmup_excluded"] = False
        out["kept_per_s"] = rate
        out["draws_per_s"] = rate / max(out["acceptance"], 1e-9)
    return out


def trainer_phase(sizes: Sizes, shards: str, work: Path, batch: int, steps: int, every: int,
                  timeout: float) -> dict:  # fmt: skip
    out_dir = work / f"train-{batch}"
    shutil.rmtree(out_dir, ignore_errors=True)
    cmd = [sys.executable, "-m", "trainer", "--shards", shards, "--out", str(out_dir),
           "--batch-size", str(batch), "--steps", str(steps), "--log-every", str(every),
           "--val-shards", "none", "--val-every", str(steps), "--ckpt-every", str(steps),
           "--device", sizes.device, *sizes.train_args]  # fmt: skip
    logfile = work / f"trainer-{batch}.log"
    if not (work / "gen" / schema.shard_name(0)).exists():
        return {"batch": batch, "steps": steps, "error": "no shards from the generator phase"}
    code, seconds = run(cmd, logfile, timeout)
    out = {"batch": batch, "images_per_s": None, "data_wait_frac": None, "workers": None,
           "steps": steps, "seconds": round(seconds, 1), "error": None}  # fmt: skip
    if (out_dir / "config.json").exists():
        out["workers"] = json.loads((out_dir / "config.json").read_text())["config"]["workers"]
    book = out_dir / "log.jsonl"
    records = []
    if book.exists():
        records = [r for r in map(json.loads, book.read_text().splitlines()) if "loss" in r]
    timed = records[1:]  # the first interval holds the warm-up (workers, cudnn autotuning)
    if timed:
        out["images_per_s"] = sum(r["images_per_s"] for r in timed) / len(timed)
        out["data_wait_frac"] = sum(r["data_wait_frac"] for r in timed) / len(timed)
    if code != 0:
        out["error"] = failure(code, seconds, logfile)
    elif not timed:
        out["error"] = f"no timed logging interval in {book}"
    return out


PORT_FIELDS = dict.fromkeys(("masks_per_s", "batch", "mode", "channels", "seconds", "error"))
GENERATOR_FIELDS = dict.fromkeys(("kept_per_s", "draws_per_s", "acceptance", "shards", "samples",
                                  "warmup_excluded", "seconds", "error"))  # fmt: skip
TRAINER_FIELDS = dict.fromkeys(("batch", "images_per_s", "data_wait_frac", "workers", "steps",
                                "seconds", "error"))  # fmt: skip


def guard(name: str, fields: dict, phase, *args) -> dict:
    """Run one phase; an exception becomes its `error` (the other fields None), so the
    remaining phases still run and the JSON always has every field."""
    log(f"{name} ...")
    try:
        result = {**fields, **phase(*args)}
    except Exception as err:  # any failure of a phase is reported in the JSON, not raised
        result = {**fields, "error": f"{type(err).__name__}: {err}"[:400]}
    log(f"{name}: {result}")
    return result


def machine() -> dict:
    cuda = torch.cuda.is_available()
    return {
        "card": torch.cuda.get_device_name(0) if cuda else None,
        "gpus": torch.cuda.device_count() if cuda else 0,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "cpus": len(os.sched_getaffinity(0)),
    }


def main() -> int:
    smoke = os.environ.get("GPU_CHECK_SMOKE", "0") not in ("", "0")
    sizes = SMOKE if smoke else GPU
    clock = Clock(float(os.environ.get("GPU_CHECK_TOTAL_S", "420")))
    report: dict = {"smoke": smoke, "device": sizes.device, **machine(), "error": None}
    if not smoke and not torch.cuda.is_available():
        report["error"] = "no CUDA device (GPU_CHECK_SMOKE=1 runs the CPU smoke check)"
    keep = "GPU_CHECK_WORK" in os.environ
    work = Path(os.environ.get("GPU_CHECK_WORK") or tempfile.mkdtemp(prefix="gpu_check-"))
    work.mkdir(parents=True, exist_ok=True)
    weights = work / f"bigbigan_random_ch{sizes.channels}.pth"
    not_run = {"error": "not run"}
    report.update(port={**PORT_FIELDS, **not_run}, generator={**GENERATOR_FIELDS, **not_run},
                  ratio=None, trainer=[{**TRAINER_FIELDS, **not_run, "batch": b}
                                       for b in sizes.train_batches])  # fmt: skip
    try:
        random_weights(weights, sizes.channels)
        report["port"] = guard("port", PORT_FIELDS, port_phase, sizes, weights, work,
                               clock.box(sizes.port_s, 3))  # fmt: skip
        report["generator"] = guard("generator", GENERATOR_FIELDS, generator_phase, sizes,
                                    weights, work, clock.box(sizes.gen_s, 2))  # fmt: skip
        draws, port = report["generator"]["draws_per_s"], report["port"]["masks_per_s"]
        report["ratio"] = draws / port if draws and port else None
        n_shards = report["generator"]["shards"] or 0
        shards = schema.shard_brace_pattern(str(work / "gen"), 0, max(0, n_shards - 1))
        plan = list(zip(sizes.train_batches, sizes.train_steps, sizes.train_log_every, strict=True))
        for i, (batch, steps, every) in enumerate(plan):
            box = clock.box(sizes.train_s, len(plan) - 1 - i)
            report["trainer"][i] = guard(f"trainer batch {batch}", {**TRAINER_FIELDS,
                "batch": batch}, trainer_phase, sizes, shards, work, batch, steps, every, box)  # fmt: skip
    except Exception as err:  # reported in the JSON: the one output of this script
        report["error"] = f"{type(err).__name__}: {err}"[:400]
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    waits = [t["data_wait_frac"] for t in report["trainer"]]
    report["goals"] = {
        "generator_ratio_ge_0.85": None if report["ratio"] is None else report["ratio"] >= GOAL_RATIO,
        "trainer_data_wait_lt_0.05": None if None in waits else max(waits) < GOAL_DATA_WAIT,
    }  # fmt: skip
    report["elapsed_s"] = round(clock.elapsed(), 1)
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
