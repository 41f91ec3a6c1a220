"""Train the U-Net segmenter on the generator's shards (the paper, section 3.4).

Single process (CPU, or one GPU):
    python -m trainer --shards 'runs/gen/shard-{000000..000499}.tar' --out runs/unet

One node, N processes (DDP: gloo on CPU, NCCL on GPUs). The global batch (95, the paper's)
is split evenly over the ranks; 95 splits over 1 or 5 ranks, otherwise give a batch that does,
e.g. for 8 GPUs `--batch-size 96` (12 per rank) or `--per-rank-batch 12`:
    torchrun --standalone --nproc_per_node=8 -m trainer \
        --shards 's3://bucket/gen/shard-{000000..000499}.tar' --out s3://bucket/unet \
        --batch-size 96

Several nodes (run on every node; K = 0 on the head):
    torchrun --nnodes=2 --nproc_per_node=8 --node_rank=K --master_addr=HEAD --master_port=29500 \
        -m trainer --shards '...' --out s3://bucket/unet --batch-size 96

A tiny CPU run with 2 processes on loopback (what the tests do):
    GLOO_SOCKET_IFNAME=lo torchrun --standalone --nproc_per_node=2 -m trainer \
        --shards 'tmp/shard-{000000..000003}.tar' --out tmp/unet --width 0.125 \
        --resolution 32 --batch-size 8 --steps 20 --workers 0

Resume: the same command again (same world size, workers and threads; `--steps` may grow): an
OUT whose checkpoint has the same config is continued, so are restarts under
`torchrun --max-restarts N`; `--resume` insists on a checkpoint. `--workers auto` and
`--threads auto` (the defaults) resolve from the machine's CPUs and are recorded in
config.json; a resume on another machine passes those numbers. It ends with the same weights
as a run that was never interrupted (trainer/outdir.py).

OUT receives config.json, checkpoint.pt, log.jsonl, tb/ (TensorBoard), and at the end the
exported model: model.pt2 + model.json (segcore/modelfile.py). S3 credentials and endpoint come
only from the AWS_* environment variables. Every option, with its default: `--help` and
docs/trainer.md.
"""

from __future__ import annotations

import time
import warnings

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.optim.lr_scheduler import MultiStepLR
from tqdm import tqdm

from segcore import recipes, storage
from segcore.cli import UsageError, run_cli
from segcore.config import to_dict
from segcore.device import resolve_device
from segcore.progress import progress_bar
from trainer import (
    adapt,
    adapt_config,
    checkpoint,
    config,
    data,
    distributed,
    export,
    outdir,
    pool,
    recipe,
    shardlist,
    target_images,
    validate,
)
from trainer.guards import FiniteGuard
from trainer.logbook import Logbook
from trainer.unet import UNet, count_parameters, segmentation_loss

PROG = "trainer"


def main(argv=None) -> int:
    # -- config: options -> one frozen TrainConfig (world size from torchrun's env) --------
    parser = config.build_parser()
    args = parser.parse_args(argv)
    dist_env = distributed.env_dist()
    cfg = recipe.resolve(parser, args, argv, dist_env.world_size)  # --recipe and overrides
    rank, is_main = dist_env.rank, dist_env.is_main
    device = resolve_device(cfg.device, local_rank=dist_env.local_rank)
    cfg = config.resolve_workers(cfg, device.type)  # auto workers and threads -> recorded
    torch.set_num_threads(cfg.threads)  # CPU results depend on it: one number for every launch
    use_amp = cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda")
    if use_amp and device.type != "cuda":
        raise UsageError("--amp bf16 is for CUDA devices; on CPU use --amp off (or auto)")

    # -- inputs: every rank checks the same things before any collective call -------------
    urls = shardlist.expand_shards(cfg.shards)
    shardlist.check_shards_exist(urls)
    train_urls, val_urls = shardlist.split_holdout(urls, cfg.val_shards)
    if cfg.val_data:
        try:
            validate.check_real_available(cfg.val_data)
        except Exception as err:
            raise UsageError(f"--val-data {cfg.val_data}: cannot use it ({err})") from err
    ckpt_url = storage.join(cfg.out, checkpoint.CHECKPOINT)
    targets = None  # self-training's unlabelled images (trainer/adapt.py), read on every rank
    if cfg.adapt_images:
        targets = target_images.load(cfg.adapt_images, cfg.resolution, cfg.max_bad_fraction)
    ckpt = outdir.find_checkpoint(cfg, args.resume)  # every refusal before anything is written

    # -- process group; the ranks agree on the checkpoint, rank 0 prepares OUT -------------
    distributed.init(dist_env, device, cfg.collective_timeout)
    start = int(ckpt["step"]) if ckpt is not None else 0
    if len(set(distributed.gather_objects(start))) > 1:
        distributed.cleanup()
        raise UsageError(f"the ranks read different checkpoints at {storage.redact(ckpt_url)}")
    problem = distributed.broadcast_object(outdir.prepare_out(cfg) if is_main else None)
    if problem:
        distributed.cleanup()
        raise UsageError(problem)
    if is_main and ckpt is not None:
        again = distributed.restart_count()
        tqdm.write(
            f"trainer: continuing from step {start} ({storage.redact(ckpt_url)})"
            + (f", torchrun restart {again}" if again else "")
        )

    # -- model, optimizer, schedule (the paper, section 3.4: Adam 1e-3, x0.2 at 8000) -----
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    net = UNet(cfg.width, cfg.loss).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    scheduler = MultiStepLR(optimizer, milestones=[cfg.lr_drop_step], gamma=cfg.lr_drop_factor)
    positions, bad_before = {}, 0
    if ckpt is None:
        seed_everything(cfg.seed + rank)  # seeds offset by rank
    else:
        try:
            net.load_state_dict(ckpt["model"])  # strict: a missing or unexpected key is an error
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            mine = ckpt["ranks"][rank]
            checkpoint.set_rng_state(mine["rng"], device)
            positions = {int(w): (int(j), int(o)) for w, j, o in mine["positions"]}
            bad_before = int(mine.get("bad", 0))
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
            raise UsageError(
                f"cannot continue from {storage.redact(ckpt_url)} ({outdir.one_line(err)}); "
                "restore it, or move it away to start over"
            ) from err
    model = net
    if distributed.is_initialized():
        # grads as views of the allreduce buckets: no copy. The first backward still warns
        # "Grad strides do not match bucket view strides" for the 1x1 convs: their [C,K,1,1]
        # grads differ from the bucket only in the strides of size-1 dims, the same memory
        # layout (spurious, pytorch/pytorch#47163). Silence exactly that case; any other
        # stride mismatch (a real layout problem) still warns.
        warnings.filterwarnings(
            "ignore",
            message=r"(?s)Grad strides do not match bucket view strides.*"
            r"grad\.sizes\(\) = \[\d+, \d+, 1, 1\]",
            category=UserWarning,
        )
        model = DDP(
            net,
            device_ids=[device.index] if device.type == "cuda" else None,
            gradient_as_bucket_view=True,
        )
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        tf32 = cfg.tf32 is not False  # --no-tf32: float32 matmuls and convolutions
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32

    # -- data: this rank's exact share of the remaining steps ------------------------------
    stream = data.ShardStream(
        data.StreamSpec(
            urls=tuple(train_urls),
            seed=cfg.seed,
            rank=rank,
            batch_size=cfg.per_rank_batch,
            resolution=cfg.resolution,
            max_bad_fraction=cfg.max_bad_fraction,
            run_samples=cfg.steps * cfg.batch_size,
        ),
        total=max(0, cfg.steps - start),
        n_workers=cfg.workers,
        start_step=start,
        positions=positions,
        bad_before=bad_before,
    )
    loader = data.train_loader(stream, cfg.workers, pin_memory=device.type == "cuda")
    holdout = None
    if val_urls:  # rank 0 reads the hold-out set; a failure stops every rank
        problem = None
        if is_main:
            try:
                holdout = data.load_holdout(val_urls, cfg.val_samples, cfg.resolution)
            except UsageError as err:
                problem = str(err)
        problem = distributed.broadcast_object(problem)
        if problem:
            raise UsageError(problem)
    book = Logbook(cfg.out, start_step=start) if is_main else None
    if is_main:
        tqdm.write(
            f"trainer: {count_parameters(net):,} params, {len(train_urls)} train / "
            f"{len(val_urls)} hold-out shards, batch {cfg.batch_size} = {cfg.world_size} x "
            f"{cfg.per_rank_batch}, device {device}, amp {'bf16' if use_amp else 'off'}, "
            f"steps {start} -> {cfg.steps}"
        )
        if cfg.recipe != recipes.DEFAULT:
            tqdm.write(f"trainer: {recipes.describe(recipes.get(cfg.recipe), cfg.overrides)}")
        pool_size = pool.pool_samples(train_urls, data.count_samples)
        tqdm.write(pool.reuse_line(cfg.steps, cfg.batch_size, pool_size, len(train_urls)))

    # -- the loop: exactly `steps - start` batches, then the loader is exhausted -----------
    bar = progress_bar(total=cfg.steps, initial=start, disable=not is_main)
    meter = Meter(device)
    guard = FiniteGuard(device, last_checkpoint=start if ckpt is not None else None)
    bad_by_worker: dict[int, int] = {}
    last_val: dict = {}
    batches = iter(loader)
    for step in range(start, cfg.steps):
        t0 = time.perf_counter()
        batch = next(batches)
        meter.data_wait += time.perf_counter() - t0
        if "error" in batch:
            raise UsageError(batch["error"])
        x = validate.to_model_input(batch["image"], device)
        target = batch["mask"].to(device, non_blocking=True) >= 128
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = model(x)
        loss = segmentation_loss(logits, target, cfg.loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        worker, draw, offset = (int(v) for v in batch["pos"])
        positions[worker] = (draw, offset)
        bad_by_worker[worker] = int(batch["bad"])
        meter.add(loss.detach())
        done = step + 1
        guard.add(loss, done)
        bar.update(1)

        at_val = done % cfg.val_every == 0 or done == cfg.steps
        at_ckpt = done % cfg.ckpt_every == 0 or done == cfg.steps
        if done % cfg.log_every == 0 or at_val or at_ckpt:
            guard.check(net, done, weights=at_val or at_ckpt)  # before anything is written
        if done % cfg.log_every == 0 or done == cfg.steps:
            record = meter.flush(cfg.batch_size, bad_before + sum(bad_by_worker.values()))
            if data.too_many_bad(record["bad_samples"], cfg.steps * cfg.batch_size,
                                 cfg.max_bad_fraction):  # fmt: skip
                raise UsageError(
                    data.too_many_message(
                        record["bad_samples"], cfg.steps * cfg.batch_size, stream.spec
                    )
                )
            record["lr"] = scheduler.get_last_lr()[0]
            if is_main:
                book.write(done, record)
                bar.set_postfix(
                    loss=f"{record['loss']:.4f}",
                    img_s=f"{record['images_per_s']:.0f}",
                    refresh=False,
                )
        if at_val:
            problem = None
            if is_main:
                try:
                    last_val = run_validation(net, holdout, cfg, device)
                except FloatingPointError as err:
                    problem = f"{err} at step {done}"
                if last_val and not problem:
                    book.write(done, last_val)
                    tqdm.write(f"trainer: step {done} " + format_record(last_val))
            problem = distributed.broadcast_object(problem)  # every rank waits for rank 0
            if problem:
                guard.stop(problem)
        if at_ckpt:
            mine = {
                "rng": checkpoint.rng_state(device),
                "positions": [[w, j, o] for w, (j, o) in sorted(positions.items())],
                "bad": bad_before + sum(bad_by_worker.values()),
            }
            ranks = distributed.gather_objects(mine)
            if is_main:
                checkpoint.save(ckpt_url, {
                    "step": done,
                    "config": to_dict(cfg),
                    "model": net.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "ranks": ranks,
                })  # fmt: skip
                book.upload()
            guard.saved(done)
    # Every worker has yielded its share; drain the loader so each ends cleanly.
    if next(batches, None) is not None:
        raise RuntimeError("the data stream yielded more batches than steps")
    bar.close()
    if targets is not None:  # the self-training rounds, after the synthetic steps
        last_val = adapt.run(adapt.Phase(
            cfg, net, model, optimizer, scheduler, device, use_amp, rank, is_main, stream.spec,
            positions, bad_before + sum(bad_by_worker.values()), start, book, guard, meter,
            lambda: run_validation(net, holdout, cfg, device), targets, last_val,
        ))  # fmt: skip

    # -- export: the model file eval loads (segcore/modelfile.py) -------------------------
    if is_main:
        url = export.export(net, cfg.out, {
            "resolution": cfg.resolution,
            "loss": cfg.loss,
            "width": cfg.width,
            "steps": adapt_config.total_steps(cfg),
            "config_hash": config.run_hash(cfg),
            "shards": storage.redact(cfg.shards),
            "validation": last_val,
        })  # fmt: skip
        tqdm.write(f"trainer: exported {storage.redact(url)}")
        book.close()
    distributed.cleanup()
    return 0


# ---------------------------------------------------------------------------------------------
# helpers used above, in order of appearance


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Meter:
    """Loss, throughput and data-wait over one logging interval, averaged over ranks."""

    def __init__(self, device: torch.device):
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.loss_sum = torch.zeros((), device=self.device)
        self.steps = 0
        self.data_wait = 0.0
        self.since = time.perf_counter()

    def add(self, loss: torch.Tensor) -> None:
        self.loss_sum += loss.float()  # no host sync per step
        self.steps += 1

    def flush(self, global_batch: int, bad: int) -> dict:
        wall = time.perf_counter() - self.since
        stats = torch.stack([
            self.loss_sum / max(1, self.steps),
            torch.tensor(self.data_wait / max(wall, 1e-9), device=self.device),
        ]).float()  # fmt: skip
        stats = distributed.mean_over_ranks(stats).tolist()
        bad = distributed.sum_over_ranks(torch.tensor(bad, device=self.device)).item()
        record = {
            "loss": stats[0],
            "data_wait_frac": stats[1],
            "bad_samples": int(bad),
            "images_per_s": global_batch * self.steps / max(wall, 1e-9),
            "step_time_s": wall / max(1, self.steps),
        }
        self.reset()
        return record


def run_validation(net: UNet, holdout, cfg: config.TrainConfig, device: torch.device) -> dict:
    out: dict = {}
    if holdout is not None and len(holdout[0]):
        out.update(validate.synthetic(net, holdout[0], holdout[1], device))
    if cfg.val_data:
        out.update(validate.real(net, cfg.val_data, device, short_side=cfg.resolution))
    return out


def format_record(record: dict) -> str:
    return " ".join(
        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()
    )


if __name__ == "__main__":
    run_cli(main, PROG)
