"""`python -m trainer`: placeholder until the trainer issue lands its CLI."""

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainer",
        description="NOT BUILT YET: the trainer stage's command line lands with its issue. "
        "This placeholder only prints this help and exits non-zero when asked to run.",
    )
    parser.parse_args(argv)
    print("python -m trainer: not built yet (see README.md, 'Status')", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
