"""Defaults of the inference protocol (eval/inference.py; the paper, section 3.4), kept free of
torch so the CLI shows them in `--help` without importing it."""

SHORT_SIDE = 128  # the shorter side is resized to this before the model runs
QUANTIZE = True  # maps are quantised to uint8 like the authors' code
BATCH_SIZE = 16  # images per forward pass
DEVICE = "cpu"
