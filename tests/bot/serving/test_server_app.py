"""The model server's app (`bot/serving/server.py`) in this process, without Ray: real engines
behind the real FastAPI app, called through httpx's ASGI transport. For what the Ray tests cannot
arrange cheaply: a failure after a stream began, a drain step by step."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from bot.generation.params import EngineConfig
from bot.serving.server import ApiKey, Drain, ModelDeployment, ModelServer, build_app
from bot.testing.ports import free_port
from tests.tinymodels import TINY_LSTM, widened


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    wide = widened(TINY_LSTM, tmp_path / "wide.onnx", hidden=1024)
    # A limit the longest text cannot meet: it times out after its stream began.
    hasty = EngineConfig(workers=1, request_timeout=0.5)
    models = [
        ModelDeployment("tiny", str(TINY_LSTM), EngineConfig(workers=1)),
        ModelDeployment("slow", str(wide), hasty),
    ]
    server = await ModelServer.start(models)
    app = build_app(server, ApiKey("k"))
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": "Bearer k"}
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://app", headers=headers
        ) as http:
            yield http
    finally:
        await server.close()


async def test_a_failure_after_a_stream_began_is_an_error_event(client: httpx.AsyncClient) -> None:
    body = {"model": "slow", "prompt": "To be", "max_tokens": 1000, "stream": True}
    async with client.stream("POST", "/v1/completions", json=body) as response:
        assert response.status_code == 200  # the stream began
        events = [line async for line in response.aiter_lines() if line.startswith("data: ")]
    last = json.loads(events[-1].removeprefix("data: "))
    assert last["error"]["code"] == "timeout" and "0.5 seconds" in last["error"]["message"]
    assert "data: [DONE]" not in events  # an error ends it: a client must not see success
    assert any("choices" in json.loads(e.removeprefix("data: ")) for e in events[:-1])


async def test_one_process_serves_the_api_alone(client: httpx.AsyncClient) -> None:
    """The app the benchmark runs on plain uvicorn: one replica, named "local"."""
    described = (await client.get("/v1/models/tiny")).json()["charbot"]
    assert (described["replicas"], described["replica"], described["node"]) == (1, "local", "local")
    answer = await client.post("/v1/completions", json={"model": "tiny", "prompt": "To be"})
    assert answer.status_code == 200 and answer.json()["usage"]["completion_tokens"] == 16
    refused = await client.get("/v1/models", headers={"Authorization": "Bearer wrong"})
    assert refused.status_code == 401


class QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: it would restore, once done, the one of the event
    loop's run that started it, and leave it behind for the tests after this one."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@pytest.fixture
async def on_uvicorn(tmp_path: Path) -> AsyncIterator[tuple[str, Drain]]:
    """The app on plain uvicorn (httpx's ASGI transport buffers a whole stream): its base URL,
    and its drain."""
    wide = widened(TINY_LSTM, tmp_path / "wide.onnx", hidden=1024)
    server = await ModelServer.start([ModelDeployment("slow", str(wide), EngineConfig(workers=1))])
    drain = Drain()
    port = free_port()
    config = uvicorn.Config(build_app(server, drain=drain), port=port, log_level="warning")
    http = QuietServer(config)
    serving = asyncio.create_task(http.serve())
    try:
        async with asyncio.timeout(30):
            while not http.started:
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}", drain
    finally:
        http.should_exit = True
        await serving
        await server.close()


async def test_a_drain_refuses_new_requests_and_lets_those_in_flight_finish(
    on_uvicorn: tuple[str, Drain],
) -> None:
    base, drain = on_uvicorn
    body = {"model": "slow", "prompt": "To be", "max_tokens": 300, "stream": True}
    async with (
        httpx.AsyncClient(base_url=base, timeout=30) as http,
        http.stream("POST", "/v1/completions", json=body) as response,
    ):
        lines = response.aiter_lines()
        assert (await anext(lines)).startswith("data: ")  # in flight
        assert drain.in_flight == 1
        drain.start()
        refused = await http.post("/v1/completions", json={"model": "slow", "prompt": "x"})
        assert refused.status_code == 503
        error = refused.json()["error"]
        assert error["code"] == "server_shutting_down", error
        assert error["message"] == "The model server is shutting down: try again."
        health = await http.get("/healthz")  # not ready: a balancer sends requests elsewhere
        assert (health.status_code, health.json()["status"]) == (503, "draining")
        assert drain.in_flight == 1
        rest = [line async for line in lines if line.startswith("data: ")]
    assert rest[-1] == "data: [DONE]"  # the stream in flight ran to its end
    await asyncio.wait_for(drain.wait_idle(), 5)
    assert drain.in_flight == 0
