"""The bot's `openai` backend against the real model server (Ray Serve on a local cluster)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import openai
import pytest
import ray

from bot.errors import (
    CharbotError,
    EngineBusyError,
    InvalidParamsError,
    ModelUnavailableError,
    RequestTimeoutError,
    UnknownModelError,
    WorkerError,
)
from bot.generation.engine import Engine
from bot.generation.params import EngineConfig, GenerationLimits, GenerationParams
from bot.serving.openai_backend import OpenAIBackend
from tests.bot.serving.conftest import KEY, QUEUED, ROWS, Relay, Served

TINY_ENGINE = EngineConfig(workers=1, max_batch=ROWS, max_queue=QUEUED)

# The longest text allowed: seconds of work on the slow model.
LONG = GenerationParams(max_length=GenerationLimits().max_length)


@contextlib.asynccontextmanager
async def remote(served: Served, model: str) -> AsyncIterator[OpenAIBackend]:
    backend = await OpenAIBackend.start(model, served.v1, timeout=30.0, api_key=KEY)
    try:
        yield backend
    finally:
        await backend.close()


async def stats(backend: OpenAIBackend) -> dict[str, Any]:
    data = await backend.describe()
    result: dict[str, Any] = data["charbot"]["stats"]
    return result


async def eventually(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll an async `check` until it returns a truthy value without raising a CharbotError."""
    problem: object = None
    async with asyncio.timeout(timeout):
        while True:
            try:
                if result := await check():
                    return result
            except CharbotError as exc:
                problem = exc
            await asyncio.sleep(0.2)
    raise AssertionError(f"{what}: {problem}")  # pragma: no cover (timeout raises first)


async def test_remote_text_is_the_local_engines(served: Served) -> None:
    engine = await Engine.start(served.tiny_onnx, TINY_ENGINE, name="tiny")
    try:
        async with remote(served, "tiny") as backend:
            assert backend.unavailable is None
            assert backend.info.parameters == engine.info.parameters
            assert backend.info.details == engine.info.details
            assert backend.info.description == engine.info.description
            assert backend.info.kind == "openai"
            assert backend.info.provider == (
                f"CPUExecutionProvider, 1 replica(s), model 'tiny' at {served.v1}"
            )
            for params in (
                GenerationParams(max_length=150, temperature=0.0),
                GenerationParams(max_length=150, temperature=0.8, seed=11),
                GenerationParams(max_length=150, temperature=0.8, seed=3, stop=("\n",)),
            ):
                local = await engine.complete("To be", params)
                far = await backend.complete("To be", params)
                assert (far.text, far.tokens, far.finish_reason) == (
                    local.text,
                    local.tokens,
                    local.finish_reason,
                )
                chunks = [chunk async for chunk in backend.stream("To be", params)]
                assert "".join(c.text for c in chunks) == local.text
                assert all(c.completion is None for c in chunks[:-1])
                last = chunks[-1].completion
                assert last is not None and last.text == local.text
    finally:
        await engine.close()


async def test_bad_requests_map_to_the_bots_errors(served: Served) -> None:
    async with remote(served, "tiny") as backend:
        for params, prompt in (
            (GenerationParams(temperature=float("nan")), "To be"),
            (GenerationParams(temperature=-1.0), "To be"),
            (GenerationParams(max_length=GenerationLimits().max_length + 1), "To be"),
            (GenerationParams(), "x" * (GenerationLimits().max_prompt + 1)),
        ):
            with pytest.raises(InvalidParamsError):
                await backend.complete(prompt, params)
            with pytest.raises(InvalidParamsError):
                async for _ in backend.stream(prompt, params):
                    pass
    async with remote(served, "nope") as unknown:
        assert unknown.unavailable is not None and "no model 'nope'" in unknown.unavailable
        assert "it serves: tiny, slow, play" in unknown.unavailable
        with pytest.raises(UnknownModelError):
            await unknown.complete("a")


async def test_a_full_queue_is_429_and_cancelled_streams_free_their_rows(served: Served) -> None:
    async with remote(served, "slow") as backend:
        before = await stats(backend)
        # Fill the engine's rows with streams, then its queue.
        streams = [backend.stream("To be", LONG) for _ in range(ROWS)]
        for stream in streams:
            await anext(stream)
        queued = [asyncio.create_task(backend.complete("Or not", LONG)) for _ in range(QUEUED)]
        await eventually(lambda: _queued(backend), "the queue full")
        async with (
            aiohttp.ClientSession(headers=served.auth) as http,
            http.post(served.v1 + "/completions", json={"model": "slow", "prompt": "a"}) as answer,
        ):
            assert answer.status == 429
            assert answer.headers["Retry-After"] == "1"
            assert (await answer.json())["error"]["type"] == "rate_limit_error"
        # The official client's exception for it (it would retry by itself: not here).
        async with openai.AsyncOpenAI(base_url=served.v1, api_key=KEY, max_retries=0) as client:
            with pytest.raises(openai.RateLimitError):
                await client.completions.create(model="slow", prompt="a")
        # The backend waits the Retry-After once, then says the model is busy.
        with pytest.raises(EngineBusyError):
            await backend.complete("a")
        # The client goes away: each row is freed at the engine's next step, not finished.
        for stream in streams:
            await stream.aclose()  # type: ignore[attr-defined]
        for task in queued:
            task.cancel()
        await asyncio.gather(*queued, return_exceptions=True)
        after = await eventually(lambda: _idle(backend), "the engine emptied", timeout=20)
    assert after["requests_failed"] - before["requests_failed"] == ROWS + QUEUED
    assert after["requests_served"] == before["requests_served"]


async def _queued(backend: OpenAIBackend) -> bool:
    return bool((await stats(backend))["queue_depth"] == QUEUED)


async def _idle(backend: OpenAIBackend) -> dict[str, Any] | None:
    s = await stats(backend)
    return s if s["active_requests"] == 0 and s["queue_depth"] == 0 else None


async def test_a_replica_killed_mid_stream(served: Served) -> None:
    async with remote(served, "slow") as backend:
        await eventually(lambda: _idle(backend), "the engine idle", timeout=20)
        stream = backend.stream("To be", LONG)
        await anext(stream)
        victim = (await backend.describe())["charbot"]["replica"]
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
        with pytest.raises(WorkerError, match="model server"):
            async for _ in stream:
                pass
        # Serve starts a new replica; requests succeed again once it serves.
        done = await eventually(
            lambda: backend.complete("To be", GenerationParams(max_length=5)), "a new replica"
        )
        assert done.tokens == 5
        assert (await backend.describe())["charbot"]["replica"] != victim


async def test_a_dropped_connection_is_tried_once_more(served: Served) -> None:
    relay = Relay(served.port)
    await relay.start()
    url = f"http://127.0.0.1:{relay.port}/v1"
    backend = await OpenAIBackend.start("tiny", url, timeout=30.0, api_key=KEY)
    try:
        params = GenerationParams(max_length=20)
        await relay.drop(1)  # the first try fails before any text: the second one answers
        assert (await backend.complete("To be", params)).tokens == 20
        assert relay.drop_next == 0  # the dropped connection was the first try
        await relay.drop(1)
        chunks = [chunk async for chunk in backend.stream("To be", params)]
        assert chunks[-1].completion is not None
        assert relay.drop_next == 0
        await relay.drop(2)  # twice in a row: one sentence naming the server
        with pytest.raises(ModelUnavailableError, match=f"{url} cannot be reached"):
            await backend.complete("To be", params)
        assert relay.drop_next == 0
    finally:
        await backend.close()
        await relay.stop()


async def test_a_timeout_cancels_the_request_on_the_server(served: Served) -> None:
    async with remote(served, "slow") as backend:
        before = await eventually(lambda: _idle(backend), "the engine idle", timeout=20)
        with pytest.raises(RequestTimeoutError, match="cancelled"):
            await backend.complete("To be", LONG, timeout=0.5)
        after = await eventually(lambda: _idle(backend), "the request dropped", timeout=20)
    assert after["requests_failed"] - before["requests_failed"] == 1
    assert after["requests_served"] == before["requests_served"]


async def test_a_password_in_the_url_is_masked_everywhere(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """Basic auth in front of a server is a natural setup: its password must not reach a
    message, /model show or a log line (issue 25, item 2)."""
    caplog.set_level(logging.DEBUG)
    relay = Relay(served.port)  # not started: connection refused
    url = f"http://admin:hunter2@127.0.0.1:{relay.port}/v1"
    backend = await OpenAIBackend.start("far", url, timeout=5.0)
    try:
        masked = f"http://admin:***@127.0.0.1:{relay.port}/v1"
        assert backend.unavailable is not None and masked in backend.unavailable
        assert masked in backend.info.provider
        with pytest.raises(ModelUnavailableError) as caught:
            await backend.complete("To be")
        assert masked in str(caught.value)
    finally:
        await backend.close()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert masked in logged
    assert "hunter2" not in logged + str(caught.value) + backend.info.provider
