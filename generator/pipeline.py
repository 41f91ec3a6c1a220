"""Pieces of the shard pipeline (generator/shard_maker.py): the uint8 conversion of images, the
shared GAN turn of the shards in flight, one shard's accepted state, and the stage timers."""

from __future__ import annotations

import heapq
import threading
from collections import Counter
from contextlib import contextmanager

import numpy as np
import torch

from generator.filters import REJECTED_BY

CPU_CHUNK = 8  # images per elementwise step on the CPU (the temporaries stay in the cache)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] in [-1, 1] -> uint8 [N, H, W, 3] RGB, round((x + 1) / 2 * 255)."""
    return np.ascontiguousarray(to_uint8_bgr(images).cpu().numpy()[..., ::-1])


def to_uint8_bgr(images: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] in [-1, 1] -> uint8 [N, H, W, 3] holding B, G, R in memory order, on the
    images' device; `[..., ::-1]` of it (a view) is the RGB image. The JPEG encoder wants BGR,
    so it reads this memory without a copy. round((clamp(x) + 1) * 127.5), half to even."""
    if images.device.type == "cpu":
        return torch.from_numpy(_to_uint8_bgr_cpu(images))
    return _to_uint8_bgr_torch(images)


def _to_uint8_bgr_torch(images: torch.Tensor) -> torch.Tensor:
    """The whole batch at once in torch (the GPU's path)."""
    x = ((images.clamp(-1, 1) + 1) * 127.5).round_().to(torch.uint8)
    return x.flip(1).permute(0, 2, 3, 1).contiguous()


def _to_uint8_bgr_cpu(images: torch.Tensor) -> np.ndarray:
    """The same bytes on the CPU, a few images at a time (the temporaries stay in the cache),
    with OpenCV interleaving the channel planes."""
    import cv2

    n, _, h, w = images.shape
    out = np.empty((n, h, w, 3), np.uint8)
    for start in range(0, n, CPU_CHUNK):
        x = images[start : start + CPU_CHUNK].clamp(-1, 1).add_(1).mul_(127.5).round_()
        planes = x.to(torch.uint8).numpy()
        for i, rgb in enumerate(planes):
            cv2.merge([rgb[2], rgb[1], rgb[0]], dst=out[start + i])
    return out


class Timers(Counter):
    """Seconds per stage, summed over threads (read by the benchmarks): wall time, except
    `stages_cpu` and `encode_cpu`, the CPU time of the stage thread in the device stages and of
    the encoder threads (without the helper threads torch or OpenCV may start)."""

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self[name] += seconds


class GanTurns:
    """Serialises the GAN calls of the shards in flight; the oldest shard goes first, so a
    newer shard renders only while the older one waits for its stages or is done."""

    def __init__(self):
        self._cond = threading.Condition()
        self._busy = False
        self._waiting: list[int] = []

    @contextmanager
    def turn(self, ticket: int):
        with self._cond:
            heapq.heappush(self._waiting, ticket)
            self._cond.wait_for(lambda: not self._busy and self._waiting[0] == ticket)
            heapq.heappop(self._waiting)
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()


class ShardState:
    """What the stage thread has accepted so far for one shard (guarded by `cond`)."""

    def __init__(self, k: int):
        self.k = k
        self.cond = threading.Condition()
        self.metas: list[dict] = []
        self.attempts = 0  # draws consumed, in order, up to the shard's last kept sample
        self.staged = 0  # draws the stage thread has looked at
        self.rejected = {name: 0 for name in REJECTED_BY}
        self.error: BaseException | None = None

    @property
    def full(self) -> bool:
        return len(self.metas) >= self.k

    def may_go_on(self, rendered: int) -> bool:
        """Should the rendering thread stop waiting: the shard is full, failed, or may need
        more than the batches in flight?"""
        return self.full or self.error is not None or not self.expects_enough(rendered)

    def expects_enough(self, rendered: int) -> bool:
        """Do the batches rendered but not yet staged probably fill the shard, at the shard's
        acceptance so far (1 before any batch)? Then rendering waits for the stages instead of
        making a batch that would be thrown away."""
        rate = len(self.metas) / self.staged if self.staged else 1.0
        return len(self.metas) + rate * (rendered - self.staged) >= self.k


def packed_to_host(images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images [K, H, W, 3] and bool masks [K, H, W] on a device -> both on the host, in
    one copy: packed side by side into one uint8 buffer, split again on the host (views)."""
    k, split = len(images), images[0].numel()
    both = torch.cat([images.reshape(k, -1), masks.reshape(k, -1).to(torch.uint8)], 1).cpu()
    return both[:, :split].view(images.shape), both[:, split:].view(masks.shape).bool()
