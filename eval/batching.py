"""Streaming prediction in chunks, shared by `Predictor.predict_iter` and the eval reports
(no torch import: baselines use it too)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from eval.errors import PredictionError


def predict_stream(
    predictor, items: Iterable, image_of: Callable = lambda x: x, chunk: int | None = None
) -> Iterator[tuple]:
    """(item, map) for each of `items`, in order, predicted `chunk` at a time with the
    predictor's `predict_batch` (a Predictor or a baseline; default chunk 4 x its batch_size)."""
    chunk = chunk or 4 * getattr(predictor, "batch_size", 16)
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
    except ValueError as e:  # bad image or model output (PredictionError): say where
        if type(e) not in (ValueError, PredictionError):  # other subclasses: as they are
            raise
        raise type(e)(f"{e} (in items {first}..{first + len(buf) - 1} of the stream)") from e
    return zip(buf, maps, strict=True)
