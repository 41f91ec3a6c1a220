"""Shards on Ray: one actor per GPU (or per `cpus_per_worker` CPUs), one call = one whole shard.

Each actor loads the GAN once in `__init__`; a call generates, filters, writes and uploads
one shard and returns only its manifest record. An actor runs two calls at once
(`ACTOR_CONCURRENCY`, a threaded actor): while one shard waits for its encodes, builds its tar
and uploads it, the next shard already renders on the GAN (shard_maker.py). The driver keeps
at most `per_actor` calls queued per actor (bounded in-flight work, `ray.wait`) and only on
actors that are placed and ready (actor_pool.py), retries a failed shard on another actor (an
actor that died is replaced), gives up on a shard after `max_tries` tries and then fails
listing every such shard.
"""

from __future__ import annotations

import os
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass

from generator.actor_pool import ActorPool
from generator.manifest import UPLOAD_DEADLINE
from generator.ray_connect import check_address, init_ray  # noqa: F401 (run.py's init_ray)
from segcore.cli import UsageError
from segcore.device import resolve_device
from segcore.progress import progress_bar
from segcore.storage import StoreUnavailable


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
    upload_deadline: float = UPLOAD_DEADLINE  # seconds a finished shard's upload is retried


ACTOR_CONCURRENCY = 2  # shards an actor works on at once: one renders, one finishes
WAIT_NOTICE_S = 30.0  # with no actor placed for this long, the driver says it is waiting


class ShardActor:
    """Ray actor body (decorated in `actor_class`): holds one ShardMaker."""

    def __init__(
        self,
        config,
        embeddings,
        use_gpu: bool,
        crash_marker: str | None = None,
        cpus_per_worker: int = 1,
        upload_deadline: float = UPLOAD_DEADLINE,
    ):
        from generator.shard_maker import ShardMaker

        # a GPU actor sees only its own GPU (Ray sets CUDA_VISIBLE_DEVICES); "auto" falls back
        # to the CPU where the GPU is only a logical resource (tests)
        device = resolve_device("auto" if use_gpu else "cpu")
        self.maker = ShardMaker(
            config,
            embeddings,
            device=device,
            cpus_per_worker=cpus_per_worker,
            upload_deadline=upload_deadline,
        )
        self.crash_marker = crash_marker

    def ready(self) -> dict:
        import ray

        return {
            "node": ray.util.get_node_ip_address(),
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
    # (run_shards says why Ray's own restarts do not fit)
    return ray.remote(**opts)(ShardActor)


def check_settings(settings: RaySettings) -> None:
    """Refuse bad execution settings before anything is written. Against this machine when Ray
    will start in-process; against the cluster in `plan_workers` when joining one."""
    import ray

    cpus = settings.cpus_per_worker
    if cpus is not None and cpus < 1:
        raise UsageError(f"--cpus-per-worker must be >= 1, got {cpus}")
    if ray.is_initialized():
        return
    if settings.address or os.environ.get("RAY_ADDRESS"):
        check_address(settings.address or os.environ["RAY_ADDRESS"])
        return
    if settings.device == "cuda":
        resolve_device("cuda", option="--device")  # one line when CUDA is not available here
    here = os.cpu_count() or 1
    if cpus is not None and cpus > here:
        raise UsageError(f"--cpus-per-worker {cpus}: this machine has {here} CPUs")


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
            f"now; starting with those, the others start when resources free up"
        )
    return max(1, workers), use_gpu, per_actor


def run_shards(
    config,
    out: str,
    todo: Iterable[int],
    total: int,
    embeddings,
    settings: RaySettings,
    crash_marker: str | None = None,
) -> dict[int, dict]:
    """Generate the `total` shards that `todo` yields (lazily: it is read only as actors free
    up, so memory does not grow with --shards) under `out`; -> {index: manifest record}.
    Ray must be up.

    Scheduling follows the cluster as it is: a shard goes only to an actor that has answered
    `ready()`, so work starts on the first actor placed and an actor that cannot be placed
    (no room, a lost node) holds no shard. Ray's own actor restarts (max_restarts,
    max_task_retries) do not fit: a restarting actor keeps its queued calls, which then wait
    for a CPU that may never come back; so a dead actor is killed and replaced by a new one
    (placed when capacity returns) and its shards go back to the queue for the live actors.
    A store outage past the upload deadline stops new shards; the run then fails naming the
    endpoint, and a rerun makes the rest.
    """
    import ray

    if total <= 0:
        return {}
    n_workers, use_gpu, per_actor = plan_workers(settings)
    n_workers = min(n_workers, total)
    cls = actor_class(use_gpu, per_actor)
    emb_ref = ray.put(embeddings) if embeddings is not None else None
    args = (config, emb_ref, use_gpu, crash_marker, per_actor, settings.upload_deadline)
    pool = ActorPool(lambda: cls.remote(*args), n_workers)
    fresh = iter(todo)
    exhausted = False
    retry: deque[int] = deque()
    tries: dict[int, int] = {}  # shards in flight or waiting for a retry only
    avoid: dict[int, int] = {}  # shard -> actor id it last failed on
    last_error: dict[int, str] = {}
    failed: list[int] = []
    store_error: str | None = None
    pending: dict = {}  # ObjectRef -> (shard, actor id)
    done: dict[int, dict] = {}
    waiting_said = False
    per_node: Counter[str] = Counter()  # node address -> shards its actors made
    samples = drawn = 0
    t_start = time.perf_counter()
    bar = progress_bar(total=total, unit="shard", desc="generator")
    try:
        while True:
            # fill the ready actors up to `per_actor` queued calls each
            while store_error is None:
                free = [a for a, n in pool.load.items() if n < settings.per_actor]
                if not free:
                    break
                if retry:
                    shard = retry.popleft()
                elif not exhausted:
                    shard = next(fresh, None)
                    if shard is None:
                        exhausted = True
                        break
                else:
                    break
                choice = [a for a in free if a != avoid.get(shard)] or free
                aid = min(choice, key=lambda a: pool.load[a])
                tries[shard] = tries.get(shard, 0) + 1
                pending[pool.handles[aid].make_shard.remote(shard, out)] = (shard, aid)
                pool.load[aid] += 1
            if not pending and (store_error is not None or (exhausted and not retry)):
                break
            ready, _ = ray.wait([*pending, *pool.starting], num_returns=1, timeout=WAIT_NOTICE_S)
            if not ready:
                if not pending and not pool.load and not waiting_said:
                    print(
                        f"generator: waiting for the cluster to place an actor "
                        f"({len(pool.starting)} not placed yet)"
                    )
                    waiting_said = True
                continue
            ref = ready[0]
            if ref in pool.starting:
                aid = pool.starting.pop(ref)
                try:
                    pool.nodes[aid] = ray.get(ref)["node"]
                    pool.load[aid] = 0
                    print(f"generator: worker ready on {pool.nodes[aid]}", flush=True)
                    waiting_said = False
                except ray.exceptions.RayActorError as err:
                    if err.actor_init_failed:  # the GAN cannot load: no actor ever will
                        raise GenerationFailed(f"workers could not start: {_short(err)}") from err
                    if pool.replace(aid):  # died before it was ready (its node was lost)
                        print(f"generator: lost a starting worker ({_short(err)})", flush=True)
                except ray.exceptions.RayError as err:
                    raise GenerationFailed(f"workers could not start: {_short(err)}") from err
                continue
            shard, aid = pending.pop(ref)
            if aid in pool.load:
                pool.load[aid] -= 1
            try:
                record = ray.get(ref)
            except ray.exceptions.RayError as err:
                cause = getattr(err, "cause", None)
                if isinstance(cause, StoreUnavailable):
                    # the GAN work is not retried: the run stops and a rerun makes the rest
                    store_error = str(cause)
                    failed.append(shard)
                    tries.pop(shard, None)
                    continue
                last_error[shard] = _short(err)
                avoid[shard] = aid
                # the process or its node is gone: said once per lost actor
                if isinstance(err, ray.exceptions.RayActorError) and pool.replace(aid):
                    print(
                        f"generator: lost the worker on {pool.nodes.get(aid, '?')} "
                        f"({_short(err)}); its shards go to the live workers",
                        flush=True,
                    )
                if tries[shard] < settings.max_tries:
                    retry.append(shard)
                else:
                    failed.append(shard)
                    tries.pop(shard)
                continue
            tries.pop(shard, None)
            avoid.pop(shard, None)
            last_error.pop(shard, None)
            done[shard] = record
            per_node[pool.nodes.get(aid, "?")] += 1
            samples += record["count"]
            drawn += record["attempts"]
            bar.update(1)
            bar.set_postfix(
                samples_per_s=f"{samples / (time.perf_counter() - t_start):.1f}",
                accept=f"{samples / max(drawn, 1):.1%}",
                refresh=False,
            )
    finally:
        bar.close()
        pool.close()
        if per_node:
            made = ", ".join(f"{node} {n}" for node, n in sorted(per_node.items()))
            print(f"generator: shards made per node: {made}")
    if store_error is not None:
        raise GenerationFailed(
            f"{store_error}; {len(done)} shard(s) finished in this run, rerun the same command "
            "to make the rest"
        )
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
