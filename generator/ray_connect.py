"""Connecting the generator's driver to Ray: an explicit cluster address is checked before
anything is written (a dead or wrong address is one line within seconds, not minutes of Ray's
own retries), then joined; without one Ray starts in-process."""

from __future__ import annotations

import os
import socket

from segcore.cli import UsageError

ADDRESS_TIMEOUT_S = 5.0  # seconds to wait for a TCP answer from the Ray address


def check_address(address: str) -> None:
    """Refuse in one line (within ADDRESS_TIMEOUT_S) a Ray address where nothing answers:
    `ray.init` would wait for a dead head node for many minutes. "auto" is resolved as Ray
    resolves it (RAY_ADDRESS, else the cluster last started on this machine)."""
    from ray._private.services import get_ray_address_from_environment

    given = address
    if address == "auto":
        try:
            address = get_ray_address_from_environment("auto", None)
        except ConnectionError as err:
            raise UsageError(f"--address auto: {str(err).split('.')[0]}") from err
    if address in (None, "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--address {given}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), ADDRESS_TIMEOUT_S).close()
    except OSError as err:
        raise UsageError(
            f"no Ray cluster answers at {hostport} (--address {given}): "
            f"{err.strerror or type(err).__name__}"
        ) from err
    if address.startswith("ray://"):
        check_client_server(hostport, given)


def check_client_server(hostport: str, given: str) -> None:
    """Refuse in one line a ray:// address that accepts connections but answers no gRPC (not a
    Ray Client server, or a stuck one): Ray Client would retry for about 30 s and then end in a
    traceback. The channel is Ray's own (TLS and token auth as the client would use them)."""
    import grpc
    from ray._private.grpc_utils import init_grpc_channel

    channel = init_grpc_channel(hostport)
    try:
        grpc.channel_ready_future(channel).result(timeout=ADDRESS_TIMEOUT_S)
    except grpc.FutureTimeoutError as err:
        raise UsageError(
            f"no Ray Client server answers at {hostport} (--address {given}): the port accepts "
            f"connections but gives no gRPC answer within {ADDRESS_TIMEOUT_S:.0f} s"
        ) from err
    finally:
        channel.close()


def init_ray(settings) -> bool:
    """Connect to (or start) Ray for `settings` (a ray_runner.RaySettings); -> True if this call
    started it (so the caller stops it)."""
    import ray

    if ray.is_initialized():
        return False
    if settings.address or os.environ.get("RAY_ADDRESS"):
        # `ray job submit` sets RAY_ADDRESS for its entrypoint: join that cluster
        address = settings.address or os.environ["RAY_ADDRESS"]
        try:
            ray.init(address=address)
        except ConnectionError as err:  # the cluster went away after check_address
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UsageError(f"cannot connect to the Ray cluster at {address}: {first}") from err
    else:
        # "local": a new instance of our own; without it Ray joins the cluster last started on
        # this machine (/tmp/ray/ray_current_cluster), and waits forever when that one is dead
        ray.init(address="local", include_dashboard=False)
    return True
