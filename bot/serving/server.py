"""The model server's HTTP API: every configured model's `Engine`, behind one OpenAI-compatible
FastAPI app. No Ray here: Serve runs this app in each replica (`bot.serving.app`), and the
serving benchmark runs it in a plain uvicorn process to measure what Ray adds.

    GET  /healthz                 ok, and the models served (no key needed); 503 while draining
    GET  /v1/models               every model: {"object": "list", "data": [...]}
    GET  /v1/models/{id}          one model, with this replica's engine figures
    POST /v1/completions          text after a prompt (or each of a list of prompts)
    POST /v1/chat/completions     the next turn of a conversation, by the model's chat template

Every answer and error is in OpenAI's shapes (`bot.serving.protocol`); a stream is Server-Sent
Events ending in `data: [DONE]`. With an API key every /v1 route needs `Authorization: Bearer
KEY`, compared in constant time. Once the server drains (`Drain`), every request gets a 503
while those in flight finish.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations (`Request`) as
# objects.
import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.errors import CharbotError, UnknownModelError
from bot.generation.backend import BackendStats, Completion, ModelInfo, StreamChunk
from bot.generation.engine import Engine
from bot.generation.observer import EngineObserver
from bot.generation.params import EngineConfig, GenerationParams, validate_prompt
from bot.serving import protocol
from bot.serving.protocol import AnswerIds
from models.chat import DEFAULT_CHAT_TEMPLATE, ChatTemplate, is_chat_template, render_chat

log = logging.getLogger(__name__)

COMPLETIONS = protocol.API_PREFIX + "/completions"
CHAT = protocol.API_PREFIX + "/chat/completions"
MODELS = protocol.API_PREFIX + "/models"
#: Who answers in a chat when neither the request nor the model's config names a speaker.
DEFAULT_ASSISTANT = "assistant"
#: The shortest time between two events of a stream, after its first. Through Serve each event
#: is a message from the replica to the proxy, and an engine hands a stream its text whenever
#: any request of its batch ends: at 64 concurrent 200-character streams on 2 cores, events at
#: most every 0.2 s cost a third of the throughput, every 0.5 s a tenth, as did 2 in all (medians
#: of 6 paired runs, bench/serving.py's way). A reader sees new text twice a second.
STREAM_INTERVAL = 0.5


@dataclass(frozen=True)
class ModelDeployment:
    """One model the server runs: its file (at the same path on every node), its engine, and the
    speaker that answers in a chat (the config's `chat_name`)."""

    name: str
    path: str
    engine: EngineConfig
    chat_name: str | None = None


def cpus_per_replica(models: Sequence[ModelDeployment]) -> int:
    """The CPUs a replica reserves: one per engine worker thread of every model it serves."""
    return sum(m.engine.threads.workers for m in models)


@dataclass(frozen=True)
class ApiKey:
    """The server's key; its repr never shows it (Ray and logs may print what holds it)."""

    value: str = field(repr=False)

    def matches(self, header: str | None) -> bool:
        given = (header or "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), self.value.encode())


class RequestObserver(Protocol):
    """Where the app reports each request's outcome (Ray's metrics in a replica)."""

    def finished(self, model: str, route: str, error: CharbotError | None) -> None: ...


class _NoMetrics:
    def finished(self, model: str, route: str, error: CharbotError | None) -> None:
        pass


@dataclass
class ServedModel:
    spec: ModelDeployment
    engine: Engine
    created: int

    @property
    def chat_template(self) -> ChatTemplate:
        template = self.engine.info.details.get("chat_template")
        return template if is_chat_template(template) else DEFAULT_CHAT_TEMPLATE


class ModelServer:
    """The engines of every model, by name. Use `await ModelServer.start(models)`."""

    def __init__(self, models: Mapping[str, ServedModel]) -> None:
        self.models = dict(models)

    @classmethod
    async def start(
        cls, specs: Sequence[ModelDeployment], observer: EngineObserver | None = None
    ) -> "ModelServer":
        started: dict[str, ServedModel] = {}
        try:
            for spec in specs:
                engine = await Engine.start(
                    spec.path, spec.engine, name=spec.name, observer=observer
                )
                created = int(engine.info.path.stat().st_mtime) if engine.info.path else 0
                started[spec.name] = ServedModel(spec, engine, created)
        except BaseException:
            await asyncio.gather(*(m.engine.close() for m in started.values()))
            raise
        return cls(started)

    def get(self, name: str) -> ServedModel:
        model = self.models.get(name)
        if model is None:
            known = ", ".join(self.models) or "none"
            raise UnknownModelError(f"There is no model {name!r} here; served: {known}.")
        return model

    async def close(self) -> None:
        await asyncio.gather(*(m.engine.close() for m in self.models.values()))


def info_json(info: ModelInfo) -> dict[str, Any]:
    """A model's description for clients (its file's path on the server is left out)."""
    return {
        "description": info.description,
        "level": info.level,
        "vocab_size": info.vocab_size,
        "parameters": info.parameters,
        "details": dict(info.details),
        "training": dict(info.training),
        "provider": info.provider,
    }


def stats_json(stats: BackendStats) -> dict[str, Any]:
    return {
        "queue_depth": stats.queue_depth,
        "active_requests": stats.active_requests,
        "requests_served": stats.requests_served,
        "characters_generated": stats.characters_generated,
        "chars_per_second": stats.chars_per_second,
        "requests_failed": stats.requests_failed,
        "largest_batch": stats.largest_batch,
    }


class Placement(Protocol):
    """Where this app runs: how many replicas serve it, which one this is, and on which node."""

    async def replicas(self) -> int: ...

    def replica(self) -> str: ...

    def node(self) -> str: ...


class Drain:
    """Whether the app still takes requests, and how many it is answering. Once `start`ed, every
    new request is refused with a 503 (and /healthz says not ready) while those in flight, streams
    included, run to their end; `wait_idle` returns when none is left."""

    def __init__(self) -> None:
        self.draining = False
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def start(self) -> None:
        if not self.draining:
            log.info("draining: no new requests; %d in flight", self.in_flight)
        self.draining = True

    async def wait_idle(self) -> None:
        await self._idle.wait()

    def _enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def _leave(self) -> None:
        self.in_flight -= 1
        if not self.in_flight:
            self._idle.set()


class _DrainGate:
    """ASGI middleware: counts the requests in flight (until a stream's last byte), and answers
    every new one with a 503 once the server drains."""

    def __init__(self, app: ASGIApp, drain: Drain, models: Sequence[str]) -> None:
        self.app = app
        self.drain = drain
        self.models = list(models)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.drain.draining:
            if scope["path"] == "/healthz":
                refusal = JSONResponse({"status": "draining", "models": self.models}, 503)
            else:
                refusal = error_response(
                    protocol.ServerDraining("The model server is shutting down: try again.")
                )
            await refusal(scope, receive, send)
            return
        self.drain._enter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.drain._leave()


class OneProcess:
    """The app in a process of its own (no Ray): one replica."""

    async def replicas(self) -> int:
        return 1

    def replica(self) -> str:
        return "local"

    def node(self) -> str:
        return "local"


def build_app(
    server: ModelServer,
    api_key: ApiKey | None = None,
    metrics: RequestObserver | None = None,
    placement: Placement | None = None,
    drain: Drain | None = None,
) -> FastAPI:
    """The API over `server`'s models; `drain` stops it taking requests."""
    observer: RequestObserver = metrics or _NoMetrics()
    where: Placement = placement or OneProcess()
    # No redirect to a trailing slash (curl would get an empty 307), no docs routes.
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, redirect_slashes=False)
    app.add_middleware(_DrainGate, drain=drain or Drain(), models=list(server.models))

    async def charbot_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, CharbotError)
        return error_response(exc)

    def authorize(request: Request) -> None:
        if api_key is not None and not api_key.matches(request.headers.get("authorization")):
            raise protocol.AuthenticationFailed(
                "This server needs an API key: send it as Authorization: Bearer KEY."
            )

    async def http_error(request: Request, exc: Exception) -> Response:
        """A route or method the API lacks (Starlette's 404 and 405), in OpenAI's shape; under
        /v1 a request without the key hears only that it needs one."""
        assert isinstance(exc, HTTPException)
        try:
            if request.url.path.startswith(protocol.API_PREFIX):
                authorize(request)
        except CharbotError as refused:
            return error_response(refused)
        if exc.status_code == 405:
            message = f"The route {request.url.path} does not take {request.method} requests."
        else:
            message = f"There is no route {request.method} {request.url.path}."
        return error_response(protocol.RouteNotFound(message, exc.status_code))

    app.add_exception_handler(CharbotError, charbot_error)
    app.add_exception_handler(HTTPException, http_error)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "models": list(server.models)}

    @app.get(MODELS)
    async def list_models(request: Request) -> Response:
        authorize(request)
        replicas = await where.replicas()
        data = [_model_json(m, replicas) for m in server.models.values()]
        return _json({"object": "list", "data": data})

    @app.get(MODELS + "/{model_id:path}")
    async def get_model(request: Request, model_id: str) -> Response:
        authorize(request)
        served = server.get(model_id.rstrip("/"))
        described = _model_json(served, await where.replicas())
        described[protocol.EXTRA]["replica"] = where.replica()
        described[protocol.EXTRA]["node"] = where.node()
        described[protocol.EXTRA]["stats"] = stats_json(served.engine.stats())
        return _json(described)

    @app.post(COMPLETIONS)
    async def completions(request: Request) -> Response:
        authorize(request)
        name = ""
        try:
            body = _loads(await request.body())
            name = _model_name(body)
            served = server.get(name)
            req = protocol.parse_completion_request(body, served.spec.engine.limits)
            ids = AnswerIds.new("cmpl", req.model)
            if req.stream:
                prompt = req.prompts[0]
                chunks, first = await _started(served.engine.stream(prompt, req.params))
                events = _text_events(ids, req, first, chunks, observer, name)
                return StreamingResponse(events, media_type="text/event-stream")
            results = await _all(served.engine.complete(p, req.params) for p in req.prompts)
        except CharbotError as exc:
            observer.finished(name, COMPLETIONS, exc)
            raise
        observer.finished(name, COMPLETIONS, None)
        return _json(protocol.text_completion(ids, results, req.echo))

    @app.post(CHAT)
    async def chat(request: Request) -> Response:
        authorize(request)
        name = ""
        try:
            body = _loads(await request.body())
            name = _model_name(body)
            served = server.get(name)
            req = protocol.parse_chat_request(body, served.spec.engine.limits)
            prompt, params = _chat_prompt(served, req)
            ids = AnswerIds.new("chatcmpl", req.model)
            if req.stream:
                chunks, first = await _started(served.engine.stream(prompt, params))
                events = _chat_events(ids, req.include_usage, first, chunks, observer, name)
                return StreamingResponse(events, media_type="text/event-stream")
            result = await served.engine.complete(prompt, params)
        except CharbotError as exc:
            observer.finished(name, CHAT, exc)
            raise
        observer.finished(name, CHAT, None)
        return _json(protocol.chat_completion(ids, result))

    return app


def error_response(exc: CharbotError) -> JSONResponse:
    status, body = protocol.error_status(exc)
    headers = {"Retry-After": str(protocol.RETRY_AFTER_SECONDS)} if status == 429 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _json(data: Any) -> Response:
    # Encoded here: FastAPI's generic encoder walks the whole answer first, for nothing.
    return Response(json.dumps(data, ensure_ascii=False), media_type="application/json")


def _loads(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise protocol.BadRequest("The request body is not valid JSON.") from exc


def _model_name(body: Any) -> str:
    """The model a body names, checked before the rest (its limits check the other fields)."""
    if not isinstance(body, Mapping):
        raise protocol.BadRequest(
            f"The request body must be a JSON object, not {protocol.json_type(body)}."
        )
    name = body.get("model")
    if not isinstance(name, str):
        if name is None:
            raise protocol.BadRequest("The request needs model (the id of a model).", "model")
        raise protocol.BadRequest(
            f"model must be a string, not {protocol.json_type(name)}.", "model"
        )
    return name


def _model_json(served: ServedModel, replicas: int) -> dict[str, Any]:
    info = served.engine.info
    return {
        "id": served.spec.name,
        "object": "model",
        "created": served.created,
        "owned_by": protocol.OWNER,
        protocol.EXTRA: {
            **info_json(info),
            "chat_template": served.chat_template,
            "chat_name": served.spec.chat_name,
            "max_tokens": served.spec.engine.limits.max_length,
            "replicas": replicas,
        },
    }


def _chat_prompt(served: ServedModel, req: protocol.ChatRequest) -> tuple[str, GenerationParams]:
    """The prompt the model's chat template makes of the messages, and the params that end the
    answer with the answering speaker's turn. The oldest text goes first when the conversation
    is longer than a prompt may be."""
    answerer = req.assistant_name or served.spec.chat_name or DEFAULT_ASSISTANT
    chat = render_chat(served.chat_template, req.messages, answerer)
    limit = served.spec.engine.limits.max_prompt
    prompt = validate_prompt(chat.prompt[-limit:], served.spec.engine.limits)
    return prompt, protocol.with_stops(req.params, chat.stop)


async def _all(requests: Any) -> list[Completion]:
    """Run the completions side by side, in order; one failure cancels the others."""
    tasks = [asyncio.ensure_future(r) for r in requests]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()


async def _started(
    chunks: AsyncIterator[StreamChunk],
) -> tuple[AsyncIterator[StreamChunk], StreamChunk]:
    """The stream and its first chunk: taken before the headers are sent, so a refused request
    (bad params, busy) gets its status code, not a 200 with an error inside."""
    try:
        return chunks, await anext(chunks)
    except BaseException:
        await chunks.aclose()  # type: ignore[attr-defined]
        raise


def _event(data: Any) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


async def _events(
    first: StreamChunk,
    chunks: AsyncIterator[StreamChunk],
    piece: Callable[[str], Any],
    last: Callable[[str, Completion], Any],
    observer: RequestObserver,
    model: str,
    route: str,
) -> AsyncIterator[bytes]:
    """A stream's events: the first piece of text at once, then what arrived at most every
    `STREAM_INTERVAL` seconds, the last carrying the finish reason, then [DONE]; a failure after
    the first is an error event. A client that goes away cancels this generator, and closing the
    engine's stream frees the request's batch row at the worker's next step."""
    clock = asyncio.get_running_loop().time
    sent, pending = -STREAM_INTERVAL, ""
    try:
        chunk = first
        while chunk.completion is None:
            pending += chunk.text
            if pending and clock() - sent >= STREAM_INTERVAL:
                yield _event(piece(pending))
                sent, pending = clock(), ""
            chunk = await anext(chunks)
        yield _event(last(pending + chunk.text, chunk.completion))
        yield DONE
        observer.finished(model, route, None)
    except CharbotError as exc:
        observer.finished(model, route, exc)
        yield _event(protocol.error_status(exc)[1])
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


def _text_events(
    ids: AnswerIds,
    req: protocol.CompletionRequest,
    first: StreamChunk,
    chunks: AsyncIterator[StreamChunk],
    observer: RequestObserver,
    model: str,
) -> AsyncIterator[bytes]:
    if req.echo:
        first = StreamChunk(req.prompts[0] + first.text, first.completion)
    return _events(
        first,
        chunks,
        lambda text: protocol.text_chunk(ids, text),
        lambda text, done: protocol.text_chunk(ids, text, done, req.include_usage),
        observer,
        model,
        COMPLETIONS,
    )


async def _chat_events(
    ids: AnswerIds,
    include_usage: bool,
    first: StreamChunk,
    chunks: AsyncIterator[StreamChunk],
    observer: RequestObserver,
    model: str,
) -> AsyncIterator[bytes]:
    yield _event(protocol.chat_chunk(ids, {"role": "assistant", "content": ""}))
    events = _events(
        first,
        chunks,
        lambda text: protocol.chat_chunk(ids, {"content": text}),
        lambda text, done: protocol.chat_chunk(
            ids, {"content": text} if text else {}, done, include_usage
        ),
        observer,
        model,
        CHAT,
    )
    try:
        async for event in events:
            yield event
    finally:
        with contextlib.suppress(Exception):
            await events.aclose()  # type: ignore[attr-defined]
