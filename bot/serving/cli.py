"""`python -m bot serve`: the config's ONNX models on Ray Serve, in the foreground until a signal,
behind one OpenAI-compatible API (docs/serving.md).

Without `--address` it starts a local Ray instance on loopback (node address 127.0.0.1, no
dashboard, a small object store, Ray's metrics only with `--metrics-port`), and records it
(`bot.serving.leftovers`) so that the next start stops what a crashed server left running; with
`--address` it joins that cluster (`ray start --head` on one machine, `ray start
--address=HEAD:6379` on the others) and leaves the cluster's processes alone.

SIGINT or SIGTERM drains: the replicas refuse new requests (503) while those in flight finish, at
most `engine.timeout_seconds` (the longest a request may run); then Serve shuts down and the
process exits 0. A second signal cuts the wait short.

The API key comes from `--api-key-file` or `CHARBOT_SERVE_API_KEY`; with one, every /v1 route
needs it. Without one the server listens on 127.0.0.1 unless `--host` says otherwise, and warns
when it serves another address with no key. The key is never logged or printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.config import SERVE_API_KEY_ENV, Config
from bot.errors import CharbotError
from bot.generation.params import EngineConfig
from bot.serving import leftovers

if TYPE_CHECKING:
    from bot.serving.server import ApiKey, ModelDeployment

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
#: Ray's Prometheus endpoint of a local instance: 0 is off (as the bot's `metrics.port`).
DEFAULT_METRICS_PORT = 0
#: The address a local Ray instance's node takes: its servers listen there where Ray lets them.
LOCAL_NODE_IP = "127.0.0.1"
#: Ray's switch for an instance that is no cluster: "0" makes the node's address loopback (as
#: Ray does on macOS and Windows). On Linux `ray.init` otherwise swaps a loopback
#: `_node_ip_address` for the machine's address, and its servers listen on every interface.
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
ADDRESS_CONNECT_SECONDS = 5.0  # a cluster's GCS answers a TCP connect at once, or not at all
OBJECT_STORE_BYTES = 80 * 1024 * 1024  # requests and answers are small: the minimum is plenty
SERVED_KIND = "onnx"  # the backend kind the model server runs


class ServeError(CharbotError):
    """The model server cannot start as asked."""


def add_parser(sub: Any) -> None:
    """The `serve` subcommand, on `python -m bot`'s subparsers."""
    serve = sub.add_parser("serve", help="serve the config's ONNX models on Ray Serve over HTTP")
    # SUPPRESS: given after `serve`, it overrides the top-level --config, and is else left alone.
    serve.add_argument("--config", default=argparse.SUPPRESS, help="a TOML config file")
    serve.add_argument("--replicas", type=_at_least_one, default=1, help="replicas per model")
    serve.add_argument(
        "--gpus-per-replica",
        type=float,
        default=0.0,
        help="GPUs each replica reserves (with engine.provider = 'cuda'; fractions share a GPU)",
    )
    serve.add_argument(
        "--host", default=DEFAULT_HOST, help="the HTTP address to listen on (default: loopback)"
    )
    serve.add_argument(
        "--api-key-file",
        type=Path,
        help=f"a file holding the API key clients must send (or set {SERVE_API_KEY_ENV})",
    )
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="the HTTP port")
    # Not `metrics_port`: that is the bot's `metrics.port`, which `python -m bot` overrides.
    serve.add_argument(
        "--metrics-port",
        dest="ray_metrics_port",
        type=int,
        default=DEFAULT_METRICS_PORT,
        metavar="PORT",
        help="a local Ray instance's Prometheus endpoint, on 127.0.0.1 (0: off, the default)",
    )
    serve.add_argument(
        "--address", help="join this Ray cluster (e.g. HEAD:6379 or auto) instead of a local one"
    )


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def deployments(config: Config) -> list[ModelDeployment]:
    """One `ModelDeployment` per ONNX model of the config."""
    from bot.runtime import engine_config
    from bot.serving.server import ModelDeployment

    # A replica uses what Ray gives it: the CPUs it reserves, one per worker; `auto` reserves
    # one (Ray's default for an actor), so a replica of `auto` runs one worker per model.
    configured: EngineConfig = engine_config(config)
    reserved = configured.workers if isinstance(configured.workers, int) else 1
    engine = dataclasses.replace(configured, cores=reserved)
    models = [
        ModelDeployment(spec.name, spec.path, engine, spec.chat_name)
        for spec in config.models.models.values()
        if spec.backend == SERVED_KIND and spec.path is not None
    ]
    if not models:
        raise ServeError("The config names no ONNX model to serve (backend = 'onnx', a path).")
    return models


def run_serve(config: Config, args: argparse.Namespace) -> int:
    if not args.address:
        # Before Ray is imported (read once), and inherited by the processes it starts.
        os.environ.setdefault(LOCAL_ONLY_ENV, "0")
    try:
        import ray
        from ray import serve

        from bot.serving.app import DrainSignal, deploy, drain, start_serve
        from bot.serving.server import cpus_per_replica
    except ImportError:
        print(
            "error: `python -m bot serve` needs Ray Serve: pip install 'charbot[serve]'.",
            file=sys.stderr,
        )
        return 2
    models = deployments(config)
    api_key = read_api_key(args.api_key_file, os.environ)
    cpus = cpus_per_replica(models)
    # First: a crashed server's leftover proxy may still hold the port checked next.
    stopped = leftovers.clean_up(records())
    check_before_ray(models, args, PORT_RELEASE_SECONDS if stopped else 0.0)
    if not args.address:
        check_resources(args.replicas, cpus, args.gpus_per_replica, local_resources())
    if api_key is None and not is_loopback(args.host):
        log.warning(
            "serving on %s with no API key: anyone who can reach it can use it "
            "(give --api-key-file or %s)",
            args.host,
            SERVE_API_KEY_ENV,
        )
    record = None
    if args.address:
        ray.init(address=args.address)
        try:
            check_resources(args.replicas, cpus, args.gpus_per_replica, ray.cluster_resources())  # type: ignore[no-untyped-call]
        except ServeError:
            ray.shutdown()
            raise
    else:
        session = start_local(args.ray_metrics_port)["session_dir"]
        record = leftovers.write_record(records(), session, args.port)
    # After ray.init, which installs a SIGTERM handler of its own that exits at once.
    stop, hurry = threading.Event(), threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        (hurry if stop.is_set() else stop).set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        start_serve(args.host, args.port)
        drain_signal = DrainSignal.remote()  # type: ignore[attr-defined]
        deploy(models, args.replicas, args.gpus_per_replica, api_key, drain_signal)
        base = f"http://{args.host}:{args.port}/v1"
        for model in models:
            print(f"serving {model.name} at {base} (model {model.name!r})")
        if args.ray_metrics_port:
            print(f"Ray's metrics at http://{LOCAL_NODE_IP}:{args.ray_metrics_port}/metrics")
        sys.stdout.flush()
        stop.wait()
        bound = config.engine.timeout_seconds
        log.info("draining: no new requests; those in flight get %g s to finish", bound)
        drain(drain_signal, bound, hurry.is_set)
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()
        if record is not None:
            record.unlink(missing_ok=True)
    return 0


def start_local(metrics_port: int) -> dict[str, Any]:
    """A new local Ray instance (even where `ray start` left one running), on loopback; its
    Prometheus endpoint on `metrics_port`, or none. Its addresses and session (`address_info`)."""
    import ray

    context = ray.init(
        address="local",
        include_dashboard=False,
        object_store_memory=OBJECT_STORE_BYTES,
        _node_ip_address=LOCAL_NODE_IP,
        _metrics_export_port=metrics_port or None,
        _system_config=None if metrics_port else {"enable_metrics_collection": False},
    )
    address: dict[str, Any] = context.address_info  # type: ignore[attr-defined]
    if address["node_ip_address"] != LOCAL_NODE_IP:
        log.warning(
            "the local Ray instance listens on %s, not only on loopback (is %s set?)",
            address["node_ip_address"],
            LOCAL_ONLY_ENV,
        )
    return address


def records() -> Path:
    """Where servers record the local Ray instances they started: in Ray's temp directory."""
    from ray._common.utils import get_default_ray_temp_dir

    return leftovers.records_dir(Path(get_default_ray_temp_dir()))  # type: ignore[no-untyped-call]


#: Seconds a port in use is waited for after a crashed server's leftovers were stopped.
PORT_RELEASE_SECONDS = 10.0


def check_before_ray(
    models: Sequence[ModelDeployment], args: argparse.Namespace, wait: float = 0.0
) -> None:
    """What can be refused in one sentence before Ray starts (else a traceback or a hang there);
    a port in use is waited for up to `wait` seconds (leftovers just stopped release theirs)."""
    if not 1 <= args.port <= 65535:
        raise ServeError(f"--port must be between 1 and 65535, not {args.port}.")
    metrics = args.ray_metrics_port
    if metrics and args.address:
        raise ServeError(
            "--metrics-port is for a local Ray instance: a cluster's nodes take theirs from "
            "`ray start --metrics-export-port`."
        )
    if not 0 <= metrics <= 65535 or metrics == args.port:
        raise ServeError(
            f"--metrics-port must be between 1 and 65535 (0: off) and not --port, not {metrics}."
        )
    if args.gpus_per_replica < 0:
        raise ServeError(f"--gpus-per-replica cannot be negative ({args.gpus_per_replica:g}).")
    for model in models:
        if not Path(model.path).is_file():
            raise ServeError(f"The model file of {model.name!r} does not exist: {model.path}.")
    check_port_free(args.host, args.port, wait=wait)
    if metrics:
        check_port_free(LOCAL_NODE_IP, metrics, "--metrics-port", wait=wait)
    if args.address and args.address != "auto":
        check_reachable(args.address)


def check_port_free(host: str, port: int, option: str = "--port", wait: float = 0.0) -> None:
    """Refuse a port another process listens on: Serve's proxy would share it (SO_REUSEPORT) and
    the kernel would split the requests between the two servers. Tried again for `wait` seconds:
    the processes a crashed server left, just stopped, may not have let go of it yet."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ServeError(f"--host {host} is not an address of this machine: {exc}.") from exc
    family, kind, proto, _, address = infos[0]
    deadline = time.monotonic() + wait
    while True:
        with socket.socket(family, kind, proto) as probe:
            # REUSEADDR: a port whose last connections linger in TIME_WAIT is free to listen on.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
                return
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise ServeError(
                        f"Port {port} on {host} ({option}) is already in use (another `bot "
                        f"serve`?): {exc.strerror or exc}."
                    ) from exc
        time.sleep(0.2)


def check_reachable(address: str) -> None:
    """A short TCP connect to the cluster's address: `ray.init` retries an unreachable one for
    minutes."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ServeError(
            f"--address must be HOST:PORT (e.g. 10.0.0.5:6379) or auto, not {address!r}."
        )
    try:
        socket.create_connection((host, int(port)), timeout=ADDRESS_CONNECT_SECONDS).close()
    except OSError as exc:
        raise ServeError(
            f"No Ray cluster answers at {address}: {exc.strerror or exc} "
            "(is `ray start --head` running there?)."
        ) from exc


def local_resources() -> dict[str, float]:
    """The CPUs and GPUs a local Ray instance would have, as Ray itself counts them."""
    from ray._private.accelerators import get_accelerator_manager_for_resource
    from ray._private.utils import get_num_cpus

    manager = get_accelerator_manager_for_resource("GPU")
    gpus = manager.get_current_node_num_accelerators() if manager is not None else 0
    return {"CPU": float(get_num_cpus()), "GPU": float(gpus)}


def check_resources(
    replicas: int, cpus_per_replica: int, gpus_per_replica: float, available: Mapping[str, float]
) -> None:
    """Refuse replicas the cluster cannot place: Serve would wait for them forever."""
    for resource, each in (("CPU", float(cpus_per_replica)), ("GPU", gpus_per_replica)):
        needed, have = replicas * each, available.get(resource, 0.0)
        if needed > have:
            raise ServeError(
                f"{replicas} replica(s) need {needed:g} {resource}(s) in all; Ray has {have:g}"
                + (" (lower --replicas or engine.workers)." if resource == "CPU" else ".")
            )


def read_api_key(path: Path | None, env: Mapping[str, str]) -> ApiKey | None:
    """The key from the file (its first line), else from the environment; None when neither."""
    from bot.serving.server import ApiKey

    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ServeError(
                f"The API key file {path} cannot be read: {exc.strerror or exc}."
            ) from exc
        key = text.strip()
        if not key or "\n" in key:
            raise ServeError(f"The API key file {path} must hold the key alone, on one line.")
        return ApiKey(key)
    key = env.get(SERVE_API_KEY_ENV, "").strip()
    return ApiKey(key) if key else None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
