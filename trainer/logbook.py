"""Rank 0's record of a run: JSON lines (`log.jsonl`) plus TensorBoard (`tb/`).

Both live in a local folder: OUT itself, or for a remote OUT a local staging folder whose
files are uploaded (one PUT each) at every checkpoint and at the end.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from segcore import storage


class Logbook:
    """`start_step`: the step the run starts from. Records after it (written by an earlier
    attempt that died after its last checkpoint) are dropped, so a resumed run's log has
    each step once; TensorBoard purges them the same way (`purge_step`)."""

    def __init__(self, out: str, start_step: int = 0):
        self.out = out
        self.remote = storage.is_remote(out)
        self.dir = Path(tempfile.mkdtemp(prefix="trainer-log-")) if self.remote else Path(out)
        self.dir.mkdir(parents=True, exist_ok=True)
        kept = [
            r for r in previous_records(storage.join(out, "log.jsonl")) if r["step"] <= start_step
        ]
        blob = "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept).encode()
        storage.write_bytes_atomic(str(self.dir / "log.jsonl"), blob)
        self.jsonl = (self.dir / "log.jsonl").open("a")
        self.tb = tensorboard_writer(self.dir / "tb", purge_step=start_step)

    def write(self, step: int, record: dict) -> None:
        record = {"step": step, "time": round(time.time(), 3), **record}
        self.jsonl.write(json.dumps(record, sort_keys=True) + "\n")
        self.jsonl.flush()
        for key, value in record.items():
            if key not in ("step", "time") and isinstance(value, int | float):
                self.tb.add_scalar(key, value, step)
        self.tb.flush()

    def upload(self) -> None:
        """Publish the local files under OUT (remote OUT only)."""
        if not self.remote:
            return
        for path in sorted(self.dir.rglob("*")):
            if path.is_file():
                rel = path.relative_to(self.dir).as_posix()
                storage.put_file_atomic(path, storage.join(self.out, *rel.split("/")))

    def close(self) -> None:
        self.jsonl.close()
        self.tb.close()
        self.upload()


def previous_records(url: str) -> list[dict]:
    if not storage.exists(url):
        return []
    lines = storage.read_bytes(url).decode().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def tensorboard_writer(folder: Path, purge_step: int | None = None):
    """torch's SummaryWriter, without TensorFlow.

    TensorBoard imports TensorFlow when it is installed (it is, for the generator's TF-Hub
    backend); the trainer must not load it. A `tensorboard.compat.notf` module is
    TensorBoard's own switch to its TF-free stub (tensorboard/compat/__init__.py).
    """
    import sys
    import types

    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(folder), purge_step=purge_step)
