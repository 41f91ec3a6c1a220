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

Batches are built inside the dataset (`DataLoader(batch_size=None)`), JPEG/PNG are decoded in
the workers. A sample or shard that cannot be read is skipped with a counted warning (a
webdataset exception handler); past `max_bad_fraction`, the worker reports a clear error.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from segcore import samples, storage
from segcore.cli import UsageError
from trainer import tarstream

_SHARD_INDEX = re.compile(r"shard-(\d+)\.tar$")
# The error check waits for this many failures, so one bad sample early on is not "100%".
MIN_BAD_FOR_ERROR = 10


# ---------------------------------------------------------------------------------------------
# Shard lists


def expand_shards(spec: str) -> list[str]:
    """Brace-expand `spec` (several patterns may be separated by whitespace), in order."""
    from braceexpand import braceexpand

    urls: list[str] = []
    for part in spec.split():
        urls.extend(braceexpand(part))
    return urls


def check_shards_exist(urls: list[str], what: str = "--shards") -> None:
    """Every listed shard must exist: one listing per folder (cheap on object storage)."""
    if not urls:
        raise UsageError(f"{what}: the pattern matches no shard names")
    by_folder: dict[str, list[str]] = {}
    for url in urls:
        folder, _, name = url.rpartition("/")
        by_folder.setdefault(folder or ".", []).append(name)
    missing: list[str] = []
    for folder, names in by_folder.items():
        try:
            present = set(storage.list_names(folder))
        except Exception as err:
            raise UsageError(f"{what}: cannot list {storage.redact(folder)} ({err})") from err
        missing += [storage.join(folder, n) for n in names if n not in present]
    if len(missing) == len(urls):
        raise UsageError(
            f"{what}: no shards match ({len(urls)} names expanded, none exist; "
            f"first: {storage.redact(urls[0])})"
        )
    if missing:
        raise UsageError(
            f"{what}: {len(missing)} of {len(urls)} shards do not exist (first missing: "
            f"{storage.redact(missing[0])}); narrow the brace range to the finished shards"
        )


def shard_index(url: str) -> int | None:
    m = _SHARD_INDEX.search(url)
    return int(m.group(1)) if m else None


def parse_index_set(spec: str) -> set[int]:
    """'498,499' or '490-499' or '0,10-12' -> a set of shard indices."""
    out: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise UsageError(f"--val-shards: {part!r} is not an index or a range like 490-499")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise UsageError(f"--val-shards: empty range {part!r}")
        out.update(range(lo, hi + 1))
    return out


def split_holdout(urls: list[str], val_spec: str) -> tuple[list[str], list[str]]:
    """(training shards, validation shards). The training stream never sees a held-out shard.

    `val_spec`: "auto" (the last shard of the list, if there are at least 2), "none",
    shard indices of the `--shards` list ("499", "490-499"), or a separate shard pattern
    (anything with a '/' or '.tar'); shards in both are removed from training.
    """
    if val_spec == "none":
        return urls, []
    if val_spec == "auto":
        return (urls[:-1], urls[-1:]) if len(urls) >= 2 else (urls, [])
    if "/" in val_spec or ".tar" in val_spec:
        val = expand_shards(val_spec)
        check_shards_exist(val, "--val-shards")
        held = set(val)
        train = [u for u in urls if u not in held]
    else:
        wanted = parse_index_set(val_spec)
        val = [u for u in urls if shard_index(u) in wanted]
        found = {shard_index(u) for u in val}
        if found != wanted:
            absent = sorted(wanted - found)[:5]
            raise UsageError(f"--val-shards: shard indices {absent} are not in --shards")
        train = [u for u in urls if shard_index(u) not in wanted]
    if not train:
        raise UsageError("--val-shards holds out every shard; nothing is left to train on")
    return train, val


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
    """A webdataset exception handler that counts, warns (rate-limited) and continues."""

    def __init__(self, where: str = ""):
        self.bad = 0
        self.where = where

    def __call__(self, exn: BaseException) -> bool:
        self.bad += 1
        if self.bad <= 5 or self.bad % 100 == 0:
            msg = str(exn).splitlines()[0] if str(exn) else type(exn).__name__
            print(
                f"trainer: warning: skipped unreadable data{self.where} "
                f"(#{self.bad}): {type(exn).__name__}: {storage.redact(msg)[:300]}",
                file=sys.stderr,
            )
        return True  # continue with the next sample / shard


def iter_shard(url: str, handler: ErrorCounter) -> Iterator[dict]:
    """Raw samples ({'__key__', 'jpg', 'png', ...}) of one shard, in order.

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
    training side; ValueError if unusable (segcore.samples.decode_sample)."""
    import cv2

    img, mask = samples.decode_sample(sample)
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
    ):
        super().__init__()
        self.spec, self.total, self.n_workers = spec, total, max(1, n_workers)
        self.start_step = start_step
        self.positions = dict(positions or {})

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
        good = 0
        draw, offset = self.positions.get(logical, (0, 0))
        images = masks = None
        filled = made = 0
        while made < n_batches:
            url = draw_shard(spec, logical, draw)
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
                    counter(err)
                else:
                    filled += 1
                    good += 1
                if counter.bad >= MIN_BAD_FOR_ERROR and counter.bad > spec.max_bad_fraction * (
                    good + counter.bad
                ):
                    yield {"error": self._too_many(counter.bad, good)}
                    return
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
            draw, offset = draw + 1, 0
            if counter.bad >= MIN_BAD_FOR_ERROR and good == 0:
                yield {"error": self._too_many(counter.bad, good)}
                return

    def _too_many(self, bad: int, good: int) -> str:
        return (
            f"too much unreadable data on rank {self.spec.rank}: {bad} failures vs {good} good "
            f"samples (limit --max-bad-fraction {self.spec.max_bad_fraction}); check the shards"
        )


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
    """(images [N,R,R,3] uint8, masks [N,R,R] uint8, failures) from the first samples."""
    counter = ErrorCounter(" (validation shards)")
    images, masks = [], []
    for url in urls:
        for raw in iter_shard(url, counter):
            try:
                img, mask = decode_sample(raw, resolution)
            except Exception as err:
                counter(err)
                continue
            images.append(img)
            masks.append(mask)
            if len(images) >= max_samples:
                break
        if len(images) >= max_samples:
            break
    if not images:
        shape = (0, resolution, resolution)
        return np.zeros((*shape, 3), np.uint8), np.zeros(shape, np.uint8), counter.bad
    return np.stack(images), np.stack(masks), counter.bad
