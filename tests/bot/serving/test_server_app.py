"""The model server's app (`bot/serving/server.py`) in this process, without Ray: real engines
behind the real FastAPI app, called through httpx's ASGI transport. For what the Ray tests cannot
arrange cheaply: a failure after a stream began."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.generation.params import EngineConfig
from bot.serving.server import ApiKey, ModelDeployment, ModelServer, build_app
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
