"""The model server on Ray Serve: one application, "charbot", whose one deployment is the ingress.

Each replica of that deployment holds an `Engine` for every configured model and answers the
whole OpenAI-compatible API (`bot.serving.server`) itself: a request goes from Serve's HTTP proxy
straight to a replica, which names the model from the body. One hop, as when each model was an
application of its own, and no router deployment in between.

Each replica runs the continuous-batching `Engine` (not `@serve.batch`, which forms a batch once
and runs it to the end: a request arriving meanwhile would wait for the whole batch). Serve sends
a replica up to `max_ongoing_requests` requests at once; the engines batch them, and refuse what
their queues cannot hold with a 429.

Draining (SIGTERM to `python -m bot serve`): the driver sets a `DrainSignal`, an actor every
replica waits on; each replica then refuses new requests with a 503 (`bot.serving.server.Drain`)
and reports when its requests in flight have finished. The driver shuts Serve down once every
running replica has, or when its bound has passed.
"""

# No `from __future__ import annotations`: Serve may rebuild these classes in a replica where
# string annotations cannot be resolved.
import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import ray
from fastapi import FastAPI
from ray import serve

from bot.serving.metrics import ReplicaMetrics
from bot.serving.server import (
    ApiKey,
    Drain,
    ModelDeployment,
    ModelServer,
    build_app,
    cpus_per_replica,
)

log = logging.getLogger(__name__)

APP = "charbot"  # the Serve application, and its one deployment
# Per-request access logs cost the proxy and each replica a log line per request, a noticeable
# share of a short completion's time; Serve's other logs stay on.
LOGGING = {"enable_access_log": False}
# A replica runs its requests on its own event loop rather than on a second loop in a thread:
# one thread hop less per request. The engines' worker threads run the models either way.
REPLICA_ENV = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}
# Seconds between updates of a replica's queue-depth and active-requests gauges.
GAUGE_INTERVAL = 1.0
# Seconds between the driver's looks at which replicas have drained.
DRAIN_POLL = 0.2

__all__ = [
    "APP",
    "DrainSignal",
    "ModelDeployment",
    "OpenAIServer",
    "deploy",
    "drain",
    "running_replicas",
    "start_serve",
]


def running_replicas() -> int:
    """How many replicas of the server are running (asks Serve's controller: blocking)."""
    application = serve.status().applications.get(APP)
    deployment = None if application is None else application.deployments.get(APP)
    if deployment is None:
        return 0
    # ReplicaState is a str enum: its RUNNING member equals "RUNNING".
    return sum(n for state, n in deployment.replica_states.items() if state == "RUNNING")


class ServePlacement:
    """The replica count (from Serve's controller, cached a moment) and this replica's id."""

    CACHE_SECONDS = 1.0

    def __init__(self) -> None:
        self._count = 0
        self._asked = -1e9

    async def replicas(self) -> int:
        now = asyncio.get_running_loop().time()
        if now - self._asked > self.CACHE_SECONDS:
            self._count = await asyncio.to_thread(running_replicas)
            self._asked = now
        return self._count

    def replica(self) -> str:
        # The replica's Ray actor name: what `ray.get_actor(name, namespace="serve")` finds.
        return str(serve.get_replica_context().replica_id.to_full_id_str())

    def node(self) -> str:
        """The Ray node the replica runs on (its id, as `ray.nodes()` lists it)."""
        return str(ray.get_runtime_context().get_node_id())


@ray.remote(num_cpus=0)
class DrainSignal:
    """Set once by the driver; every replica waits on it, then reports when it has drained."""

    def __init__(self) -> None:
        self._set = asyncio.Event()
        self._drained: set[str] = set()

    async def set(self) -> None:
        self._set.set()

    async def wait(self) -> None:
        await self._set.wait()

    async def drained(self, replica: str) -> None:
        self._drained.add(replica)

    async def replicas_drained(self) -> list[str]:
        return sorted(self._drained)


@serve.ingress()
class OpenAIServer:
    """One replica: an `Engine` per model, behind the OpenAI-compatible app."""

    async def __init__(  # type: ignore[misc]  # Serve awaits it
        self, models: Sequence[ModelDeployment], api_key: ApiKey | None, signal: Any = None
    ) -> None:
        self.api_key = api_key
        # The engines' figures go to Ray's metrics API, so Ray's Prometheus endpoint has them.
        self.metrics = ReplicaMetrics()
        self.server = await ModelServer.start(models, observer=self.metrics)
        self.placement = ServePlacement()
        self.drain = Drain()
        self._gauges = asyncio.create_task(self._report_gauges())
        self._drainer = None if signal is None else asyncio.create_task(self._drain_on(signal))

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_app(self.server, self.api_key, self.metrics, self.placement, self.drain)

    async def _drain_on(self, signal: Any) -> None:
        """Wait for the driver's drain signal; drain; say so."""
        try:
            await signal.wait.remote()
            self.drain.start()
            await self.drain.wait_idle()
            await signal.drained.remote(self.placement.replica())
        except ray.exceptions.RayActorError:  # the driver is gone: Serve goes with it
            log.warning("the drain signal is gone; this replica will not drain")

    async def _report_gauges(self) -> None:
        while True:
            for name, model in self.server.models.items():
                self.metrics.gauges(name, model.engine.stats())
            await asyncio.sleep(GAUGE_INTERVAL)

    async def __del__(self) -> None:
        self._gauges.cancel()
        if self._drainer is not None:
            self._drainer.cancel()
        await self.server.close()


def start_serve(host: str, port: int) -> None:
    """Start Serve on the connected Ray cluster, its HTTP proxy on `host:port`."""
    serve.start(http_options={"host": host, "port": port}, logging_config=LOGGING)


def max_ongoing_requests(models: Sequence[ModelDeployment]) -> int:
    """Everything the engines can hold (their batches and queues), plus one: a request over a
    model's capacity reaches its engine and gets a 429 instead of waiting in Serve's queue."""
    held = (m.engine.threads.workers * m.engine.max_batch + m.engine.max_queue for m in models)
    return sum(held) + 1


def deploy(
    models: Sequence[ModelDeployment],
    replicas: int = 1,
    gpus_per_replica: float = 0.0,
    api_key: ApiKey | None = None,
    signal: Any = None,
) -> None:
    """Deploy (or update) the server on Serve, which must be started: `replicas` replicas, each
    reserving a CPU per engine worker thread of every model, draining when `signal` (a
    `DrainSignal` actor) is set."""
    options: dict[str, Any] = {
        "num_cpus": cpus_per_replica(models),
        "runtime_env": {"env_vars": REPLICA_ENV},
    }
    if gpus_per_replica:
        options["num_gpus"] = gpus_per_replica
    deployment = serve.deployment(
        name=APP,
        num_replicas=replicas,
        ray_actor_options=options,
        max_ongoing_requests=max_ongoing_requests(models),
        logging_config=LOGGING,
    )(OpenAIServer)
    serve.run(deployment.bind(list(models), api_key, signal), name=APP, route_prefix="/")
    log.info("serving %s (%d replica(s))", ", ".join(m.name for m in models), replicas)


def drain(signal: Any, bound: float, hurry: Callable[[], bool] = lambda: False) -> bool:
    """Set `signal` and wait until every running replica has drained, at most `bound` seconds
    (or until `hurry()`). Whether all had."""
    started = time.monotonic()
    try:
        ray.get(signal.set.remote())
        while True:
            drained = len(ray.get(signal.replicas_drained.remote()))
            running = running_replicas()
            waited = time.monotonic() - started
            if drained >= running:
                log.info("drained %d replica(s) in %.1f s", drained, waited)
                return True
            if waited >= bound or hurry():
                log.warning(
                    "%d of %d replica(s) still had requests in flight after %.1f s: they are cut",
                    running - drained,
                    running,
                    waited,
                )
                return False
            time.sleep(DRAIN_POLL)
    except ray.exceptions.RayError as exc:  # the cluster is going: nothing left to drain
        log.warning("could not drain the replicas: %s", exc)
        return False
