"""One progress bar for every long job: redrawn live on a terminal, one line per 30 s in a log.

On a cluster stderr is a file, where each tqdm redraw is a new line; `progress_bar(...)` keeps a
30-second minimum interval there so logs stay readable (a 1,500-step job once wrote 1,500 lines).
"""

from __future__ import annotations

import sys

LOG_INTERVAL_S = 30.0


def progress_bar(iterable=None, **kwargs):
    """`tqdm(iterable, **kwargs)` with `mininterval` chosen for a terminal or a log file.

    Call `set_postfix(..., refresh=False)` on it: a refreshing postfix redraws every call.
    """
    from tqdm import tqdm

    kwargs.setdefault("mininterval", 0.1 if sys.stderr.isatty() else LOG_INTERVAL_S)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
