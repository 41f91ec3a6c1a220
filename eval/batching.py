"""Streaming prediction in chunks, shared by `Predictor.predict_iter` and the eval reports
(no torch import: baselines use it too)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator


def predict_stream(
    predictor, items: Iterable, image_of: Callable = lambda x: x, chunk: int | None = None
) -> Iterator[tuple]:
    """(item, map) for each of `items`, in order, predicted `chunk` at a time with the
    predictor's `predict_batch` (a Predictor or a baseline; default chunk 4 x its batch_size)."""
    chunk = chunk or 4 * getattr(predictor, "batch_size", 16)
    buf: list = []
    for item in items:
        buf.append(item)
        if len(buf) >= chunk:
            yield from zip(buf, predictor.predict_batch([image_of(i) for i in buf]), strict=True)
            buf = []
    if buf:
        yield from zip(buf, predictor.predict_batch([image_of(i) for i in buf]), strict=True)
