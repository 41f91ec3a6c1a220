"""torchrun-style DDP helpers that become no-ops in a single process (as in stylegan2's
`distributed.py`), so the same loop runs under `python -m trainer` and under torchrun."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int
    local_rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1 or dist.is_initialized()


def env_dist() -> Dist:
    """RANK / LOCAL_RANK / WORLD_SIZE from the environment (set by torchrun), else 0/0/1."""
    return Dist(
        rank=int(os.environ.get("RANK", 0)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
    )


def restart_count() -> int:
    """How often torchrun has restarted this worker group (`--max-restarts`); 0 on the first
    attempt and outside torchrun."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0))


def init(d: Dist, device: torch.device, timeout_s: float) -> None:
    """Join the process group. Every collective (and the rendezvous itself) fails after
    `timeout_s` seconds without its peers, so a dead rank is an error, not a 30-minute wait."""
    if "RANK" not in os.environ:
        return  # plain `python -m trainer`: one process, no process group
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    timeout = timedelta(seconds=timeout_s)
    dist.init_process_group(
        backend=backend,
        device_id=device if device.type == "cuda" else None,
        timeout=timeout,
        **attempt_store(d, timeout),
    )


def attempt_store(d: Dist, timeout: timedelta) -> dict:
    """init_process_group's store for this torchrun attempt: {} outside torchrun's agent store.

    Under torchrun the ranks meet in the agent's TCPStore, which outlives a restart; torch's
    env:// handler uses it without a per-attempt prefix (it assumes a new store per attempt),
    so a restarted rank that joins early reads the previous attempt's gloo addresses and fails
    with "connectFullMesh ... Connection refused" (benchmarks/trainer_restarts.py --gloo shows
    it without the trainer). Keys under `attempt_<TORCHELASTIC_RESTART_COUNT>/` are fresh.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return {}
    store = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        d.world_size,
        is_master=False,
        timeout=timeout,
    )
    prefixed = dist.PrefixStore(f"gan-objseg-trainer/attempt_{restart_count()}", store)
    return {"store": prefixed, "rank": d.rank, "world_size": d.world_size}


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's `obj` on every rank."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any) -> list[Any]:
    """[obj of rank 0, obj of rank 1, ...] on every rank."""
    if not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= dist.get_world_size()
    return value


def sum_over_ranks(value: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def min_over_ranks(value: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return value


def cleanup() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def is_initialized() -> bool:
    return dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1
