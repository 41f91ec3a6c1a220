"""`python -m eval`: options in eval/cli.py, the sub-commands in eval/commands/."""

from eval.cli import PROG, main
from segcore.cli import run_cli

if __name__ == "__main__":
    run_cli(main, PROG)
