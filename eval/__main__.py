"""`python -m eval`: see eval/cli.py for the commands."""

from eval.cli import PROG, main
from segcore.cli import run_cli

if __name__ == "__main__":
    run_cli(main, PROG)
