"""The model server: each configured ONNX model as a Ray Serve application, and a small index.

    /v1/models/NAME     application NAME, deployment NAME: replicas each running an `Engine`
        GET  /              the model's metadata, its provider, replica count, and the stats of
                            the answering replica's engine
        POST /complete      the whole completion as JSON
        POST /stream        NDJSON chunks, the last one carrying the completion
    /                   application "index", deployment "index"
        GET  /healthz       ok, and the models served
        GET  /v1/models     every model, as GET /v1/models/NAME describes it
        *    /v1/models/X   an unknown model: 404

Each model is its own application with its own route prefix, so a request goes from Serve's
HTTP proxy straight to a replica of its model: no extra hop through a router deployment.

Each replica runs the continuous-batching `Engine` (not `@serve.batch`, which forms a batch once
and runs it to the end: a request arriving meanwhile would wait for the whole batch). Serve sends
a replica up to `max_ongoing_requests` requests at once; the engine batches them, and refuses
what its queue cannot hold with a 429.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations (`Request`) as
# objects, and Serve may rebuild these classes in a replica where string annotations cannot be
# resolved.
import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray import serve
from ray.serve.handle import DeploymentHandle

from bot.errors import CharbotError, UnknownModelError
from bot.generation.backend import StreamChunk
from bot.generation.engine import Engine
from bot.generation.params import EngineConfig
from bot.serving import wire
from bot.serving.metrics import ReplicaMetrics

log = logging.getLogger(__name__)

INDEX = "index"
# Per-request access logs cost the proxy and each replica a log line per request, a noticeable
# share of a short completion's time; Serve's other logs stay on.
LOGGING = {"enable_access_log": False}
# A replica runs its requests on its own event loop rather than on a second loop in a thread:
# one thread hop less per request. The engine's worker threads run the model either way.
REPLICA_ENV = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}
# Seconds between updates of a replica's queue-depth and active-requests gauges.
GAUGE_INTERVAL = 1.0


@dataclass(frozen=True)
class ModelDeployment:
    """How one model is served: its file (at the same path on every node), engine and replicas."""

    name: str
    path: str
    engine: EngineConfig
    replicas: int = 1
    gpus_per_replica: float = 0.0

    @property
    def route_prefix(self) -> str:
        return f"{wire.API_PREFIX}/{self.name}"

    @property
    def max_ongoing_requests(self) -> int:
        # Everything the engine can hold (its batches and its queue), plus one: the request over
        # capacity reaches the engine and gets its 429 instead of waiting in Serve's queue.
        e = self.engine
        return e.workers * e.max_batch + e.max_queue + 1


def error_response(exc: CharbotError) -> JSONResponse:
    status, body = wire.error_status(exc)
    headers = {"Retry-After": str(wire.RETRY_AFTER_SECONDS)} if status == 429 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _json_api() -> FastAPI:
    api = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    async def charbot_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, CharbotError)
        return error_response(exc)

    api.add_exception_handler(CharbotError, charbot_error)
    return api


def running_replicas(name: str) -> int:
    """How many replicas of model `name` are running (asks Serve's controller: blocking)."""
    application = serve.status().applications.get(name)
    if application is None:
        return 0
    deployment = application.deployments.get(name)
    if deployment is None:
        return 0
    # ReplicaState is a str enum: its RUNNING member equals "RUNNING".
    return sum(n for state, n in deployment.replica_states.items() if state == "RUNNING")


async def _ndjson(
    first: StreamChunk, chunks: AsyncIterator[StreamChunk], metrics: ReplicaMetrics
) -> AsyncIterator[bytes]:
    """The stream's lines. A client that goes away cancels this generator, and closing the
    engine's stream frees the request's batch row at the worker's next step."""
    try:
        yield wire.chunk_line(first.text, first.completion)
        async for chunk in chunks:
            yield wire.chunk_line(chunk.text, chunk.completion)
        metrics.finished(None)
    except CharbotError as exc:
        metrics.finished(exc)
        yield json.dumps(wire.error_status(exc)[1]).encode() + b"\n"
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


model_api = _json_api()


@serve.ingress(model_api)
class ModelServer:
    """One replica: an `Engine` on the model, behind the model's routes."""

    async def __init__(self, spec: ModelDeployment) -> None:  # type: ignore[misc]  # Serve awaits it
        self.spec = spec
        # The engine's figures go to Ray's metrics API, so Ray's Prometheus endpoint has them.
        self.metrics = ReplicaMetrics(spec.name)
        self.engine = await Engine.start(
            spec.path, spec.engine, name=spec.name, observer=self.metrics
        )
        self._gauges = asyncio.create_task(self._report_gauges())

    async def _report_gauges(self) -> None:
        while True:
            self.metrics.gauges(self.engine.stats())
            await asyncio.sleep(GAUGE_INTERVAL)

    @model_api.get("/")
    async def describe(self) -> dict[str, Any]:
        """The model's metadata and provider, the replica count, and this replica's stats."""
        return {
            "name": self.spec.name,
            "info": wire.info_json(self.engine.info),
            "replicas": await asyncio.to_thread(running_replicas, self.spec.name),
            # Which replica answered (its Ray actor's name), and its engine's figures.
            "replica": serve.get_replica_context().replica_id.to_full_id_str(),
            "stats": wire.stats_json(self.engine.stats()),
        }

    @model_api.post("/complete")
    async def complete(self, request: Request) -> Response:
        try:
            prompt, params = wire.parse_request(wire.loads(await request.body()))
            completion = await self.engine.complete(prompt, params)
        except CharbotError as exc:
            self.metrics.finished(exc)
            raise
        self.metrics.finished(None)
        # Encoded here: FastAPI's generic encoder walks the whole answer first, for nothing.
        body = json.dumps({"completion": wire.completion_json(completion)})
        return Response(body, media_type="application/json")

    @model_api.post("/stream")
    async def stream(self, request: Request) -> StreamingResponse:
        try:
            prompt, params = wire.parse_request(wire.loads(await request.body()))
            chunks = self.engine.stream(prompt, params)
            # The first chunk before the headers: a refused request (bad params, busy) gets its
            # status code, not a 200 with an error inside.
            first = await anext(chunks)
        except CharbotError as exc:
            self.metrics.finished(exc)
            raise
        return StreamingResponse(
            _ndjson(first, chunks, self.metrics), media_type="application/x-ndjson"
        )

    async def __del__(self) -> None:
        self._gauges.cancel()
        await self.engine.close()


index_api = _json_api()


@serve.ingress(index_api)
class Index:
    """Health, the list of models, and a 404 for the names no model has."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)

    def _model(self, name: str) -> DeploymentHandle[Any]:
        return serve.get_deployment_handle(name, app_name=name)

    @index_api.get("/healthz")
    async def healthz(self) -> dict[str, Any]:
        return {"status": "ok", "models": self.names}

    @index_api.get(wire.API_PREFIX)
    async def models(self) -> dict[str, Any]:
        described = await asyncio.gather(*(self._model(n).describe.remote() for n in self.names))
        return {"models": list(described)}

    @index_api.api_route(wire.API_PREFIX + "/{name}/{rest:path}", methods=["GET", "POST"])
    @index_api.api_route(wire.API_PREFIX + "/{name}", methods=["GET", "POST"])
    async def unknown(self, name: str) -> JSONResponse:
        # Only reached for names without an application of their own.
        known = ", ".join(self.names) or "none"
        return error_response(
            UnknownModelError(f"There is no model named {name!r} here; served: {known}.")
        )


def start_serve(host: str, port: int) -> None:
    """Start Serve on the connected Ray cluster, its HTTP proxy on `host:port`."""
    serve.start(http_options={"host": host, "port": port}, logging_config=LOGGING)


def deploy(models: Sequence[ModelDeployment]) -> None:
    """Deploy (or update) every model's application, then the index. Serve must be started."""
    for spec in models:
        options: dict[str, Any] = {
            "num_cpus": spec.engine.workers,
            "runtime_env": {"env_vars": REPLICA_ENV},
        }
        if spec.gpus_per_replica:
            options["num_gpus"] = spec.gpus_per_replica
        deployment = serve.deployment(
            name=spec.name,
            num_replicas=spec.replicas,
            ray_actor_options=options,
            max_ongoing_requests=spec.max_ongoing_requests,
            logging_config=LOGGING,
        )(ModelServer)
        serve.run(deployment.bind(spec), name=spec.name, route_prefix=spec.route_prefix)
        log.info("serving %s at %s (%d replica(s))", spec.name, spec.route_prefix, spec.replicas)
    index = serve.deployment(name=INDEX, ray_actor_options={"num_cpus": 0}, logging_config=LOGGING)(
        Index
    )
    serve.run(index.bind([m.name for m in models]), name=INDEX, route_prefix="/")
