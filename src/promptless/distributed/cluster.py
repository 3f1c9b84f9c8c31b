"""How the driver reaches Ray: start it on this machine, or join a running cluster by address.

Joining is where things go wrong quietly: Ray retries an address where nothing listens
for minutes, and an explicit address never sends this machine's auth token. So an
address is tried with a plain TCP connect first (a clear ``ClusterError`` naming it
within seconds), Ray's own failures are read into one line that says what to do, and
``ray.init`` gets only what concerns this driver's job: no cluster options (CPUs,
dashboard) for a cluster this process did not start, and promptless itself as a
``py_modules`` entry of the job's ``runtime_env``, so the actors run the driver's code
whatever the cluster's machines have on their own path.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from promptless.errors import ClusterError

PROBE_S = 3.0  # how long a TCP connect to the address may take before it counts as nobody there
PACKAGE_DIR = str(Path(__file__).resolve().parents[1])  # this promptless, as the workers should import it
STARTS_HERE = (None, "local")  # addresses for which ray.init starts a new cluster in this process


def joins(address: str | None) -> bool:
    """Whether ``ray.init(address=address)`` joins a running cluster (Ray reads RAY_ADDRESS when none is given)."""
    if address in STARTS_HERE:
        return address is None and bool(os.environ.get("RAY_ADDRESS"))
    return True


def connect(ray: Any, address: str | None, init: dict[str, Any]) -> None:
    """``ray.init`` for this driver: a new local cluster, or the job on the cluster at ``address``."""
    if not joins(address):
        options: dict[str, Any] = {"include_dashboard": False, "configure_logging": False, **init}
        if address is not None:
            options["address"] = address
        ray.init(**options)
        return
    target = address if address not in STARTS_HERE else os.environ["RAY_ADDRESS"]
    probe(ray, target)
    options = {**init, "runtime_env": shipped(init.get("runtime_env"))}
    if not target.startswith("ray://"):  # Ray Client would pass it on to the ray.init of its server
        options.setdefault("configure_logging", False)
    if address is not None:
        options["address"] = address
    try:
        ray.init(**options)
    except (ConnectionError, RuntimeError) as error:
        raise ClusterError(refusal(target, error)) from error


def probe(ray: Any, address: str) -> None:
    """Is a Ray cluster at ``address`` and will it take this process? Each question asked once, in seconds.

    A TCP connect first (``auto`` is looked up in RAY_ADDRESS, else left to Ray, which answers at
    once when nothing runs here); then, for a GCS address (not ``ray://``), one connection of the
    GCS client that ``ray.init`` would retry for twenty seconds on a refused token.
    """
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS") or ""
        if not address or address == "auto":
            return
    host, port = host_and_port(address)
    try:
        with socket.create_connection((host, port), timeout=PROBE_S):
            pass
    except OSError as error:
        reason = "timed out" if isinstance(error, TimeoutError) else (error.strerror or str(error)).lower()
        raise ClusterError(
            f"no Ray cluster answers at {address} ({reason}); start one with `ray start --head --port={port}` "
            "and pass the address it prints, or 'auto' on a machine of the cluster"
        ) from None
    gcs_client = getattr(getattr(ray, "_raylet", None), "GcsClient", None)  # Ray's own client; skipped if it moves
    if address.startswith("ray://") or gcs_client is None:
        return
    try:
        gcs_client(address=f"{host}:{port}")
    except Exception as error:
        raise ClusterError(refusal(address, error)) from error


def host_and_port(address: str) -> tuple[str, int]:
    """``host:port`` or ``ray://host:port`` split; anything else is a ValueError showing what was given."""
    parsed = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        port = parsed.port
    except ValueError:
        port = None
    if not parsed.hostname or port is None:
        raise ValueError(f"RayExecutor(address=) must be 'auto', 'host:port' or 'ray://host:port', got {address!r}")
    return parsed.hostname, port


def shipped(runtime_env: Any) -> dict[str, Any]:
    """The user's ``runtime_env`` with this promptless package added to its ``py_modules``."""
    env = dict(runtime_env or {})
    modules = list(env.get("py_modules") or [])
    if PACKAGE_DIR not in modules:
        modules.append(PACKAGE_DIR)
    env["py_modules"] = modules
    return env


def refusal(address: str, error: BaseException) -> str:
    """One line for why Ray could not join ``address``: a refused token gets the setting that sends one."""
    chain = causes(error)
    if any("AuthenticationError" in type(e).__name__ or "InvalidAuthToken" in str(e) for e in chain):
        where = "RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token"
        if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
            return f"the Ray cluster at {address} refused the token this process sent: put the cluster's in {where}"
        return (
            f"the Ray cluster at {address} refused this process: it uses token authentication, and Ray sends "
            f"the token to an explicit address only with RAY_AUTH_MODE=token set (the token is read from {where})"
        )
    lines = str(error).strip().splitlines()
    first = lines[0] if lines else type(error).__name__
    if any("timed out" in str(e).lower() for e in chain):
        return (
            f"something listens at {address}, but no Ray cluster answered there in time ({first}); "
            "is it the address `ray start --head` printed?"
        )
    return f"could not join the Ray cluster at {address}: {first}"


def causes(error: BaseException) -> list[BaseException]:
    """``error`` and what it came from (``__cause__``, else ``__context__``), without looping."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def same_cluster(ray: Any, address: str | None) -> None:
    """Ray is already initialized here: refuse an ``address`` whose port is not the connected cluster's."""
    if address in (None, "auto") or address.startswith("ray://"):
        return  # whatever is connected is what was asked for (a Ray Client connection has no GCS address here)
    connected = str(ray.get_runtime_context().gcs_address or "")
    _, port = host_and_port(address)
    if not connected.endswith(f":{port}"):
        raise ValueError(
            f"RayExecutor(address={address!r}): Ray is already initialized in this process (its cluster is at "
            f"{connected or 'an unknown address'}); leave out address= to use that one, or ray.shutdown() first"
        )
