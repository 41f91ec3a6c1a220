"""The embedded toy world: a procedural world of one-object scenes with true masks (`world`),
a small GAN trained on its images only (`model`; training: `train` the CLI, `train_config` its
options, `train_loop` the phases and checkpoints, `train_images` the image cache and sample
grids), its shipped weights (`weights/`), and the report of the end-to-end experiment on it
(`report`).

The generator reaches the GAN through its thin backend `generator.gans.toyworld`
(`--gan toyworld`). Importing this package is light: torch is imported by `model` and by the
training run.
"""

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "toyworld.pt"
DEFAULT_DIRECTION = WEIGHTS_DIR / "direction.json"
