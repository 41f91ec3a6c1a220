"""Shards on Ray: one actor per GPU (or per `cpus_per_worker` CPUs), one call = one whole shard.

Each actor loads the GAN once in `__init__`; a call generates, filters, writes and uploads
one shard and returns only its manifest record. An actor runs two calls at once
(`ACTOR_CONCURRENCY`, a threaded actor): while one shard waits for its encodes, builds its tar
and uploads it, the next shard already renders on the GAN (shard_maker.py). The driver keeps
at most `per_actor` calls queued per actor (bounded in-flight work, `ray.wait`), retries a
failed shard on another actor (an actor that died is replaced), gives up on a shard after
`max_tries` tries and then fails listing every such shard.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from segcore.cli import UsageError
from segcore.device import resolve_device
from segcore.progress import progress_bar


class GenerationFailed(RuntimeError):
    """Some shards failed on every try; the message lists them."""


@dataclass(frozen=True)
class RaySettings:
    workers: int | None = None  # None: one per GPU, or one per CPU without GPUs
    address: str | None = None  # None: start Ray in-process; "auto": join the running cluster
    device: str = "auto"  # auto | cpu | cuda: "auto" uses GPU actors when the cluster has GPUs
    max_tries: int = 3
    per_actor: int = 2  # calls queued per actor, so a GPU never idles between shards
    cpus_per_worker: int | None = None  # None: the node's CPUs / its GPUs; 1 without GPUs


ACTOR_CONCURRENCY = 2  # shards an actor works on at once: one renders, one finishes


class ShardActor:
    """Ray actor body (decorated in `actor_class`): holds one ShardMaker."""

    def __init__(
        self,
        config,
        embeddings,
        use_gpu: bool,
        crash_marker: str | None = None,
        cpus_per_worker: int = 1,
    ):
        from generator.shard_maker import ShardMaker

        # a GPU actor sees only its own GPU (Ray sets CUDA_VISIBLE_DEVICES); "auto" falls back
        # to the CPU where the GPU is only a logical resource (tests)
        device = resolve_device("auto" if use_gpu else "cpu")
        self.maker = ShardMaker(config, embeddings, device=device, cpus_per_worker=cpus_per_worker)
        self.crash_marker = crash_marker

    def ready(self) -> dict:
        return {
            "pid": os.getpid(),
            "device": str(self.maker.device),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "cpus_per_worker": self.maker.cpus_per_worker,
        }

    def make_shard(self, index: int, out: str) -> dict:
        return self.maker.make_shard(index, out, crash_hook=self._crash_once)

    def _crash_once(self, index: int) -> None:
        """Test hook: the first process to reach here kills itself mid-shard."""
        if self.crash_marker is None:
            return
        try:
            fd = os.open(self.crash_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
        os._exit(17)


def actor_class(use_gpu: bool, cpus_per_worker: int = 1):
    """The Ray actor class: `cpus_per_worker` CPUs (the size of its encoder pool), one GPU for
    GPU actors, ACTOR_CONCURRENCY calls at once."""
    import ray

    opts = {"num_cpus": cpus_per_worker, "max_concurrency": ACTOR_CONCURRENCY}
    if use_gpu:
        opts["num_gpus"] = 1
    # max_restarts=0: a dead actor is replaced by the driver, which also re-queues its shards
    return ray.remote(**opts)(ShardActor)


def check_settings(settings: RaySettings) -> None:
    """Refuse bad execution settings before anything is written. Against this machine when Ray
    will start in-process; against the cluster in `plan_workers` when joining one."""
    import ray

    cpus = settings.cpus_per_worker
    if cpus is not None and cpus < 1:
        raise UsageError(f"--cpus-per-worker must be >= 1, got {cpus}")
    if ray.is_initialized() or settings.address or os.environ.get("RAY_ADDRESS"):
        return
    if settings.device == "cuda":
        resolve_device("cuda", option="--device")  # one line when CUDA is not available here
    here = os.cpu_count() or 1
    if cpus is not None and cpus > here:
        raise UsageError(f"--cpus-per-worker {cpus}: this machine has {here} CPUs")


def init_ray(settings: RaySettings) -> bool:
    """Connect to (or start) Ray; -> True if this call started it (so the caller stops it)."""
    import ray

    if ray.is_initialized():
        return False
    if settings.address or os.environ.get("RAY_ADDRESS"):
        # `ray job submit` sets RAY_ADDRESS for its entrypoint: join that cluster
        ray.init(address=settings.address or os.environ["RAY_ADDRESS"])
    else:
        ray.init(include_dashboard=False)
    return True


def _nodes() -> list[dict]:
    import ray

    return [n["Resources"] for n in ray.nodes() if n.get("Alive")]


def default_cpus_per_worker(nodes: list[dict], use_gpu: bool) -> int:
    """GPU actors: the fewest CPUs per GPU over the nodes with GPUs (CPUs // GPUs, at least 1);
    CPU actors: 1."""
    if not use_gpu:
        return 1
    ratios = [int(n.get("CPU", 0)) // int(n["GPU"]) for n in nodes if int(n.get("GPU", 0)) > 0]
    return max(1, min(ratios, default=1))


def plan_workers(settings: RaySettings) -> tuple[int, bool, int]:
    """-> (number of actors, GPU actors?, CPUs per actor) from the settings and the cluster's
    resources. UsageError for `--device cuda` on a cluster without GPUs, or more CPUs per
    actor than a node that could hold the actor has."""
    import ray

    res = ray.cluster_resources()
    gpus, cpus = int(res.get("GPU", 0)), int(res.get("CPU", 1))
    if settings.device == "cuda" and gpus == 0:
        raise UsageError("--device cuda: the Ray cluster has no GPUs")
    use_gpu = settings.device == "cuda" or (settings.device == "auto" and gpus > 0)
    nodes = _nodes()
    per_actor = settings.cpus_per_worker or default_cpus_per_worker(nodes, use_gpu)
    hosts = [n for n in nodes if int(n.get("GPU", 0)) > 0] if use_gpu else nodes
    most = max((int(n.get("CPU", 0)) for n in hosts), default=cpus)
    if per_actor > most:
        kind = "GPU node" if use_gpu else "node"
        raise UsageError(f"--cpus-per-worker {per_actor}: the largest {kind} has {most} CPUs")
    default = gpus if use_gpu else max(1, cpus // per_actor)
    workers = settings.workers or default
    available = gpus if use_gpu else cpus // per_actor
    if workers > available:
        print(
            f"generator: {workers} workers requested, the cluster has room for {available} "
            f"now; extra actors wait for resources"
        )
    return max(1, workers), use_gpu, per_actor


def run_shards(
    config,
    out: str,
    todo: list[int],
    embeddings,
    settings: RaySettings,
    crash_marker: str | None = None,
) -> dict[int, dict]:
    """Generate shards `todo` under `out`; -> {index: manifest record}. Ray must be up."""
    import ray

    if not todo:
        return {}
    n_workers, use_gpu, per_actor = plan_workers(settings)
    n_workers = min(n_workers, len(todo))
    cls = actor_class(use_gpu, per_actor)
    emb_ref = ray.put(embeddings) if embeddings is not None else None

    def new_actor():
        return cls.remote(config, emb_ref, use_gpu, crash_marker, per_actor)

    actors = {i: new_actor() for i in range(n_workers)}
    # fail fast on a model that cannot load: every actor says it is ready before work starts
    try:
        ray.get([a.ready.remote() for a in actors.values()])
    except ray.exceptions.RayError as err:
        for actor in actors.values():
            ray.kill(actor, no_restart=True)
        raise GenerationFailed(f"workers could not start: {_short(err)}") from err

    queue = list(todo)
    tries = {i: 0 for i in todo}
    last_error: dict[int, str] = {}
    failed: list[int] = []
    pending: dict = {}  # ObjectRef -> (shard, actor id)
    load = {a: 0 for a in actors}
    avoid: dict[int, int] = {}  # shard -> actor id it last failed on
    done: dict[int, dict] = {}
    next_id = n_workers
    t_start = time.perf_counter()
    bar = progress_bar(total=len(todo), unit="shard", desc="generator")
    try:
        while queue or pending:
            # fill every actor up to `per_actor` queued calls
            while queue:
                free = [a for a in actors if load[a] < settings.per_actor]
                if not free:
                    break
                shard = queue[0]
                choice = [a for a in free if a != avoid.get(shard)] or free
                aid = min(choice, key=lambda a: load[a])
                queue.pop(0)
                tries[shard] += 1
                ref = actors[aid].make_shard.remote(shard, out)
                pending[ref] = (shard, aid)
                load[aid] += 1
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            shard, aid = pending.pop(ref)
            if aid in load:
                load[aid] -= 1
            try:
                record = ray.get(ref)
            except ray.exceptions.RayError as err:
                last_error[shard] = _short(err)
                avoid[shard] = aid
                if isinstance(err, ray.exceptions.RayActorError) and aid in actors:
                    # the process is gone: replace it (its other queued shards fail too and
                    # come back here one by one)
                    ray.kill(actors.pop(aid), no_restart=True)
                    load.pop(aid, None)
                    actors[next_id] = new_actor()
                    load[next_id] = 0
                    next_id += 1
                if tries[shard] < settings.max_tries:
                    queue.append(shard)
                else:
                    failed.append(shard)
                continue
            done[shard] = record
            bar.update(1)
            samples = sum(r["count"] for r in done.values())
            drawn = sum(r["attempts"] for r in done.values())
            bar.set_postfix(
                samples_per_s=f"{samples / (time.perf_counter() - t_start):.1f}",
                accept=f"{samples / max(drawn, 1):.1%}",
                refresh=False,
            )
    finally:
        bar.close()
        for actor in actors.values():
            ray.kill(actor, no_restart=True)
    if failed:
        failed.sort()
        listing = ", ".join(str(i) for i in failed)
        raise GenerationFailed(
            f"{len(failed)} shard(s) failed after {settings.max_tries} tries: {listing}; "
            f"last error (shard {failed[0]}): {last_error.get(failed[0], '?')}"
        )
    return done


def _short(err: BaseException) -> str:
    """The last non-empty line of a Ray error (the cause), not the whole remote traceback."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return lines[-1] if lines else type(err).__name__
