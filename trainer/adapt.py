"""Self-training on the user's unlabelled target images, after the synthetic steps.

    python -m trainer --shards ... --out OUT --adapt-images DIR \
        [--adapt-rounds 3 --adapt-steps 200 --adapt-margin 0.3 --adapt-keep 0.8 ...]

The synthetic steps (the paper, section 3.4) run first, unchanged. Then, for each of
--adapt-rounds rounds, starting at step --steps + r x --adapt-steps:
  1. labelling: the current model (eval mode, rank 0's BatchNorm statistics on every rank)
     predicts every target image, each rank its slice (images i, i + W, ...), optionally
     averaged with the mirror image, and refines its slice by the images' colours
     (--adapt-refine, trainer/adapt_refine.py); the ranks gather the slices, so all hold the
     same labels. The --adapt-keep images the model itself is surest of are kept, and pixels
     whose refined probability is within --adapt-margin of 0.5 are ignored by the loss
     (trainer/adapt_labels.py). Rank 0 writes the round's labels to OUT/pseudo-labels-rR.pt
     and logs the round: kept images and pixels, foreground, what the refinement flipped, and
     the agreement (IoU) with the previous round's labels;
  2. --adapt-steps steps on mixed batches: per rank, round(--adapt-mix x per-rank batch)
     pseudo-labelled target images (random resized crop and flip, then --adapt-jitter's
     colour noise, drawn by (seed, rank, step)) and the rest synthetic samples, which continue
     the synthetic stream where it was; the lr follows --adapt-schedule within the round.
Nothing of the target folder but its images is read (trainer/target_images.py).

Resume is exact: a checkpoint records the step, hence the round; a run continued inside a
round reads that round's labels back (checked against the target images' digest) and the
batches are a pure function of the step. A checkpoint taken before the first self-training
step (a finished synthetic run) may be continued with --adapt-* options added
(trainer/adapt_config.py): it ends with the same weights as a run that had them from the start.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from segcore import storage
from segcore.cli import UsageError
from segcore.config import to_dict
from segcore.progress import progress_bar
from trainer import checkpoint, data, distributed, validate
from trainer.adapt_config import lr_factor, target_count, total_steps
from trainer.adapt_labels import (
    agreement,
    doubt,
    jitter,
    masked_loss,
    predict,
    refined_stats,
    select,
    target_batch,
    targets,
)
from trainer.adapt_refine import refine
from trainer.target_images import TargetImages

LABELS_FORMAT = "gan-objseg/pseudo-labels/v1"


def labels_name(round_number: int) -> str:
    """OUT's file of round `round_number`'s labels (rounds count from 1)."""
    return f"pseudo-labels-r{round_number}.pt"


@dataclass
class Phase:
    """What the trainer's main hands over after its synthetic steps."""

    cfg: object  # trainer.config.TrainConfig
    net: torch.nn.Module  # the UNet
    model: torch.nn.Module  # the UNet, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    scheduler: object
    device: torch.device
    use_amp: bool
    rank: int
    is_main: bool
    spec: data.StreamSpec  # the synthetic stream's
    positions: dict  # logical worker -> (draw, offset) of the last synthetic batch used
    bad: int  # this rank's bad synthetic samples so far
    start: int  # the step the run continues from (a checkpoint's, or 0)
    book: object  # rank 0's Logbook, else None
    guard: object  # FiniteGuard
    meter: object  # the trainer's Meter
    validate: Callable[[], dict]  # rank 0's validation of the current model
    targets: TargetImages
    last_val: dict


@dataclass
class RoundLabels:
    round: int  # from 1
    q: np.ndarray  # uint8 probabilities [N, R, R]
    kept: np.ndarray  # indices of the images trained on
    labels: np.ndarray  # uint8 [N, R, R]: 0, 1 or IGNORE


def run(p: Phase) -> dict:
    """The self-training rounds (see the module doc); -> the last validation record."""
    cfg, device = p.cfg, p.device
    total, first = total_steps(cfg), max(p.start, cfg.steps)
    if first >= total:
        return p.last_val
    stream = data.ShardStream(
        replace(p.spec, run_samples=total * cfg.batch_size),
        total=total - first,
        n_workers=cfg.workers,
        start_step=first,
        positions=p.positions,
        bad_before=p.bad,
    )
    loader = data.train_loader(stream, cfg.workers, pin_memory=device.type == "cuda")
    n_target = target_count(cfg)
    n_synthetic = cfg.per_rank_batch - n_target
    positions, bad_by_worker = dict(p.positions), {}
    last_val, current = p.last_val, None
    bar = progress_bar(total=total, initial=first, disable=not p.is_main)
    batches = iter(loader)
    for step in range(first, total):
        index, into_round = divmod(step - cfg.steps, cfg.adapt_steps)
        if current is None or into_round == 0:
            current = round_labels(p, index + 1, step, fresh=into_round == 0, previous=current)
        t0 = time.perf_counter()
        batch = next(batches)
        p.meter.data_wait += time.perf_counter() - t0
        if "error" in batch:
            raise UsageError(batch["error"])
        tx, ty = target_batch(
            p.targets.images, current.labels, current.kept, n_target,
            (cfg.seed, p.rank, step), cfg.adapt_min_scale,
        )  # fmt: skip
        tx = jitter(tx, cfg.adapt_jitter, (cfg.seed, p.rank, step))
        images = torch.cat([batch["image"][:n_synthetic], torch.from_numpy(tx)])
        synthetic = (batch["mask"][:n_synthetic] >= 128).to(torch.uint8)
        target = torch.cat([synthetic, torch.from_numpy(ty)]).to(device, non_blocking=True)
        x = validate.to_model_input(images, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=p.use_amp):
            logits = p.model(x)
        loss = masked_loss(logits, target, cfg.loss)
        p.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        lr = set_lr(p, step)
        p.optimizer.step()
        p.scheduler.step()
        worker, draw, offset = (int(v) for v in batch["pos"])
        positions[worker] = (draw, offset)
        bad_by_worker[worker] = int(batch["bad"])
        p.meter.add(loss.detach())
        done = step + 1
        p.guard.add(loss, done)
        bar.update(1)

        round_end = (done - cfg.steps) % cfg.adapt_steps == 0
        at_val = done % cfg.val_every == 0 or round_end
        at_ckpt = done % cfg.ckpt_every == 0 or round_end
        if done % cfg.log_every == 0 or at_val or at_ckpt:
            p.guard.check(p.net, done, weights=at_val or at_ckpt)
        bad = p.bad + sum(bad_by_worker.values())
        if done % cfg.log_every == 0 or done == total:
            record = p.meter.flush(cfg.batch_size, bad)
            if data.too_many_bad(record["bad_samples"], total * cfg.batch_size,
                                 cfg.max_bad_fraction):  # fmt: skip
                raise UsageError(
                    data.too_many_message(record["bad_samples"], total * cfg.batch_size, p.spec)
                )
            record.update(lr=lr, adapt_round=current.round)
            if p.is_main:
                p.book.write(done, record)
                bar.set_postfix(loss=f"{record['loss']:.4f}", refresh=False)
        if at_val:
            last_val = validate_now(p, done) or last_val
        if at_ckpt:
            save_checkpoint(p, done, current.round, positions, bad)
    if next(batches, None) is not None:
        raise RuntimeError("the data stream yielded more batches than steps")
    bar.close()
    return last_val


def set_lr(p: Phase, step: int) -> float:
    """Set and return the lr of optimizer step `step`: the synthetic schedule's value (the
    paper's drop included) times --adapt-schedule's factor (trainer/adapt_config.py). The
    MultiStepLR keeps stepping, so its state in a checkpoint stays what it always was."""
    cfg = p.cfg
    base = cfg.lr * (cfg.lr_drop_factor if step >= cfg.lr_drop_step else 1.0)
    lr = base * lr_factor(cfg, step)
    for group in p.optimizer.param_groups:
        group["lr"] = lr
    return lr


def validate_now(p: Phase, done: int) -> dict:
    """Rank 0 validates; every rank waits, and a failure stops them all."""
    problem, record = None, {}
    if p.is_main:
        try:
            record = p.validate()
        except FloatingPointError as err:
            problem = f"{err} at step {done}"
        if record and not problem:
            p.book.write(done, record)
            tqdm.write(f"trainer: step {done} " + " ".join(
                f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()
            ))  # fmt: skip
    problem = distributed.broadcast_object(problem)
    if problem:
        p.guard.stop(problem)
    return record


def save_checkpoint(p: Phase, done: int, round_number: int, positions: dict, bad: int) -> None:
    mine = {
        "rng": checkpoint.rng_state(p.device),
        "positions": [[w, j, o] for w, (j, o) in sorted(positions.items())],
        "bad": bad,
    }
    ranks = distributed.gather_objects(mine)
    if p.is_main:
        checkpoint.save(storage.join(p.cfg.out, checkpoint.CHECKPOINT), {
            "step": done,
            "config": to_dict(p.cfg),
            "model": p.net.state_dict(),
            "optimizer": p.optimizer.state_dict(),
            "scheduler": p.scheduler.state_dict(),
            "ranks": ranks,
            "adapt_round": round_number,
        })  # fmt: skip
        p.book.upload()
    p.guard.saved(done)


def round_labels(
    p: Phase, number: int, step: int, fresh: bool, previous: RoundLabels | None
) -> RoundLabels:
    """Round `number`'s labels: made now (`fresh`, at the round's first step), or read back
    from OUT when a run continues inside the round."""
    cfg = p.cfg
    if not fresh:
        q, kept = read_labels(p, number)
        return RoundLabels(number, q, kept, targets(q, cfg.adapt_margin))
    raw, q = label_all(p)
    kept, stats = select(raw, cfg.adapt_margin, cfg.adapt_keep)
    if cfg.adapt_refine != "none":
        stats.update(refined_stats(raw, q, kept, cfg.adapt_margin))
    before = previous.q if previous is not None else None
    if before is None and number > 1:  # continued at this round's start: read the last one
        before = read_labels(p, number - 1)[0]
    if before is not None:
        stats["adapt_agreement"] = agreement(before, q)
    if p.is_main:
        write_labels(p, number, q, kept)
        p.book.write(step, {"adapt_round": number, **stats})
        tqdm.write(f"trainer: self-training round {number} at step {step}: " + ", ".join(
            f"{k.removeprefix('adapt_')} {v:.4f}" if isinstance(v, float) else
            f"{k.removeprefix('adapt_')} {v}" for k, v in stats.items()
        ))  # fmt: skip
        worry = doubt(stats)
        if worry:
            tqdm.write(f"trainer: warning: self-training round {number}: {worry}")
    return RoundLabels(number, q, kept, targets(q, cfg.adapt_margin))


def label_all(p: Phase) -> tuple[np.ndarray, np.ndarray]:
    """(the current model's uint8 probabilities on every target image, the labels' uint8
    probabilities: the same, or refined by --adapt-refine). Rank 0's BatchNorm statistics are
    copied to every rank, each rank predicts (and refines) its slice, all gather."""
    world = distributed.world_size()
    if dist.is_initialized():
        for buffer in p.net.buffers():
            dist.broadcast(buffer.data, src=0)
    images = p.targets.images[p.rank :: world]
    raw = predict(p.net, images, p.device, p.cfg.adapt_flip_tta)
    refined = refine(raw, images, p.device) if p.cfg.adapt_refine == "crf" else raw
    shape = p.targets.images.shape[:3]
    out = np.empty(shape, dtype=np.uint8), np.empty(shape, dtype=np.uint8)
    for rank, parts in enumerate(distributed.gather_objects((raw, refined))):
        for whole, part in zip(out, parts, strict=True):
            whole[rank::world] = part
    return out


def write_labels(p: Phase, number: int, q: np.ndarray, kept: np.ndarray) -> None:
    buf = io.BytesIO()
    torch.save({
        "format": LABELS_FORMAT,
        "round": number,
        "targets": p.targets.digest(),
        "probability": torch.from_numpy(q),
        "kept": torch.from_numpy(kept.astype(np.int64)),
    }, buf)  # fmt: skip
    storage.write_bytes_atomic(storage.join(p.cfg.out, labels_name(number)), buf.getvalue())


def read_labels(p: Phase, number: int) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, kept indices) of round `number` from OUT; UsageError if they are
    missing, unreadable or belong to other target images."""
    url = storage.join(p.cfg.out, labels_name(number))
    where = storage.redact(url)
    try:
        doc = torch.load(io.BytesIO(storage.read_bytes(url)), map_location="cpu", weights_only=True)
        if doc.get("format") != LABELS_FORMAT or int(doc["round"]) != number:
            raise ValueError(f"not round {number}'s pseudo-labels")
        q, kept = doc["probability"].numpy(), doc["kept"].numpy()
        digest = doc["targets"]
    except Exception as err:
        raise UsageError(
            f"cannot continue self-training round {number}: {where} ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200] if str(err) else ''}); move OUT/checkpoint.pt "
            "away to start over"
        ) from err
    if digest != p.targets.digest() or q.shape != p.targets.images.shape[:3]:
        raise UsageError(
            f"{where} labels other target images than --adapt-images "
            f"{p.cfg.adapt_images} holds now; restore the folder or start over in a new --out"
        )
    return q, kept
