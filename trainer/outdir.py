"""The output folder: whether a run starts fresh or continues, and preparing OUT.

A run continues from OUT/checkpoint.pt whenever that checkpoint's config matches (the keys that
shape the weights; config.RESUME_MAY_DIFFER may change), with or without `--resume`: a plain
rerun of the same command, and every restart under `torchrun --max-restarts`, picks up where
the last checkpoint left off. A checkpoint of another config is refused; `--resume` insists on
a checkpoint. Every refusal happens before anything is written (config.json included), and an
OUT that holds another program's files is refused, never written into.

Every rank reads the same checkpoint file before the process group forms (no rank can write a
new one before all have joined), and the ranks then check that they read the same step.
"""

from __future__ import annotations

import json
import os

from segcore import storage
from segcore.cli import UsageError
from segcore.config import differences, dump_json
from trainer import adapt_config, checkpoint, config

# What a trainer run leaves in OUT (and the temp files of its atomic writes, ".name.*.tmp").
OWN_FILES = frozenset(
    {"config.json", checkpoint.CHECKPOINT, "log.jsonl", "tb", "model.pt2", "model.json"}
)
CHECKPOINT_KEYS = ("step", "config", "model", "optimizer", "scheduler", "ranks")
# Numbers that the machine resolves (auto) and a run records: a resume elsewhere passes them.
RECORDED = ("workers", "threads")


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200] if text else ''}"


def find_checkpoint(cfg: config.TrainConfig, resume: bool) -> dict | None:
    """The checkpoint to continue from (its config matches), or None for a fresh start."""
    url = storage.join(cfg.out, checkpoint.CHECKPOINT)
    where = storage.redact(url)
    try:
        present = storage.exists(url)
    except Exception as err:
        raise UsageError(f"cannot read --out ({where}: {one_line(err)})") from err
    if not present:
        if resume:
            raise UsageError(f"--resume: no checkpoint at {where}")
        return None
    try:
        ckpt = checkpoint.load(url)
        missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
        step = int(ckpt["step"])
    except Exception as err:
        raise UsageError(
            f"{where} is not a readable trainer checkpoint ({one_line(err)}); restore it, or "
            "move it away to start over"
        ) from err
    ignore, limit = adapt_config.resume_rule(ckpt["config"], step, cfg, config.RESUME_MAY_DIFFER)
    differ = differences(ckpt["config"], cfg, ignore=ignore)
    if differ:
        hints = [
            f"--{key} {ckpt['config'].get(key)}"
            for key in RECORDED
            if any(d.startswith(f"{key}:") for d in differ)
        ]
        hint = f" (pass {' '.join(hints)}, the run's numbers)" if hints else ""
        raise UsageError(
            f"{where} holds a run with a different config: " + "; ".join(differ) + hint
            + "; use the same options to continue it, or another --out"
        )  # fmt: skip
    if step > limit:
        raise UsageError(f"the checkpoint is at step {step}, beyond --steps {cfg.steps}")
    return ckpt


def foreign_files(cfg: config.TrainConfig) -> str | None:
    """Why OUT is not ours to write into, or None: a folder with files but no trainer
    config.json, or a config.json that is not a trainer run's."""
    names = storage.list_names(cfg.out)
    if not names:
        return None
    where = storage.redact(cfg.out)
    if "config.json" not in names:
        others = [n for n in names if n not in OWN_FILES and not n.startswith(".")]
        if others:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            return (
                f"--out {where} holds other files ({shown}) and no trainer config.json; "
                "choose an empty or new folder"
            )
        return None
    try:
        saved = json.loads(storage.read_bytes(storage.join(cfg.out, "config.json")))
        ours = isinstance(saved.get("config"), dict) and "lr_drop_step" in saved["config"]
    except (OSError, ValueError, AttributeError) as err:
        return f"--out {where}: config.json is unreadable ({one_line(err)}); choose another --out"
    if not ours:
        return f"--out {where}: config.json is not a trainer run's; choose another --out"
    return None


def prepare_out(cfg: config.TrainConfig) -> str | None:
    """Create OUT and write config.json (rank 0); the problem as one line, or None."""
    where = storage.redact(cfg.out)
    try:
        if not storage.is_remote(cfg.out):
            path = storage.local_path(cfg.out)
            path.mkdir(parents=True, exist_ok=True)
            if not os.access(path, os.W_OK | os.X_OK):
                return f"--out {where} is not writable"
        problem = foreign_files(cfg)
        if problem:
            return problem
        blob = dump_json(cfg, config_hash=config.run_hash(cfg))
        storage.write_bytes_atomic(storage.join(cfg.out, "config.json"), blob.encode())
    except Exception as err:
        return f"cannot write to --out {where} ({one_line(err)})"
    return None
