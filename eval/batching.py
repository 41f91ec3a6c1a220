"""Streaming prediction in chunks, shared by `Predictor.predict_iter` and the eval reports
(no torch import: baselines use it too)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from eval.errors import PredictionError
from eval.protocol import BATCH_SIZE


def predict_stream(
    predictor, items: Iterable, image_of: Callable = lambda x: x, chunk: int | None = None
) -> Iterator[tuple]:
    """(item, map) for each of `items`, in order, predicted `chunk` at a time with the
    predictor's `predict_batch` (a Predictor or a baseline; default chunk 4 x its batch_size).

    When a chunk fails on a bad image or model output (ValueError), it is predicted again one
    item at a time: the items before the bad one are still delivered (`eval predict` writes
    them), then the bad item's own error is raised with its position in the stream. If every
    item passes alone, the chunk's error is raised all the same (a model that fails only on
    batches is an error, not something to work around one image at a time)."""
    chunk = chunk or 4 * getattr(predictor, "batch_size", BATCH_SIZE)
    buf: list = []
    done = 0
    for item in items:
        buf.append(item)
        if len(buf) >= chunk:
            yield from _predict_chunk(predictor, buf, image_of, done)
            done += len(buf)
            buf = []
    if buf:
        yield from _predict_chunk(predictor, buf, image_of, done)


def _predict_chunk(predictor, buf: list, image_of: Callable, first: int) -> Iterator[tuple]:
    try:
        maps = predictor.predict_batch([image_of(i) for i in buf])
    except ValueError as e:  # bad image or model output (PredictionError): find the item below
        chunk_error = e
    else:
        yield from zip(buf, maps, strict=True)
        return
    for pos, item in enumerate(buf, start=first):
        yield item, _predict_one(predictor, item, image_of, pos)
    last = first + len(buf) - 1
    if type(chunk_error) not in (ValueError, PredictionError):  # other subclasses: as they are
        raise chunk_error
    raise type(chunk_error)(
        f"{chunk_error} (items {first}..{last} of the stream failed as a batch, "
        "yet each passed alone)"
    ) from chunk_error


def _predict_one(predictor, item, image_of: Callable, pos: int):
    try:
        return predictor.predict_batch([image_of(item)])[0]
    except ValueError as e:
        if type(e) not in (ValueError, PredictionError):  # other subclasses: as they are
            raise
        raise type(e)(f"{e} (item {pos} of the stream)") from e
