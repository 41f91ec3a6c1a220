"""Stop a run whose numbers went bad before it writes them: a non-finite loss or weight ends
training with one line naming the step, and the last good checkpoint stays as it was."""

from __future__ import annotations

import torch

from segcore.cli import UsageError
from trainer import distributed

NEVER = torch.iinfo(torch.int64).max


class FiniteGuard:
    """Remembers the first step whose loss was not finite, on the device (no host sync per
    step); `check` reads it over all ranks at the loop's sync points (log, validation,
    checkpoint, end) and, where asked, checks every weight too. Every rank calls `check` at
    the same steps: it is a collective."""

    def __init__(self, device: torch.device, last_checkpoint: int | None):
        self.first_bad = torch.full((), NEVER, dtype=torch.int64, device=device)
        self.last_checkpoint = last_checkpoint  # the step of the last good checkpoint, if any

    def add(self, loss: torch.Tensor, step: int) -> None:
        bad_here = torch.where(torch.isfinite(loss.detach()), NEVER, step)
        self.first_bad = torch.minimum(self.first_bad, bad_here)

    def check(self, net: torch.nn.Module, step: int, weights: bool) -> None:
        flags = [self.first_bad]
        if weights:
            finite = torch.stack([p.detach().isfinite().all() for p in net.parameters()]).all()
            flags.append(torch.where(finite, NEVER, step).to(torch.int64))
        first = distributed.min_over_ranks(torch.stack(flags)).tolist()
        if first[0] != NEVER:
            self.stop(f"non-finite loss at step {first[0]}")
        if weights and first[1] != NEVER:
            self.stop(f"non-finite weights at step {first[1]}")

    def saved(self, step: int) -> None:
        self.last_checkpoint = step

    def stop(self, what: str) -> None:
        kept = (
            f"the last good checkpoint (step {self.last_checkpoint}) is kept"
            if self.last_checkpoint is not None
            else "no checkpoint was written"
        )
        raise UsageError(f"{what}: training stopped, {kept}; lower --lr or check the data")
