"""`python -m bot serve`: the config's ONNX models on Ray Serve, in the foreground until a signal,
behind one OpenAI-compatible API (docs/serving.md).

Without `--address` it starts a local Ray instance (no dashboard, a small object store); with one
it joins that cluster (`ray start --head` on one machine, `ray start --address=HEAD:6379` on the
others). SIGINT or SIGTERM shuts Serve down: the replicas close their engines.

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
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.config import SERVE_API_KEY_ENV, Config
from bot.errors import CharbotError
from bot.generation.params import EngineConfig

if TYPE_CHECKING:
    from bot.serving.server import ApiKey, ModelDeployment

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
    serve.add_argument(
        "--host", default=DEFAULT_HOST, help="the HTTP address to listen on (default: loopback)"
    )
    serve.add_argument(
        "--api-key-file",
        type=Path,
        help=f"a file holding the API key clients must send (or set {SERVE_API_KEY_ENV})",
    )
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="the HTTP port")
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
    models = deployments(config)
    api_key = read_api_key(args.api_key_file, os.environ)
    if api_key is None and not is_loopback(args.host):
        log.warning(
            "serving on %s with no API key: anyone who can reach it can use it "
            "(give --api-key-file or %s)",
            args.host,
            SERVE_API_KEY_ENV,
        )
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
        deploy(models, args.replicas, args.gpus_per_replica, api_key)
        base = f"http://{args.host}:{args.port}/v1"
        for model in models:
            print(f"serving {model.name} at {base} (model {model.name!r})")
        sys.stdout.flush()
        stop.wait()
        log.info("shutting down the model server")
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()
    return 0


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
