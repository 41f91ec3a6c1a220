"""Command-line conventions shared by every entry point.

A user error (bad path, bad option, unreadable file) ends with ONE line on stderr and exit
code 2, never a traceback. Library code raises `UsageError`; entry points wrap `main` with
`run_cli`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

EXIT_USAGE = 2


class UsageError(Exception):
    """An error caused by the user's input; reported as one line, exit code 2."""


def run_cli(main: Callable[[Sequence[str] | None], int | None], prog: str) -> None:
    """Call `main(argv)` and turn `UsageError` into a one-line message and exit 2."""
    try:
        code = main(None)
    except UsageError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
