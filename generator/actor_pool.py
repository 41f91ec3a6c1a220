"""The generator driver's actors as the cluster places them (generator.ray_runner).

An actor is `starting` from its creation until it answers `ready()` (Ray has placed it and
it has loaded the GAN); only then does it count as `ready` and get shards. Ray itself places a
waiting actor as soon as a node with room joins (or the autoscaler adds one), so the pool only
waits for `ready()` and needs no polling of its own. A dead actor is killed and replaced by a
new one, which Ray places when the cluster has room for it.
"""

from __future__ import annotations


class ActorPool:
    """The driver's actors: `starting` (created, `ready()` not answered: not placed yet, or
    loading the GAN) and `ready` ones with their number of queued calls."""

    def __init__(self, make, n: int):
        self.make = make
        self.handles: dict[int, object] = {}
        self.starting: dict = {}  # ready() ObjectRef -> actor id
        self.load: dict[int, int] = {}  # actor id -> queued calls, ready actors only
        self.nodes: dict[int, str] = {}  # actor id -> address of the node it was placed on
        self.next_id = 0
        for _ in range(n):
            self.add()

    def add(self) -> None:
        aid, self.next_id = self.next_id, self.next_id + 1
        self.handles[aid] = handle = self.make()
        self.starting[handle.ready.remote()] = aid

    def replace(self, aid: int) -> bool:
        """Kill actor `aid` (dead, or on a lost node) and create its replacement, which Ray
        places when the cluster has room for it. -> False if it was already replaced."""
        import ray

        if aid not in self.handles:
            return False  # already replaced (its other queued calls fail one by one)
        ray.kill(self.handles.pop(aid), no_restart=True)
        self.load.pop(aid, None)
        self.starting = {r: a for r, a in self.starting.items() if a != aid}
        self.add()
        return True

    def close(self) -> None:
        import ray

        for handle in self.handles.values():
            ray.kill(handle, no_restart=True)
