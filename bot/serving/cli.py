"""`python -m bot serve`: the config's ONNX models on Ray Serve, in the foreground until a signal.

Without `--address` it starts a local Ray instance (no dashboard, a small object store); with one
it joins that cluster (`ray start --head` on one machine, `ray start --address=HEAD:6379` on the
others). SIGINT or SIGTERM shuts Serve down: the replicas close their engines.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

from bot.config import Config
from bot.errors import CharbotError
from bot.generation.params import EngineConfig

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
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
    serve.add_argument("--host", default=DEFAULT_HOST, help="the HTTP address to listen on")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="the HTTP port")
    serve.add_argument(
        "--address", help="join this Ray cluster (e.g. HEAD:6379 or auto) instead of a local one"
    )


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def deployments(config: Config, replicas: int, gpus_per_replica: float) -> list[Any]:
    """One `ModelDeployment` per ONNX model of the config."""
    from bot.runtime import engine_config
    from bot.serving.app import ModelDeployment

    engine: EngineConfig = engine_config(config)
    models = [
        ModelDeployment(spec.name, spec.path, engine, replicas, gpus_per_replica)
        for spec in config.models.models.values()
        if spec.backend == SERVED_KIND and spec.path is not None
    ]
    if not models:
        raise ServeError("The config names no ONNX model to serve (backend = 'onnx', a path).")
    return models


def run_serve(config: Config, args: argparse.Namespace) -> int:
    try:
        import ray
        from ray import serve

        from bot.serving.app import deploy, start_serve
    except ImportError:
        print(
            "error: `python -m bot serve` needs Ray Serve: pip install 'charbot[serve]'.",
            file=sys.stderr,
        )
        return 2
    models = deployments(config, args.replicas, args.gpus_per_replica)
    if args.address:
        ray.init(address=args.address)
    else:
        # "local": a new instance even when `ray start` left one running on this machine.
        ray.init(address="local", include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES)
    # After ray.init, which installs a SIGTERM handler of its own that exits at once.
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    try:
        start_serve(args.host, args.port)
        deploy(models)
        for model in models:
            print(f"serving {model.name} at http://{args.host}:{args.port}{model.route_prefix}")
        sys.stdout.flush()
        stop.wait()
        log.info("shutting down the model server")
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()
    return 0
