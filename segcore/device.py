"""One way to turn a `--device` option into a `torch.device`, for every stage.

"auto" means the local CUDA device when there is one (cuda:LOCAL_RANK under torchrun), else
the CPU. An unknown name, or CUDA asked for where there is none, is a UsageError (one line,
exit 2). torch is imported when called, so importing this module stays light.
"""

from __future__ import annotations

from segcore.cli import UsageError


def resolve_device(name: str = "auto", local_rank: int = 0, option: str = "--device"):
    import torch

    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as err:
        raise UsageError(f"{option} {name!r}: not a device; use auto, cpu, cuda or cuda:N") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"{option} {name}: CUDA is not available here")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        if device.index >= torch.cuda.device_count():
            raise UsageError(
                f"{option} {name}: only {torch.cuda.device_count()} CUDA device(s) here"
            )
    elif device.type != "cpu" and device.type != "mps":
        raise UsageError(f"{option} {name}: use auto, cpu, cuda or cuda:N")
    return device
