"""The model server on Ray Serve: one application, "charbot", whose one deployment is the ingress.

Each replica of that deployment holds an `Engine` for every configured model and answers the
whole OpenAI-compatible API (`bot.serving.server`) itself: a request goes from Serve's HTTP proxy
straight to a replica, which names the model from the body. One hop, as when each model was an
application of its own, and no router deployment in between.

Each replica runs the continuous-batching `Engine` (not `@serve.batch`, which forms a batch once
and runs it to the end: a request arriving meanwhile would wait for the whole batch). Serve sends
a replica up to `max_ongoing_requests` requests at once; the engines batch them, and refuse what
their queues cannot hold with a 429.
"""

# No `from __future__ import annotations`: Serve may rebuild these classes in a replica where
# string annotations cannot be resolved.
import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import ray
from fastapi import FastAPI
from ray import serve

from bot.serving.metrics import ReplicaMetrics
from bot.serving.server import ApiKey, ModelDeployment, ModelServer, build_app, cpus_per_replica

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

__all__ = ["APP", "ModelDeployment", "OpenAIServer", "deploy", "running_replicas", "start_serve"]


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


@serve.ingress()
class OpenAIServer:
    """One replica: an `Engine` per model, behind the OpenAI-compatible app."""

    async def __init__(  # type: ignore[misc]  # Serve awaits it
        self, models: Sequence[ModelDeployment], api_key: ApiKey | None
    ) -> None:
        self.api_key = api_key
        # The engines' figures go to Ray's metrics API, so Ray's Prometheus endpoint has them.
        self.metrics = ReplicaMetrics()
        self.server = await ModelServer.start(models, observer=self.metrics)
        self._gauges = asyncio.create_task(self._report_gauges())

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_app(self.server, self.api_key, self.metrics, ServePlacement())

    async def _report_gauges(self) -> None:
        while True:
            for name, model in self.server.models.items():
                self.metrics.gauges(name, model.engine.stats())
            await asyncio.sleep(GAUGE_INTERVAL)

    async def __del__(self) -> None:
        self._gauges.cancel()
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
) -> None:
    """Deploy (or update) the server on Serve, which must be started: `replicas` replicas, each
    reserving a CPU per engine worker thread of every model."""
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
    serve.run(deployment.bind(list(models), api_key), name=APP, route_prefix="/")
    log.info("serving %s (%d replica(s))", ", ".join(m.name for m in models), replicas)
