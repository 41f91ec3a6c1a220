"""Faults injected N times each into real runs on loopback; one table of what came of them.

    python benchmarks/faults.py                     # --trials 2: about 15 min on 2 cores
    python benchmarks/faults.py --trials 3 --json benchmarks/results/faults.json
    python benchmarks/faults.py --only node-kill,driver-kill --trials 1

Each trial starts the real CLI, waits for its first shard (or training step K), injects the
fault, and waits for the end (a trial that has not ended --hang-after s after the injection is
hung: its processes are killed). A failed run is run again as it was (the recovery path the
one-line errors name). The generator faults use the random GAN at 32 px (shards of 128
samples), the trainer the tiny settings of benchmarks/trainer_restarts.py.

- node-kill: a Ray cluster (benchmarks/loopback.py: a head with no CPUs, nodes of 1 CPU) and
  `python -m generator --address ray://... --workers 2 --shards 16`; once a worker is ready on
  the second node, SIGKILL of every process of that node. Detected: the driver's "lost the
  worker" line.
- store-kill: the SeaweedFS S3 server of `--out s3://...` (--workers 1, --shards 6,
  --upload-deadline 10) stopped until the run has failed, then started again and the command
  rerun. Detected: the first "storage: writing ... failed" line (an actor's, forwarded by Ray).
- store-blip: the same server stopped for 5 s under --upload-deadline 60: the run goes on.
- rank-kill: `torchrun --max-restarts 1 -m trainer` (2 ranks, gloo), SIGKILL of rank 1 at step
  K. Detected: every rank of the attempt gone. A failure there is gloo's own (its rendezvous
  after a restart; see benchmarks/trainer_restarts.py --gloo); the rerun column counts them.
- driver-kill: SIGKILL of `python -m generator` (Ray in-process; its Ray processes are then
  stopped too), and the same command run again. Detected: the rerun's "resuming" line.

Columns: finished (the run itself exited 0), rerun (trials finished only through a plain rerun
of the same command), identical (the final shards' sha256, read back from the store, or the
trainer's final weights, equal to an uninterrupted reference), hung, detect median/max and
finish median (seconds from the injection to the detection and to the last process's end).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import loopback
import trainer_restarts

from segcore import schema, storage
from segcore.cli import run_cli
from segcore.options import Parser

PROG = "python benchmarks/faults.py"
FAULTS = ("node-kill", "store-kill", "store-blip", "rank-kill", "driver-kill")
GAN = ["--gan", "random", "--weights", "resolution=32,width=8", "--filters", "none"]
GAN += ["--samples-per-shard", "128", "--batch-size", "16", "--device", "cpu"]


class Watched:
    """A command in its own process group whose output lines are kept with their arrival time."""

    def __init__(self, cmd: list[str], env: dict):
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**env, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
        self.lines: list[tuple[float, str]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line))

    def first(self, pattern: str, after: float) -> float | None:
        """Seconds from `after` to the first line matching `pattern` that came later."""
        hits = [t for t, line in list(self.lines) if t >= after and re.search(pattern, line)]
        return hits[0] - after if hits else None

    def wait(self, deadline: float) -> bool:
        """Wait until `deadline` (monotonic); -> False (hung, the group is killed) if still on."""
        try:
            self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            return False
        finally:
            self.reader.join(timeout=10)
        return True

    def tail(self) -> str:
        return "".join(line for _, line in self.lines[-5:])


def records_made(out: str) -> int:
    """Shard records under a run folder (local or S3; listed afresh)."""
    url = storage.join(out, "manifest")
    if storage.is_remote(url):
        fs, path = storage.filesystem(url)
        fs.invalidate_cache()
        return len(fs.glob(f"{path}/shard-*.json"))
    return len(list(storage.local_path(url).glob("shard-*.json")))


def wait_for_shard(run: Watched, out: str, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while run.proc.poll() is None and time.monotonic() < deadline and records_made(out) < 1:
        time.sleep(0.2)


def stored_shas(out: str, n: int) -> dict[int, str | None]:
    found = {}
    for i in range(n):
        url = storage.join(out, schema.shard_name(i))
        found[i] = (
            hashlib.sha256(storage.read_bytes(url)).hexdigest() if storage.exists(url) else None
        )
    return found


def reference_shas(n: int, folder: Path) -> dict[int, str]:
    """The shards one in-process ShardMaker makes, one after another, with the CLI's options."""
    from generator.run import resolve_config
    from generator.shard_maker import ShardMaker

    config, _ = resolve_config(
        shards=n, gan_name="random", weights="resolution=32,width=8", direction_file=None,
        shift=None, latents="prior", filters=(), samples_per_shard=128, batch_size=16,
    )  # fmt: skip
    maker = ShardMaker(config)
    return {i: maker.make_shard(i, str(folder))["sha256"] for i in range(n)}


def generator_cmd(out: str, shards: int, workers: int, *extra: str) -> list[str]:
    args = [*GAN, "--shards", str(shards), "--workers", str(workers), "--out", out, *extra]
    return [sys.executable, "-m", "generator", *args]


def generator_trial(
    cmd, env, out, shards, reference, inject, detect, hang_after, ready_on=None
) -> dict:
    """Run `cmd`, call `inject(run)` after its first shard (and, with `ready_on`, once a
    worker is ready on that node), `detect(run, last run, time of the injection)` -> seconds
    to the line that shows the fault was seen; rerun once if it failed. -> one row."""
    run = Watched(cmd, env)
    placed = ready_on is None
    deadline = time.monotonic() + 600
    while not placed and run.proc.poll() is None and time.monotonic() < deadline:
        placed = run.first(f"worker ready on {re.escape(ready_on)}$", 0) is not None
        time.sleep(0.2)
    wait_for_shard(run, out)
    t0 = time.monotonic()
    inject(run)
    ended = run.wait(t0 + hang_after)
    row = {"finished": ended and run.proc.returncode == 0, "hung": not ended, "rerun": False}
    if not placed:
        row["note"] = f"no worker was placed on {ready_on} before the run ended"
    if not row["finished"]:
        row["run_said"] = run.tail()[-800:]  # how the run itself ended
    last = run
    if ended and run.proc.returncode != 0:
        last = Watched(cmd, env)  # the recovery path: the same command again
        row["hung"] = not last.wait(time.monotonic() + hang_after)
        row["rerun"] = not row["hung"] and last.proc.returncode == 0
    row["detect_s"] = detect(run, last, t0)
    row["finish_s"] = time.monotonic() - t0
    row["identical"] = (row["finished"] or row["rerun"]) and stored_shas(out, shards) == {
        i: reference[i] for i in range(shards)
    }
    if not (row["finished"] or row["rerun"]):
        row["error"] = last.tail()[-500:]
    return row


def node_kill(folder: Path, trials: int, reference, hang_after: float) -> list[dict]:
    cluster = loopback.RayCluster(folder / "cluster")
    rows = []
    try:
        cluster.add_node(loopback.node_ip(0))
        for t in range(trials):
            ip = loopback.node_ip(1 + t)  # a new node each time; the killed ones stay dead
            cluster.add_node(ip)
            out = str(folder / f"node-{t}")
            cmd = generator_cmd(out, 16, 2, "--address", cluster.address)
            rows.append(generator_trial(
                cmd, cluster.env, out, 16, reference,
                inject=lambda run, ip=ip: cluster.kill_node(ip),
                detect=lambda run, last, t0: run.first("lost (the|a starting) worker", t0),
                hang_after=hang_after, ready_on=ip,
            ))  # fmt: skip
    finally:
        cluster.stop()
    return rows


def store_faults(folder: Path, trials: int, reference, hang_after: float, blip: bool) -> list:
    server = loopback.start_s3(folder / ("s3-blip" if blip else "s3-kill"))
    env = {**os.environ, **server.env()}
    os.environ.update(server.env())  # this process reads the run back from the same store
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # none still pointing at an earlier server
    rows = []

    def outage(run: Watched) -> None:
        server.stop()
        if blip:
            time.sleep(5)
        else:  # down until the run has failed (it says so within its 10 s upload deadline)
            # a run still on after hang_after is counted as hung by generator_trial
            with contextlib.suppress(subprocess.TimeoutExpired):
                run.proc.wait(timeout=hang_after)
        server.restart()

    try:
        for t in range(trials):
            out = f"s3://{server.bucket}/{'blip' if blip else 'kill'}-{t}"
            deadline = "60" if blip else "10"
            cmd = generator_cmd(out, 6, 1, "--upload-deadline", deadline)
            rows.append(generator_trial(
                cmd, env, out, 6, reference, inject=outage,
                detect=lambda run, last, t0: run.first("storage: writing .* failed", t0),
                hang_after=hang_after,
            ))  # fmt: skip
    finally:
        server.stop()
    return rows


def driver_kill(folder: Path, trials: int, reference, hang_after: float) -> list[dict]:
    rows = []
    for t in range(trials):
        out = str(folder / f"driver-{t}")

        def kill(run: Watched) -> None:
            os.kill(run.proc.pid, signal.SIGKILL)
            run.proc.wait()
            time.sleep(1.0)
            # the driver's in-process Ray (in its process group) goes with it
            loopback.stop_group(run.proc, signal.SIGKILL)

        rows.append(generator_trial(
            generator_cmd(out, 6, 1), dict(os.environ), out, 6, reference, inject=kill,
            detect=lambda run, last, t0: last.first("resuming", t0), hang_after=hang_after,
        ))  # fmt: skip
    return rows


def rank_kill(folder: Path, trials: int, steps: int, hang_after: float) -> list[dict]:
    pattern = trainer_restarts.write_shards(folder / "train-shards")
    ref_out = folder / "train-reference"
    cmd = trainer_restarts.trainer_command(pattern, ref_out, steps, 0)
    ref = subprocess.run(cmd, env=trainer_restarts.env(), capture_output=True, text=True)
    if ref.returncode:
        raise RuntimeError(f"the uninterrupted trainer run failed: {ref.stderr[-2000:]}")
    reference = trainer_restarts.final_weights(ref_out)
    rows = []
    for t in range(trials):
        out = folder / f"train-{t}"
        kill_at = 6 + (t * 7) % (steps - 12)
        cmd = trainer_restarts.trainer_command(pattern, out, steps, 1)
        r = trainer_restarts.run_trial(
            cmd, lambda out=out, k=kill_at: trainer_restarts.logged_step(out) >= k, hang_after
        )
        row = {"finished": r["rc"] == 0, "hung": r["hung"], "rerun": False}
        row.update(detect_s=r["detect_s"], finish_s=r["finish_s"])
        if r["rc"] != 0 and not r["hung"]:
            row["cause"] = trainer_restarts.cause(r["stderr"])
            t_rerun = time.monotonic()
            again = subprocess.run(cmd, env=trainer_restarts.env(), capture_output=True, text=True)
            row["rerun"] = again.returncode == 0
            row["finish_s"] += time.monotonic() - t_rerun
        done = row["finished"] or row["rerun"]
        row["identical"] = done and trainer_restarts.same(
            trainer_restarts.final_weights(out), reference
        )
        rows.append(row)
    return rows


def summary(fault: str, rows: list[dict]) -> dict:
    detect = [r["detect_s"] for r in rows if r["detect_s"] is not None]
    finish = [r["finish_s"] for r in rows if r["finish_s"] is not None and not r["hung"]]
    return {
        "fault": fault,
        "trials": len(rows),
        "finished": sum(r["finished"] for r in rows),
        "rerun": sum(r["rerun"] for r in rows),
        "identical": sum(bool(r["identical"]) for r in rows),
        "hung": sum(r["hung"] for r in rows),
        "detected": len(detect),
        "detect_median_s": statistics.median(detect) if detect else None,
        "detect_max_s": max(detect) if detect else None,
        "finish_median_s": statistics.median(finish) if finish else None,
    }


def print_table(summaries: list[dict]) -> None:
    head = ("fault", "trials", "finished", "rerun", "identical", "hung", "detect med/max s",
            "finish med s")  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for s in summaries:
        med, top = s["detect_median_s"], s["detect_max_s"]
        detect = "-" if med is None else f"{med:.1f} / {top:.1f}"
        if s["detected"] < s["trials"]:
            detect += f" ({s['trials'] - s['detected']} not seen)"
        finish = "-" if s["finish_median_s"] is None else f"{s['finish_median_s']:.0f}"
        cells = (s["fault"], s["trials"], s["finished"], s["rerun"], s["identical"], s["hung"],
                 detect, finish)  # fmt: skip
        print("| " + " | ".join(str(c) for c in cells) + " |")


def main(argv=None) -> int:
    p = Parser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=2, help="trials per fault (default: %(default)s)")
    p.add_argument("--only", default=",".join(FAULTS),
                   help="comma-separated faults to inject (default: %(default)s)")  # fmt: skip
    p.add_argument("--hang-after", type=float, default=300.0,
                   help="seconds until a run counts as hung (default: %(default)s)")  # fmt: skip
    p.add_argument("--steps", type=int, default=40,
                   help="trainer steps in rank-kill trials (default: %(default)s)")  # fmt: skip
    p.add_argument("--json", default=None, help="also write the rows here (default: none)")
    args = p.parse_args(argv)
    only = [f.strip() for f in args.only.split(",") if f.strip()]
    unknown = sorted(set(only) - set(FAULTS))
    if unknown or args.trials < 1:
        p.error(f"--only takes {', '.join(FAULTS)}" if unknown else "--trials must be >= 1")
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        folder = Path(tmp)
        reference = reference_shas(16, folder / "reference")
        for fault in only:
            print(f"faults: {fault}, {args.trials} trial(s)", file=sys.stderr, flush=True)
            if fault == "node-kill":
                rows = node_kill(folder, args.trials, reference, args.hang_after)
            elif fault in ("store-kill", "store-blip"):
                blip = fault == "store-blip"
                rows = store_faults(folder, args.trials, reference, args.hang_after, blip)
            elif fault == "rank-kill":
                rows = rank_kill(folder, args.trials, args.steps, args.hang_after)
            else:
                rows = driver_kill(folder, args.trials, reference, args.hang_after)
            results[fault] = rows
            print(f"faults: {fault}: {json.dumps(rows)}", file=sys.stderr, flush=True)
    summaries = [summary(fault, rows) for fault, rows in results.items()]
    print_table(summaries)
    if args.json:
        blob = {"command": " ".join([PROG, *(argv if argv is not None else sys.argv[1:])]),
                "summary": summaries, "trials": results}  # fmt: skip
        storage.write_bytes_atomic(args.json, (json.dumps(blob, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    run_cli(main, PROG)
