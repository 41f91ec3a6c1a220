"""Trainer restarts under `torchrun --max-restarts`: SIGKILL a rank mid-run; does the run detect
it, restart, continue from its last checkpoint and end with the weights of an uninterrupted run?

Each trial: 2 processes on loopback (gloo), tiny settings (32 px, width 0.125, batch 8, no loader
workers, a checkpoint every 4 steps), the command

    torchrun --standalone --nproc_per_node 2 --max-restarts 1 -m trainer <options>

and, once rank 0 has logged step K (K varies by trial), SIGKILL of rank 1. The table: finished
(exit 0), bit-identical (final weights equal to an uninterrupted run's), failed (with the cause
found in stderr), hung (no exit within --hang-after s), time to detect (the kill until the
surviving rank is gone) and time to finish. After a failed trial the same command is run again
as it was (the recovery path) and its weights are compared too.

--gloo runs the same kill against a gloo-only worker (this file, --gloo-worker: join the group,
allreduce in a loop, rank 1 SIGKILLs itself on the first attempt and, on the restart, joins 2 s
after rank 0, as a trainer rank that reads its checkpoint first may), twice: through torch's
env:// store, which under torchrun is the agent's store shared by every attempt, and through a
store prefixed with the attempt number (what trainer/distributed.py does).

    python benchmarks/trainer_restarts.py --trials 10
    python benchmarks/trainer_restarts.py --stop --trials 3     # a hung peer: the timeout
    python benchmarks/trainer_restarts.py --gloo --trials 10
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import webdataset as wds

from segcore import samples, schema
from segcore.cli import run_cli
from segcore.options import Parser

REPO = Path(__file__).resolve().parents[1]
CAUSES = (
    ("connectFullMesh", "gloo connectFullMesh"),
    ("Connection reset by peer", "gloo connection reset"),
    ("Connection refused", "connection refused"),
    ("Connection closed by peer", "gloo connection closed"),
    ("imed out", "timeout"),
)


def write_shards(folder: Path, n_shards: int = 4, per_shard: int = 16, size: int = 32) -> str:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(n_shards):
        with open(folder / schema.shard_name(s), "wb") as f:
            sink = wds.TarWriter(f, user="gan-objseg", group="gan-objseg", mtime=0.0)
            for i in range(per_shard):
                img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
                mask = np.zeros((size, size), np.uint8)
                y, x = rng.integers(0, size // 2, 2)
                img[y : y + size // 2, x : x + size // 2] = 200
                mask[y : y + size // 2, x : x + size // 2] = 255
                meta = {"shard": s, "sample": i}
                sink.write(samples.encode_sample(
                    schema.sample_key(s, i), img, mask > 0, meta, jpeg_quality=95,
                    png_compression=1,
                ))  # fmt: skip
            sink.close()
    return schema.shard_brace_pattern(str(folder), 0, n_shards - 1)


def trainer_command(
    pattern: str, out: Path, steps: int, restarts: int, timeout_s: float = 60
) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        f"--max-restarts={restarts}", "-m", "trainer", "--shards", pattern, "--out", str(out),
        "--width", "0.125", "--resolution", "32", "--batch-size", "8", "--workers", "0",
        "--threads", "1", "--steps", str(steps), "--ckpt-every", "4", "--log-every", "1",
        "--val-every", "1000", "--collective-timeout", str(timeout_s),
    ]  # fmt: skip


def gloo_command(restarts: int, store: str) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        f"--max-restarts={restarts}", str(Path(__file__).resolve()), "--gloo-worker", store,
    ]  # fmt: skip


def env() -> dict:
    return {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}


def rank_pids(parent: int) -> dict[int, int]:
    """{rank: pid} of the worker processes under the torchrun process `parent`."""
    out: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != parent:
                continue
            environ = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue  # the process ended while it was read
        for item in environ:
            if item.startswith(b"RANK="):
                out[int(item[5:])] = int(proc.name)
    return out


def logged_step(out: Path) -> int:
    try:
        lines = (out / "log.jsonl").read_text().splitlines()
    except OSError:
        return 0
    steps = [json.loads(x).get("step", 0) for x in lines if x.strip()]
    return max(steps, default=0)


def final_weights(out: Path) -> dict | None:
    path = out / "checkpoint.pt"
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def same(a: dict | None, b: dict | None) -> bool:
    return a is not None and b is not None and all(torch.equal(a[k], b[k]) for k in a)


def cause(stderr: str) -> str:
    return next((name for key, name in CAUSES if key in stderr), "other")


def run_trial(cmd: list[str], kill_when, hang_after: float, sig=signal.SIGKILL) -> dict:
    """Start `cmd`, send rank 1 `sig` once `kill_when()` is true, wait for the end."""
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    result = {"killed": False, "detect_s": None, "hung": False}
    t_kill = None
    start = time.monotonic()
    while proc.poll() is None and time.monotonic() - start < hang_after:
        pids = rank_pids(proc.pid)
        if not result["killed"] and 1 in pids and kill_when():
            old = set(pids.values())
            os.kill(pids[1], sig)
            t_kill, result["killed"] = time.monotonic(), True
        gone = t_kill is not None and not old & set(rank_pids(proc.pid).values())
        if gone and result["detect_s"] is None:
            result["detect_s"] = time.monotonic() - t_kill
        time.sleep(0.05)
    if proc.poll() is None:
        result["hung"] = True
        os.killpg(proc.pid, signal.SIGKILL)
    stderr = proc.communicate()[1]
    result.update(rc=proc.returncode, stderr=stderr)
    result["finish_s"] = time.monotonic() - t_kill if t_kill is not None else None
    return result


def gloo_worker(store_kind: str) -> int:
    """Under torchrun: join a gloo group, allreduce in a loop; on the first attempt rank 1
    SIGKILLs itself mid-loop, on a restart it joins 2 s late. Exit 0 when an attempt's
    allreduces all completed. store_kind: "env" (torch's env://, the agent's store as it is) or
    "attempt" (that store under a prefix per attempt)."""
    from datetime import timedelta

    import torch.distributed as dist

    rank, attempt = int(os.environ["RANK"]), int(os.environ["TORCHELASTIC_RESTART_COUNT"])
    if attempt > 0 and rank == 1:
        time.sleep(2.0)
    timeout = timedelta(seconds=60)
    kwargs: dict = {}
    if store_kind == "attempt":
        world = int(os.environ["WORLD_SIZE"])
        agent = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world,
                              is_master=False, timeout=timeout)  # fmt: skip
        kwargs = {"store": dist.PrefixStore(f"attempt_{attempt}", agent), "rank": rank,
                  "world_size": world}  # fmt: skip
    dist.init_process_group("gloo", timeout=timeout, **kwargs)
    x = torch.ones(1000)
    for i in range(150):
        if attempt == 0 and rank == 1 and i == 50:
            os.kill(os.getpid(), signal.SIGKILL)
        dist.all_reduce(x)
        time.sleep(0.01)
    dist.barrier()
    dist.destroy_process_group()
    return 0


def number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summarize(rows: list[dict], title: str) -> None:
    print(f"\n{title}")
    head = ("trial", "kill@", "rc", "finished", "bit-identical", "hung", "detect_s", "finish_s",
            "cause", "rerun")  # fmt: skip
    widths = (5, 5, 3, 8, 13, 5, 8, 8, 22, 0)
    print("  ".join(f"{c:>{w}}" for c, w in zip(head, widths, strict=True)))
    for r in rows:
        cells = [r["trial"], r["kill_at"], r["rc"], r["rc"] == 0, r.get("identical", "-"),
                 r["hung"], number(r["detect_s"], 2), number(r["finish_s"], 1), r["cause"],
                 r.get("rerun", "-")]  # fmt: skip
        widths = (5, 5, 3, 8, 13, 5, 8, 8, 22, 0)
        print("  ".join(f"{c!s:>{w}}" for c, w in zip(cells, widths, strict=True)))
    detect = [r["detect_s"] for r in rows if r["detect_s"] is not None]
    n = len(rows)
    timing = (
        f", detect median {statistics.median(detect):.2f} s (max {max(detect):.2f} s)"
        if detect
        else ""
    )
    compared = any("identical" in r for r in rows)
    identical = f"bit-identical {sum(bool(r.get('identical')) for r in rows)}, " if compared else ""
    print(
        f"trials {n}: finished {sum(r['rc'] == 0 for r in rows)}, {identical}"
        f"failed {sum(r['rc'] != 0 and not r['hung'] for r in rows)}, "
        f"hung {sum(r['hung'] for r in rows)}{timing}"
    )
    reruns = [r for r in rows if "rerun" in r]
    if reruns:
        ok = sum(r["rerun"] == "bit-identical" for r in reruns)
        print(f"plain reruns after a failure: {len(reruns)}, bit-identical {ok}")


def main(argv=None) -> int:
    p = Parser(prog="python benchmarks/trainer_restarts.py", description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=10, help="kill trials (default: %(default)s)")
    p.add_argument("--steps", type=int, default=40, help="training steps (default: %(default)s)")
    p.add_argument("--hang-after", type=float, default=300.0,
                   help="seconds after which a trial counts as hung (default: %(default)s)")  # fmt: skip
    p.add_argument("--gloo", action="store_true", help="the gloo-only worker (default: off)")
    p.add_argument("--stop", action="store_true",
                   help="SIGSTOP rank 1 instead (a peer that hangs without closing its "
                   "connections, as a lost node), --collective-timeout 20 (default: off)")  # fmt: skip
    p.add_argument("--gloo-worker", choices=("env", "attempt"), default=None,
                   help="internal: be that worker, with that store (default: none)")  # fmt: skip
    args = p.parse_args(argv)
    if args.gloo_worker:
        return gloo_worker(args.gloo_worker)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="trainer-restarts-") as tmp:
        tmp = Path(tmp)
        if args.gloo:
            for store in ("env", "attempt"):
                rows = []
                for t in range(args.trials):
                    r = run_trial(gloo_command(1, store), lambda: False, args.hang_after)
                    rows.append({**r, "trial": t, "kill_at": "self", "cause": cause(r["stderr"])
                                 if r["rc"] else "-"})  # fmt: skip
                summarize(rows, f"gloo-only worker, --max-restarts 1, store: {store}")
            return 0
        pattern = write_shards(tmp / "shards")
        ref_out = tmp / "reference"
        ref = subprocess.run(trainer_command(pattern, ref_out, args.steps, 0), cwd=REPO,
                             env=env(), capture_output=True, text=True)  # fmt: skip
        if ref.returncode:
            print(ref.stderr[-3000:], file=sys.stderr)
            return 1
        reference = final_weights(ref_out)
        for t in range(args.trials):
            out = tmp / f"trial-{t}"
            kill_at = 6 + (t * 7) % (args.steps - 12)
            cmd = trainer_command(pattern, out, args.steps, 1, 20 if args.stop else 60)
            sig = signal.SIGSTOP if args.stop else signal.SIGKILL
            r = run_trial(
                cmd, lambda out=out, k=kill_at: logged_step(out) >= k, args.hang_after, sig
            )
            row = {**r, "trial": t, "kill_at": kill_at, "cause": "-"}
            row["identical"] = r["rc"] == 0 and same(final_weights(out), reference)
            if r["rc"] != 0:
                row["cause"] = cause(r["stderr"])
                again = subprocess.run(cmd, cwd=REPO, env=env(), capture_output=True, text=True)
                ok = again.returncode == 0 and same(final_weights(out), reference)
                row["rerun"] = "bit-identical" if ok else f"rc {again.returncode}, differs"
            rows.append(row)
            print(f"trial {t}: rc {r['rc']} identical {row['identical']} cause {row['cause']}",
                  file=sys.stderr)  # fmt: skip
        what = "SIGSTOP (--collective-timeout 20)" if args.stop else "SIGKILL"
        summarize(rows, f"trainer, 2 ranks (gloo), {what} rank 1 at step K, --max-restarts 1")
    return 0


if __name__ == "__main__":
    run_cli(main, "trainer_restarts")
