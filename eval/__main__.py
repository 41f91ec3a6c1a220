"""`python -m eval`: placeholder until the eval issue lands its CLI."""

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eval",
        description="NOT BUILT YET: the eval stage's command line lands with its issue. "
        "This placeholder only prints this help and exits non-zero when asked to run.",
    )
    parser.parse_args(argv)
    print("python -m eval: not built yet (see README.md, 'Status')", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
