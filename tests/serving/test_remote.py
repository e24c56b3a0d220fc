"""The remote backend against the real model server (Ray Serve on a local cluster)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
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
from bot.generation.params import GenerationLimits, GenerationParams
from bot.serving.remote import RemoteBackend
from tests.serving.conftest import TINY_ENGINE, Relay, Served

# The longest text allowed: seconds of work on the slow model.
LONG = GenerationParams(max_length=GenerationLimits().max_length)


@contextlib.asynccontextmanager
async def remote(served: Served, model: str) -> AsyncIterator[RemoteBackend]:
    backend = await RemoteBackend.start(model, served.url(model), timeout=30.0)
    try:
        yield backend
    finally:
        await backend.close()


async def stats(backend: RemoteBackend) -> dict[str, Any]:
    data = await backend.refresh()
    result: dict[str, Any] = data["stats"]
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
            assert backend.info.kind == "remote"
            assert "CPUExecutionProvider" in backend.info.provider
            assert "1 replica(s)" in backend.info.provider
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


async def test_32_concurrent_completions_share_batches(served: Served) -> None:
    async with remote(served, "tiny") as backend:
        before = await stats(backend)
        prompts = [f"To be {i}" for i in range(32)]
        results = await asyncio.gather(
            *(
                backend.complete(p, GenerationParams(max_length=800, seed=i))
                for i, p in enumerate(prompts)
            )
        )
        after = await stats(backend)
    assert [r.prompt for r in results] == prompts
    assert all(r.tokens == 800 for r in results)
    assert after["requests_served"] - before["requests_served"] == 32  # each answered once
    assert after["largest_batch"] > 1


async def test_bad_requests_get_4xx_and_map_to_the_bots_errors(served: Served) -> None:
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
    async with aiohttp.ClientSession() as http:
        for body, status, kind in (
            ({"prompt": "a", "temperature": "hot"}, 400, "invalid_params"),
            ({"prompt": "a", "max_length": 10**6}, 400, "invalid_params"),
            ({"prompt": "a", "colour": "red"}, 400, "invalid_params"),
            ({"max_length": 5}, 400, "invalid_params"),
        ):
            async with http.post(served.url("tiny") + "/complete", json=body) as response:
                assert response.status == status
                assert (await response.json())["error"]["type"] == kind
        async with http.post(served.url("tiny") + "/stream", data=b"{not json") as response:
            assert response.status == 400
        async with http.post(served.url("nope") + "/complete", json={"prompt": "a"}) as response:
            assert response.status == 404
            assert (await response.json())["error"]["type"] == "unknown_model"
        async with http.get(served.base + "/v1/models") as response:
            names = [m["name"] for m in (await response.json())["models"]]
            assert names == ["tiny", "slow"]
        async with http.get(served.base + "/healthz") as response:
            assert response.status == 200
    async with remote(served, "nope") as unknown:
        assert unknown.unavailable is not None and "'nope'" in unknown.unavailable
        with pytest.raises(UnknownModelError):
            await unknown.complete("a")


async def test_a_full_queue_is_429_and_cancelled_streams_free_their_rows(served: Served) -> None:
    async with remote(served, "slow") as backend:
        before = await stats(backend)
        # The engine holds 2 rows and 1 waiting request: fill both rows, then the queue.
        streams = [backend.stream("To be", LONG) for _ in range(2)]
        for stream in streams:
            await anext(stream)
        queued = asyncio.create_task(backend.complete("Or not", LONG))
        await eventually(lambda: _queued(backend), "a request waiting in the queue")
        async with (
            aiohttp.ClientSession() as http,
            http.post(served.url("slow") + "/complete", json={"prompt": "a"}) as response,
        ):
            assert response.status == 429
            assert response.headers["Retry-After"] == "1"
            assert (await response.json())["error"]["type"] == "busy"
        with pytest.raises(EngineBusyError):
            await backend.complete("a")
        # The client goes away: each row is freed at the engine's next step, not finished.
        for stream in streams:
            await stream.aclose()  # type: ignore[attr-defined]
        queued.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await queued
        after = await eventually(lambda: _idle(backend), "the engine emptied", timeout=20)
    assert after["requests_failed"] - before["requests_failed"] == 3
    assert after["requests_served"] == before["requests_served"]


async def _queued(backend: RemoteBackend) -> bool:
    return bool((await stats(backend))["queue_depth"] == 1)


async def _idle(backend: RemoteBackend) -> dict[str, Any] | None:
    s = await stats(backend)
    return s if s["active_requests"] == 0 and s["queue_depth"] == 0 else None


async def test_a_replica_killed_mid_stream(served: Served) -> None:
    async with remote(served, "slow") as backend:
        await eventually(lambda: _idle(backend), "the engine idle", timeout=20)
        stream = backend.stream("To be", LONG)
        await anext(stream)
        victim = (await backend.refresh())["replica"]
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
        with pytest.raises(WorkerError, match="model server"):
            async for _ in stream:
                pass
        # Serve starts a new replica; requests succeed again once it serves.
        done = await eventually(
            lambda: backend.complete("To be", GenerationParams(max_length=5)), "a new replica"
        )
        assert done.tokens == 5
        assert (await backend.refresh())["replica"] != victim


async def test_a_dropped_connection_is_tried_once_more(served: Served) -> None:
    relay = Relay(served.port)
    await relay.start()
    url = f"http://127.0.0.1:{relay.port}/v1/models/tiny"
    backend = await RemoteBackend.start("tiny", url, timeout=30.0)
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
