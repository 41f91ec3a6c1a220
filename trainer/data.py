"""Training samples from the generator's WebDataset shards (segcore/schema.py), local or s3://.

The stream, per rank and per DataLoader worker, is a pure function of (seed, rank, logical
worker, draw index): draw j picks a shard uniformly with replacement (resampled, as
`wds.ResampledShards`) from an RNG seeded by (seed, rank, worker, j), and reads its samples in
order (they are i.i.d. GAN draws, so in-shard order carries no bias). Every batch carries its
position (worker, j, samples read of shard j), the loop records the position of the last batch
it consumed, and a resume restarts each worker exactly there. Unlike webdataset's
time-seeded `ResampledShards` and its `.with_epoch`, each worker yields exactly its share of
the remaining steps, so every rank runs the same number of steps and the loop ends by
exhausting the DataLoader, never by breaking out of it (a clean DDP exit needs that).

Batches are built inside the dataset (`DataLoader(batch_size=None)`), images (JPEG or PNG,
segcore/schema.py) and masks are decoded in the workers. A bad sample (undecodable, or a mask outside the schema's {0, 255}) is skipped
and counted; a shard that cannot be opened or breaks off counts as the samples it should have
held and did not give (trainer/shardlist.py). `--max-bad-fraction` bounds bad / (bad + good)
over the whole run, so the verdict does not depend on where the bad samples fall: a worker
stops early only once its own count already puts the whole run over the limit.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from segcore import samples, storage
from segcore.cli import UsageError
from trainer import tarstream
from trainer.shardlist import ExpectedCounts


def too_many_bad(bad: int, good: int, fraction: float) -> bool:
    """The `--max-bad-fraction` verdict: bad samples / samples read > fraction."""
    return bad > fraction * (bad + good)


# ---------------------------------------------------------------------------------------------
# Opening shards: local files, or any fsspec URL (s3://) with credentials from AWS_* env only


def register_fsspec_gopen(schemes: tuple[str, ...] = ("s3", "s3a", "gs", "gcs")) -> None:
    """Let webdataset's `gopen` open object-storage URLs through fsspec (no `pipe:` shell)."""
    import webdataset as wds

    def gopen_fsspec(url, mode="rb", bufsize=8192, **kw):
        if mode != "rb":
            raise ValueError(f"{storage.redact(url)}: the trainer only reads shards")
        fs, path = storage.filesystem(url)
        return fs.open(path, "rb", block_size=1 << 22)

    for scheme in schemes:
        wds.gopen_schemes[scheme] = gopen_fsspec


class ErrorCounter:
    """A webdataset exception handler that counts, warns (rate-limited) and continues.

    `bad`: bad samples. A duplicate file is one; any other error a shard reader reports ends
    the shard and sets `broken` (`end_shard` then counts the samples the shard lost).
    """

    def __init__(self, where: str = ""):
        self.bad = 0
        self.where = where
        self.broken = False
        self.warned = 0

    def __call__(self, exn: BaseException) -> bool:
        if isinstance(exn, tarstream.DuplicateFile):
            self.bad += 1
        else:
            self.broken = True
        self.warn(exn)
        return True  # continue with the next sample / shard

    def sample_error(self, exn: BaseException) -> None:
        self.bad += 1
        self.warn(exn)

    def end_shard(self, read: int, expected: ExpectedCounts | None, url: str) -> None:
        """After a shard gave `read` samples: a broken or empty shard counts the samples it
        should have held and did not give (at least 1)."""
        if self.broken or read == 0:
            self.bad += max(1, expected(url) - read) if expected else 1
        self.broken = False

    def warn(self, exn: BaseException) -> None:
        self.warned += 1
        if self.warned <= 5 or self.warned % 100 == 0:
            msg = str(exn).splitlines()[0] if str(exn) else type(exn).__name__
            print(
                f"trainer: warning: skipped unreadable data{self.where} "
                f"(#{self.warned}): {type(exn).__name__}: {storage.redact(msg)[:300]}",
                file=sys.stderr,
            )


def iter_shard(url: str, handler: ErrorCounter) -> Iterator[dict]:
    """Raw samples ({'__key__', 'jpg' or 'image.png', 'png', ...}) of one shard, in order.

    A shard that cannot be opened, or breaks off, ends early after one counted failure. The
    tar is parsed by trainer/tarstream.py (the samples webdataset's tar iterators give, at a
    fraction of their CPU time).
    """
    import webdataset as wds

    register_fsspec_gopen()
    try:
        stream = wds.gopen(url, "rb")
    except Exception as err:
        handler(err)
        return
    try:
        yield from tarstream.iter_samples(stream, url, handler)
    finally:
        stream.close()


def decode_sample(sample: dict, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 [R,R,3], mask uint8 [R,R] as stored) from a raw sample, resized to the
    training side; ValueError if unusable (segcore.samples.decode_sample) or if the mask holds
    a value other than 0 and 255 (segcore/schema.py: a 0/1 mask would train as background)."""
    import cv2

    img, mask = samples.decode_sample(sample)
    if ((mask - np.uint8(1)) < 254).any():  # uint8 wraps: 0 -> 255, 255 -> 254, 1..254 -> <254
        values = np.unique(mask)[:4].tolist()
        raise ValueError(
            f"sample {sample.get('__key__')!r}: mask values {values} are not all 0 or 255"
        )
    if img.shape[:2] != (resolution, resolution):
        # Shards hold the GAN's resolution; the U-Net trains at `resolution` (--resolution).
        img = cv2.resize(img, (resolution, resolution), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, (resolution, resolution), interpolation=cv2.INTER_NEAREST)
    return img, mask


# ---------------------------------------------------------------------------------------------
# The training stream


@dataclass(frozen=True)
class StreamSpec:
    urls: tuple[str, ...]
    seed: int
    rank: int
    batch_size: int  # per rank
    resolution: int
    max_bad_fraction: float
    # good samples the whole run reads (steps x global batch): the denominator of the
    # --max-bad-fraction verdict; 0: this stream's own batches
    run_samples: int = 0


def draw_shard(spec: StreamSpec, worker: int, draw: int) -> str:
    """The shard read at draw `draw` by logical worker `worker` of this rank: a pure function."""
    rng = np.random.default_rng([spec.seed, spec.rank, worker, draw])
    return spec.urls[int(rng.integers(len(spec.urls)))]


def worker_batches(total: int, n_workers: int, worker: int) -> int:
    """Batches physical worker `worker` yields when the DataLoader round-robins `total`."""
    return len(range(worker, total, n_workers))


class ShardStream(IterableDataset):
    """Yields exactly `total` batches for this rank (split over the DataLoader's workers).

    Batch b of the run (b = start_step, start_step+1, ...) comes from logical worker
    b % n_workers; physical worker w of this DataLoader plays logical worker
    (w + start_step) % n_workers, so a resumed loader continues the interleaving exactly.
    `positions[l] = (draw, offset)`: logical worker l resumes at sample `offset` of draw `draw`.
    """

    def __init__(
        self,
        spec: StreamSpec,
        total: int,
        n_workers: int,
        start_step: int = 0,
        positions: dict[int, tuple[int, int]] | None = None,
        bad_before: int = 0,
    ):
        super().__init__()
        self.spec, self.total, self.n_workers = spec, total, max(1, n_workers)
        self.start_step = start_step
        self.positions = dict(positions or {})
        self.bad_before = bad_before  # this rank's bad samples up to the checkpoint
        self.run_samples = spec.run_samples or total * spec.batch_size

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        physical = info.id if info is not None else 0
        if info is not None and info.num_workers != self.n_workers:
            raise RuntimeError(f"built for {self.n_workers} workers, run by {info.num_workers}")
        logical = (physical + self.start_step) % self.n_workers
        n_batches = worker_batches(self.total, self.n_workers, physical)
        if n_batches == 0:
            return
        yield from self._batches(logical, n_batches)

    def _batches(self, logical: int, n_batches: int) -> Iterator[dict]:
        spec = self.spec
        counter = ErrorCounter(f" (rank {spec.rank} worker {logical})")
        expected = ExpectedCounts(spec.urls, count_samples)
        draw, offset = self.positions.get(logical, (0, 0))
        images = masks = None
        filled = made = 0
        while made < n_batches:
            url = draw_shard(spec, logical, draw)
            i = -1
            for i, raw in enumerate(iter_shard(url, counter)):
                if i < offset:
                    continue  # already consumed before the checkpoint
                if images is None:
                    # Each batch gets fresh arrays: the one yielded last may still be in use.
                    images, masks = empty_batch(spec.batch_size, spec.resolution)
                    image_rows, mask_rows = images.numpy(), masks.numpy()
                try:
                    image_rows[filled], mask_rows[filled] = decode_sample(raw, spec.resolution)
                except Exception as err:
                    counter.sample_error(err)
                else:
                    filled += 1
                if filled == spec.batch_size:
                    yield {
                        "image": images,  # [B,R,R,3] uint8
                        "mask": masks,  # [B,R,R] uint8
                        "pos": torch.tensor([logical, draw, i + 1], dtype=torch.int64),
                        "bad": counter.bad,
                    }
                    images = masks = None
                    filled = 0
                    made += 1
                    if made == n_batches:
                        return
                elif self._over_limit(counter.bad):
                    yield {"error": self._too_many(counter.bad)}
                    return
            counter.end_shard(i + 1, expected, url)
            if self._over_limit(counter.bad):
                yield {"error": self._too_many(counter.bad)}
                return
            draw, offset = draw + 1, 0

    def _over_limit(self, bad: int) -> bool:
        """This worker's count alone already puts the whole run over --max-bad-fraction."""
        return too_many_bad(self.bad_before + bad, self.run_samples, self.spec.max_bad_fraction)

    def _too_many(self, bad: int) -> str:
        return too_many_message(self.bad_before + bad, self.run_samples, self.spec)


def too_many_message(bad: int, good: int, spec: StreamSpec) -> str:
    return (
        f"too much unreadable data: {bad} bad samples (undecodable, a mask outside 0/255, or "
        f"lost with an unreadable shard) against the run's {good} good ones is more than "
        f"--max-bad-fraction {spec.max_bad_fraction} of the samples read; check the shards"
    )


def count_samples(url: str) -> int | None:
    """Samples in shard `url`, or None when it does not read whole."""
    counter = ErrorCounter(" (counting a shard)")
    n = sum(1 for _ in iter_shard(url, counter))
    return None if counter.broken else n


def empty_batch(batch: int, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(images [B,R,R,3], masks [B,R,R]) uint8 tensors the decoder writes into in place."""
    return (
        torch.empty((batch, resolution, resolution, 3), dtype=torch.uint8),
        torch.empty((batch, resolution, resolution), dtype=torch.uint8),
    )


def train_loader(dataset: ShardStream, num_workers: int, pin_memory: bool) -> DataLoader:
    # fsspec's async machinery (s3fs: an event loop on an IO thread, live HTTP sessions) does
    # not survive fork(): forked workers reading s3:// hung the parent's next upload (seen
    # here). Remote shards therefore get spawned workers; local ones keep cheap forks.
    remote = any(storage.is_remote(u) for u in dataset.spec.urls)
    if num_workers > 0:
        import cv2

        # The workers are the parallelism. Set here, in the parent, before they fork: calling
        # cv2.setNumThreads in a forked child whose parent already used OpenCV's thread pool
        # deadlocks (seen in the benchmark).
        cv2.setNumThreads(1)
    return DataLoader(
        dataset,
        batch_size=None,  # batches are built inside the dataset
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers > 0 else None,
        multiprocessing_context="spawn" if remote and num_workers > 0 else None,
        # A spawned worker starts a fresh OpenCV: it needs the setting too.
        worker_init_fn=one_cv2_thread if remote and num_workers > 0 else None,
    )


def one_cv2_thread(worker_id: int) -> None:
    """DataLoader worker_init_fn of spawned workers: OpenCV decodes on this worker's thread."""
    import cv2

    cv2.setNumThreads(1)


# ---------------------------------------------------------------------------------------------
# The hold-out set (read once, in order, on rank 0)


def load_holdout(
    urls: list[str], max_samples: int, resolution: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """(images [N,R,R,3] uint8, masks [N,R,R] uint8, bad samples) from the first samples.

    UsageError when a hold-out shard cannot be read (validation would silently measure less
    than asked) or no sample can be used."""
    counter = ErrorCounter(" (validation shards)")
    images, masks = [], []
    for url in urls:
        for raw in iter_shard(url, counter):
            try:
                img, mask = decode_sample(raw, resolution)
            except Exception as err:
                counter.sample_error(err)
                continue
            images.append(img)
            masks.append(mask)
            if len(images) >= max_samples:
                break
        if counter.broken:
            raise UsageError(
                f"--val-shards: cannot read the hold-out shard {storage.redact(url)} (see the "
                "warning above); fix or regenerate it, or choose other --val-shards"
            )
        if len(images) >= max_samples:
            break
    if not images:
        raise UsageError(
            f"--val-shards: no usable sample in {len(urls)} hold-out shard(s) "
            f"({counter.bad} bad); choose other --val-shards, or none"
        )
    return np.stack(images), np.stack(masks), counter.bad
