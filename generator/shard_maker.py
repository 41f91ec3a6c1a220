"""One shard, start to finish, in one process: latents -> G(z), G(z + r h) -> masks -> filters
-> encoded samples -> published tar -> manifest record. A Ray actor holds one `ShardMaker`
(model loaded once) and calls `make_shard` once per shard, two at a time; tests call it directly.

Shard i is a pure function of (config, i): latents come from SeedSequence([seed, i]) and
samples are accepted in draw order until the shard is full.

The work of a shard runs as a pipeline (docs/generator.md, "Pipeline"):
- the calling thread renders batches: latents, then G(z) and G(z + r h) in one forward, under
  a lock shared by all the shards in flight (the oldest shard first), and queues them;
- a stage thread runs everything that can run on the GAN's device on each batch (masks,
  connected components, mask size, histogram, uint8 conversion of the kept images), brings
  the kept images and masks to the host in one transfer, and hands them to the encoder pool;
- the encoder pool (`cpus_per_worker` threads; OpenCV releases the GIL) encodes JPEG/PNG;
- `make_shard` then waits for its encodes, builds the tar, publishes it and writes the
  manifest record. Called from two threads (the actor's concurrency), one shard's tail runs
  while the next shard renders.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from generator.filters import ACCEPTED, REJECTED_BY, filter_batch
from generator.gans.base import generate_images, map_prior, num_classes
from generator.latents import ShardLatents
from generator.manifest import UPLOAD_DEADLINE, make_record, write_record
from generator.masks import make_masks
from generator.pipeline import (
    CPU_CHUNK,
    GanTurns,
    ShardState,
    Timers,
    packed_to_host,
    to_uint8,
    to_uint8_bgr,
)
from generator.shards import publish_shard
from segcore import schema
from segcore.samples import encode_sample

REASON_NAME = {code: name for name, code in REJECTED_BY.items()}
PREFETCH = 2  # rendered batches a shard may queue ahead of its stage thread
ENCODE_CHUNK = 16  # kept samples per encoder task
__all__ = ["ShardFailed", "ShardMaker", "to_uint8", "to_uint8_bgr"]


class ShardFailed(RuntimeError):
    """A shard could not be filled (acceptance too low for max_draws_per_sample)."""


class ShardMaker:
    def __init__(
        self,
        config,
        embeddings: np.ndarray | None = None,
        device="cpu",
        gan=None,
        cpus_per_worker: int = 1,
        upload_deadline: float = UPLOAD_DEADLINE,
    ):
        from generator.gans import load_gan

        self.config = config
        self.embeddings = embeddings
        self.gan = gan if gan is not None else load_gan(config.gan, config.weights, device)
        self.device = self.gan.device
        self.num_classes = num_classes(self.gan)  # 0: unconditional (no class per sample)
        vec = torch.tensor(config.direction, dtype=torch.float32, device=self.device)
        self.delta = config.shift * vec
        self.operators = (
            torch.tensor(config.operators, dtype=torch.float32, device=self.device)
            if config.operators is not None
            else None
        )
        self.filters = config.filter_settings()
        # --mask labeler: the masks come from a saliency model on G(z), on the GAN's device
        self.labeler = None
        if config.labeler is not None:
            from generator.labelers import load_labeler

            self.labeler = load_labeler(
                config.labeler, config.labeler_weights, self.device, config.labeler_sha256
            )
        self.cpus_per_worker = max(1, int(cpus_per_worker))
        # a store outage: the finished shard's bytes stay in memory and only the upload is
        # retried for this many seconds (no GAN work is redone for it)
        self.upload_deadline = float(upload_deadline)
        self.pool = ThreadPoolExecutor(self.cpus_per_worker, thread_name_prefix="encode")
        self.timers = Timers()  # seconds per stage, read by the benchmarks
        self._turns = GanTurns()
        self._tickets = itertools.count()

    # -- the stages of one batch -------------------------------------------------------------

    def _masks(self, img: torch.Tensor, shifted: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if self.labeler is not None:
            return self.labeler.masks(img)
        if self.device.type == "cpu" and cfg.mask == "lighter":
            # elementwise: the same values in chunks that stay in the CPU's cache
            return torch.cat(
                [
                    make_masks("lighter", img[i : i + CPU_CHUNK], shifted[i : i + CPU_CHUNK])
                    for i in range(0, len(img), CPU_CHUNK)
                ]
            )
        ops = (self.operators, cfg.bright_operator)
        return make_masks(cfg.mask, img, shifted, *ops, threshold=cfg.bg_threshold)

    def _stage(self, out: torch.Tensor, need: int):
        """One rendered batch -> (reason [n] int8 numpy, kept positions (at most `need`),
        their uint8 images as RGB views [K, H, W, 3], their masks bool [K, H, W])."""
        n = len(out) // 2 if self.labeler is None else len(out)  # labeler: G(z) only
        img, shifted = out[:n], out[n:]
        t0 = time.perf_counter()
        mask = self._masks(img, shifted)
        t1 = time.perf_counter()
        mask, reason = filter_batch(mask, shifted, self.filters)
        reason_np = reason.cpu().numpy()
        t2 = time.perf_counter()
        take = np.flatnonzero(reason_np == ACCEPTED)[:need]
        if len(take) == n:  # all kept: no copies
            bgr, kept_masks = to_uint8_bgr(img), mask
        else:
            idx = torch.from_numpy(take).to(self.device)
            bgr, kept_masks = to_uint8_bgr(img.index_select(0, idx)), mask.index_select(0, idx)
        if self.device.type != "cpu" and len(take):  # one transfer: images and masks together
            bgr, kept_masks = packed_to_host(bgr, kept_masks)
        images = bgr.numpy()[..., ::-1]
        t3 = time.perf_counter()
        self.timers.add("masks", t1 - t0)
        self.timers.add("filters", t2 - t1)
        self.timers.add("to_uint8", t3 - t2)
        return reason_np, take, images, kept_masks.numpy()

    def _stage_loop(self, index, batches: queue.Queue, state: ShardState, on_batch) -> None:
        """The stage thread of one shard: takes rendered batches until None; after an error or
        once the shard is full it only drains the queue."""
        cfg = self.config
        while (item := batches.get()) is not None:
            out, source, labels = item
            if state.error is not None or state.full:
                continue
            try:
                cpu = time.thread_time()
                reason, take, images, masks = self._stage(out, state.k - len(state.metas))
                self.timers.add("stages_cpu", time.thread_time() - cpu)
                t0 = time.perf_counter()
                n = len(reason)
                # draws consumed: up to the sample that fills the shard, else the whole batch
                used = int(take[-1]) + 1 if len(state.metas) + len(take) >= state.k else n
                first = state.staged
                metas = [
                    {
                        "shard": index,
                        "sample": len(state.metas) + i,
                        "seed": cfg.seed,
                        "draw": first + int(j),  # position in the shard's latent stream
                        "source_index": int(source[j]),  # embeddings row, -1 for the prior
                    }
                    for i, j in enumerate(take)
                ]
                if labels is not None:  # a class-conditional GAN: the class of each sample
                    for meta, j in zip(metas, take, strict=True):
                        meta["class"] = int(labels[j])
                if len(metas):
                    on_batch(images, masks, metas)
                counts = np.bincount(reason[:used], minlength=max(REJECTED_BY.values()) + 1)
                with state.cond:
                    for code, name in REASON_NAME.items():
                        state.rejected[name] += int(counts[code])
                    state.metas += metas
                    state.attempts = first + used
                    state.staged = first + n
                    state.cond.notify_all()
                self.timers.add("accept", time.perf_counter() - t0)
            except BaseException as err:  # handed to the rendering thread, which raises it
                with state.cond:
                    state.error = err
                    state.cond.notify_all()

    # -- one shard ---------------------------------------------------------------------------

    @torch.no_grad()
    def _run(self, index: int, on_batch) -> ShardState:
        """Render, stage and hand over the kept samples of shard `index` (on_batch(images,
        masks, metas) per batch, in draw order); -> the final state."""
        cfg = self.config
        state = ShardState(cfg.samples_per_shard)
        latents = ShardLatents(cfg.seed, index, self.gan.latent_dim, self.embeddings, cfg.alpha)
        limit = state.k * cfg.max_draws_per_sample
        batches: queue.Queue = queue.Queue(maxsize=PREFETCH)
        stage = threading.Thread(
            target=torch.no_grad()(self._stage_loop),
            args=(index, batches, state, on_batch),
            name=f"stages-{index}",
            daemon=True,
        )
        stage.start()
        ticket = next(self._tickets)
        rendered = 0
        try:
            while rendered < limit:
                with state.cond:
                    state.cond.wait_for(lambda n=rendered: state.may_go_on(n))
                    if state.full or state.error is not None:
                        break
                with self._turns.turn(ticket):
                    t0 = time.perf_counter()
                    z_np, source = latents.draw(cfg.batch_size)
                    # a conditional GAN's classes, from the shard's own class stream
                    labels = (
                        latents.draw_labels(len(z_np), self.num_classes, cfg.classes)
                        if self.num_classes
                        else None
                    )
                    z = torch.from_numpy(z_np).to(self.device)
                    if self.embeddings is None:  # prior draws go through the prior mapping
                        z = map_prior(self.gan, z, cfg.truncation)
                    t1 = time.perf_counter()
                    # G(z) and G(z + r h) in ONE batched forward (eval mode: no batch dependence)
                    batch = z if self.labeler is not None else torch.cat([z, z + self.delta])
                    y = None
                    if labels is not None:  # each sample's class for G(z) and G(z + r h)
                        y = torch.from_numpy(labels).to(self.device).repeat(len(batch) // len(z))
                    out = generate_images(self.gan, batch, y)
                    t2 = time.perf_counter()
                self.timers.add("latents", t1 - t0)
                self.timers.add("generator", t2 - t1)
                rendered += len(z_np)
                batches.put((out, source, labels))
        finally:
            batches.put(None)
            stage.join()
        if state.error is not None:
            raise state.error
        if not state.full:
            raise ShardFailed(
                f"shard {index}: only {len(state.metas)} of {state.k} samples passed the "
                f"filters in {state.attempts} draws; check the direction, or relax --filters"
            )
        return state

    def samples(self, index: int, on_accept=None):
        """-> (images uint8 [K,H,W,3], masks bool [K,H,W], metas, attempts, rejected).

        `on_accept(image, mask, meta)` is called for each kept sample, in order, as soon as it
        is kept; with it the pixels are handed over, not kept, and images and masks come back
        as None (a shard's worth of uint8 images is not held twice)."""
        images, masks = [], []

        def on_batch(batch_images, batch_masks, metas):
            if on_accept is None:
                images.append(batch_images)
                masks.append(batch_masks)
                return
            for image, mask, meta in zip(batch_images, batch_masks, metas, strict=True):
                on_accept(image, mask, meta)

        state = self._run(index, on_batch)
        if on_accept is not None:
            return None, None, state.metas, state.attempts, state.rejected
        return (
            np.concatenate(images),
            np.concatenate(masks),
            state.metas,
            state.attempts,
            state.rejected,
        )

    def encode_sample(self, image, mask, meta) -> dict:
        return encode_sample(
            schema.sample_key(meta["shard"], meta["sample"]),
            image,
            mask,
            meta,
            jpeg_quality=self.config.jpeg_quality,
            png_compression=self.config.png_compression,
            image_format=self.config.image_format,
        )

    def _encode_many(self, images, masks, metas) -> list[dict]:
        cpu = time.thread_time()
        out = [self.encode_sample(*sample) for sample in zip(images, masks, metas, strict=True)]
        self.timers.add("encode_cpu", time.thread_time() - cpu)
        return out

    def make_shard(self, index: int, out: str, crash_hook=None) -> dict:
        """Generate, write, publish shard `index` under `out`, then its manifest record.
        Safe to call from several threads at once (the GAN renders one batch at a time)."""
        t0 = time.perf_counter()
        futures = []

        def on_batch(images, masks, metas):
            for i in range(0, len(metas), ENCODE_CHUNK):
                part = slice(i, i + ENCODE_CHUNK)
                futures.append(
                    self.pool.submit(self._encode_many, images[part], masks[part], metas[part])
                )

        state = self._run(index, on_batch)
        if crash_hook is not None:
            crash_hook(index)  # tests: die mid-shard, after the work, before publishing
        t1 = time.perf_counter()
        encoded = [sample for f in futures for sample in f.result()]  # in sample order
        t2 = time.perf_counter()
        size, sha = publish_shard(encoded, out, index, deadline_s=self.upload_deadline)
        t3 = time.perf_counter()
        self.timers.add("encode", t2 - t1)
        self.timers.add("tar_upload", t3 - t2)
        attempts, rejected = state.attempts, state.rejected
        passed_size = attempts - rejected["mask_size"]
        record = make_record(
            index,
            len(state.metas),
            attempts,
            rejected,
            size,
            sha,
            self.config.hash,
            acceptance={
                "overall": len(state.metas) / attempts,
                "mask_size": passed_size / attempts,
                "histogram": (passed_size - rejected["histogram"]) / max(passed_size, 1),
            },
            seconds=round(t3 - t0, 3),
            **({"supervised_masks": True} if self.labeler is not None else {}),
        )
        write_record(out, record, self.upload_deadline)
        return record
