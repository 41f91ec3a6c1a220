"""One shard, start to finish, in one process: latents -> G(z), G(z + r h) -> masks -> filters
-> encoded samples -> published tar -> manifest record. A Ray actor holds one `ShardMaker`
(model loaded once) and calls `make_shard` once per shard; tests call it directly.

Shard i is a pure function of (config, i): latents come from SeedSequence([seed, i]) and
samples are accepted in draw order until the shard is full.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from generator.filters import ACCEPTED, REJECTED_BY, apply_filters
from generator.latents import ShardLatents
from generator.manifest import make_record, write_record
from generator.masks import make_masks
from generator.shards import publish_shard
from segcore import schema
from segcore.samples import encode_sample

_REASON_NAME = {code: name for name, code in REJECTED_BY.items()}


class ShardFailed(RuntimeError):
    """A shard could not be filled (acceptance too low for max_draws_per_sample)."""


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] in [-1, 1] -> uint8 [N, H, W, 3] RGB, round((x + 1) / 2 * 255)."""
    x = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().cpu().numpy()


class ShardMaker:
    def __init__(
        self,
        config,
        embeddings: np.ndarray | None = None,
        device="cpu",
        gan=None,
        encode_threads: int = 2,
    ):
        from generator.gans import load_gan

        self.config = config
        self.embeddings = embeddings
        self.gan = gan if gan is not None else load_gan(config.gan, config.weights, device)
        self.device = self.gan.device
        vec = torch.tensor(config.direction, dtype=torch.float32, device=self.device)
        self.delta = config.shift * vec
        self.operators = (
            torch.tensor(config.operators, dtype=torch.float32, device=self.device)
            if config.operators is not None
            else None
        )
        self.filters = config.filter_settings()
        self.encode_threads = encode_threads
        self.timers: Counter = Counter()  # seconds per stage, read by the benchmark

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @torch.no_grad()
    def samples(self, index: int, on_accept=None):
        """-> (images uint8 [K,H,W,3], masks bool [K,H,W], metas, attempts, rejected).

        `on_accept(image, mask, meta)` is called for each kept sample as soon as it is kept
        (make_shard encodes there, on threads, while the next batch is generated); with it the
        pixels are handed over, not kept, and images and masks come back as None (a shard's
        worth of uint8 images is not held twice)."""
        cfg = self.config
        k = cfg.samples_per_shard
        latents = ShardLatents(cfg.seed, index, self.gan.latent_dim, self.embeddings, cfg.alpha)
        images, masks, metas = [], [], []
        rejected = {name: 0 for name in REJECTED_BY}
        attempts = 0
        while len(metas) < k:
            if attempts >= k * cfg.max_draws_per_sample:
                raise ShardFailed(
                    f"shard {index}: only {len(metas)} of {k} samples passed the filters in "
                    f"{attempts} draws; check the direction, or relax --filters"
                )
            t0 = time.perf_counter()
            z_np, source = latents.draw(cfg.batch_size)
            z = torch.from_numpy(z_np).to(self.device)
            n = len(z)
            t1 = time.perf_counter()
            # G(z) and G(z + r h) in ONE batched forward (eval mode: no batch dependence)
            out = self.gan.generate(torch.cat([z, z + self.delta]))
            self._sync()
            t2 = time.perf_counter()
            img, shifted = out[:n], out[n:]
            mask = make_masks(cfg.mask, img, shifted, self.operators, cfg.bright_operator)
            mask_np = mask.cpu().numpy()
            t3 = time.perf_counter()
            mask_np, reason = apply_filters(mask_np, shifted, self.filters)
            t4 = time.perf_counter()
            img_u8 = to_uint8(img)
            t5 = time.perf_counter()
            for j in range(n):
                attempts += 1
                if reason[j] != ACCEPTED:
                    rejected[_REASON_NAME[int(reason[j])]] += 1
                    continue
                metas.append(
                    {
                        "shard": index,
                        "sample": len(metas),
                        "seed": cfg.seed,
                        "draw": attempts - 1,  # position in the shard's latent stream
                        "source_index": int(source[j]),  # row of the embeddings, -1 for the prior
                    }
                )
                if on_accept is not None:
                    on_accept(img_u8[j], mask_np[j], metas[-1])
                else:
                    images.append(img_u8[j])
                    masks.append(mask_np[j])
                if len(metas) == k:
                    break
            self.timers["latents"] += t1 - t0
            self.timers["generator"] += t2 - t1
            self.timers["masks"] += t3 - t2
            self.timers["filters"] += t4 - t3
            self.timers["to_uint8"] += t5 - t4
        if on_accept is not None:
            return None, None, metas, attempts, rejected
        return np.stack(images), np.stack(masks), metas, attempts, rejected

    def encode_sample(self, image, mask, meta) -> dict:
        return encode_sample(
            schema.sample_key(meta["shard"], meta["sample"]),
            image,
            mask,
            meta,
            jpeg_quality=self.config.jpeg_quality,
            png_compression=self.config.png_compression,
        )

    def make_shard(self, index: int, out: str, crash_hook=None) -> dict:
        """Generate, write, publish shard `index` under `out`, then its manifest record."""
        t0 = time.perf_counter()
        # JPEG/PNG encoding runs on threads (OpenCV releases the GIL) while the GAN renders
        # the next batch; only the wait left after the last batch adds to the shard's time.
        with ThreadPoolExecutor(max(1, self.encode_threads)) as pool:
            futures = []

            def submit(image, mask, meta):
                futures.append(pool.submit(self.encode_sample, image, mask, meta))

            _, _, metas, attempts, rejected = self.samples(index, on_accept=submit)
            if crash_hook is not None:
                crash_hook(index)  # tests: die mid-shard, after the work, before publishing
            t1 = time.perf_counter()
            encoded = [f.result() for f in futures]  # in sample order
        t2 = time.perf_counter()
        size, sha = publish_shard(encoded, out, index)
        t3 = time.perf_counter()
        self.timers["encode"] += t2 - t1
        self.timers["tar_upload"] += t3 - t2
        passed_size = attempts - rejected["mask_size"]
        record = make_record(
            index,
            len(metas),
            attempts,
            rejected,
            size,
            sha,
            self.config.hash,
            acceptance={
                "overall": len(metas) / attempts,
                "mask_size": passed_size / attempts,
                "histogram": (passed_size - rejected["histogram"]) / max(passed_size, 1),
            },
            seconds=round(t3 - t0, 3),
        )
        write_record(out, record)
        return record
