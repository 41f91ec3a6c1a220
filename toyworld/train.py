"""Train the embedded toy-world GAN on world IMAGES only (never masks), on CPU or a GPU.

    nice -n 10 python -m toyworld.train --out runs/toyworld [--device cuda]

Writes OUT/final/toyworld.pt (EMA generator + encoder) and OUT/final/toyworld.json (configs,
command, sample statistics); rerunning the same command resumes from OUT/checkpoint.pt. The
phases, the checkpoint and the outputs: `toyworld.train_loop`. Options: `GanTrainConfig`
(training) and `toyworld.model.ModelConfig` (architecture), one flag per field.
"""

from __future__ import annotations

import sys
from pathlib import Path

from segcore import options
from segcore.cli import UsageError, run_cli
from toyworld.train_config import LOSSES, GanTrainConfig

PROG = "python -m toyworld.train"

MODEL_HELP = {
    "resolution": "image size, 4 * 2^k",
    "latent_dim": "dimension of z",
    "g_width": "generator channels at the output resolution, doubled per coarser level",
    "d_width": "discriminator channels at the input resolution",
    "e_width": "encoder channels at the input resolution",
    "layers": "1: plain DCGAN generator; 2: background + foreground/alpha layers",
    "d_batchnorm": "0: spectral-norm discriminator; 1: DCGAN's BatchNorm discriminator",
    "latent_split": "2-layer only; 1: z splits in three parts (background, shape, colours)",
}


def parser() -> options.Parser:
    from toyworld.model import ModelConfig

    p = options.Parser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="run folder (checkpoint, samples, final/)")
    options.add_options(p, GanTrainConfig, choices={"loss": LOSSES})
    options.add_options(p, ModelConfig, help=MODEL_HELP)
    return p


def main(argv=None) -> int:
    from toyworld.model import ModelConfig
    from toyworld.train_loop import train

    args = parser().parse_args(argv)
    cfg = options.config_from_args(GanTrainConfig, args)
    model_cfg = options.config_from_args(ModelConfig, args)
    try:
        model_cfg.levels  # noqa: B018 - validates the resolution
    except ValueError as err:
        raise UsageError(str(err)) from err
    command = " ".join([PROG] + (sys.argv[1:] if argv is None else list(argv)))
    train(Path(args.out), cfg, model_cfg, command)
    return 0


if __name__ == "__main__":
    run_cli(main, PROG)
