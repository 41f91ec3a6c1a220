"""The sub-commands of `python -m eval` (eval/cli.py builds their options), one module per group:
saliency (`saliency`, `baseline`), maps, wsol, predict; `common` holds what they share."""
