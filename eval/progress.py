"""The progress bar of eval's loops over images (off with `--no-progress`)."""

from __future__ import annotations

from collections.abc import Iterable


def with_progress(iterable: Iterable, total: int | None, desc: str, enabled: bool) -> Iterable:
    """`iterable` wrapped in a progress bar counting images, or as it is when not `enabled`."""
    if not enabled:
        return iterable
    from segcore.progress import progress_bar

    # leave=False: an error message is not left behind a half-drawn bar
    return progress_bar(iterable, total=total, desc=desc, unit="img", leave=False)
