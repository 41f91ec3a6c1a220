"""`python -m generator.directions ...` (see generator/directions/cli.py)."""

from generator.directions.cli import PROG, main
from segcore.cli import run_cli

if __name__ == "__main__":
    run_cli(main, PROG)
