"""`python -m generator`: placeholder until the generator issue lands its CLI."""

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m generator",
        description="NOT BUILT YET: the generator stage's command line lands with its issue. "
        "This placeholder only prints this help and exits non-zero when asked to run.",
    )
    parser.parse_args(argv)
    print("python -m generator: not built yet (see README.md, 'Status')", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
