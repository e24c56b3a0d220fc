"""A real `python -m bot serve` on a local Ray instance of its own (no `--address`), stopped as an
operator does (issue 25, item 10): SIGTERM drains, with streams in flight."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.bot.serving.conftest import REPO, free_port, serve_config, wait_until_serving
from tests.tinymodels import TINY_LSTM, widened

pytestmark = pytest.mark.ray

STREAMS = 8  # in flight at SIGTERM, as in the report
ROWS = 8  # the slow model's batch: every stream runs at once
STREAM_TOKENS = 400  # seconds of work for the slow model at 8 rows
BOUND = 60  # engine.timeout_seconds: the drain's bound (a safety timeout here, not a timing)


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base: str
    log: Path


@pytest.fixture(scope="module")
def server(tiny_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("lifecycle")
    wide = widened(TINY_LSTM, tmp / "wide.onnx", hidden=1024)
    config = serve_config(tmp / "serve.toml", {"tiny": tiny_onnx, "slow": wide}, max_batch=ROWS)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    log = tmp / "serve.log"
    command = [sys.executable, "-m", "bot", "serve", "--config", str(config), "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out, env=env, cwd=REPO)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_serving(process, base, log)
        yield Server(process, base, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def stream(http: httpx.AsyncClient, began: asyncio.Event, count: list[int]) -> str:
    """One long stream: "finished" when it ends with [DONE], else what it ended with."""
    body = {"model": "slow", "prompt": "To be", "max_tokens": STREAM_TOKENS, "stream": True}
    last = ""
    try:
        async with http.stream("POST", "/v1/completions", json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    if not last:
                        count[0] += 1
                        if count[0] == STREAMS:
                            began.set()
                    last = line
    except httpx.HTTPError as exc:
        return f"cut: {type(exc).__name__}"
    return "finished" if last == "data: [DONE]" else f"ended with {last[:200]!r}"


async def test_sigterm_drains_the_streams_in_flight(server: Server) -> None:
    began, count = asyncio.Event(), [0]
    async with httpx.AsyncClient(base_url=server.base, timeout=BOUND) as http:
        streams = [asyncio.create_task(stream(http, began, count)) for _ in range(STREAMS)]
        await asyncio.wait_for(began.wait(), BOUND)  # every stream has its first event
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(BOUND):  # the replica hears of the drain
            while (await http.get("/healthz")).status_code != 503:
                await asyncio.sleep(0.05)
        refused = await http.post("/v1/completions", json={"model": "tiny", "prompt": "x"})
        in_flight = sum(not s.done() for s in streams)
        outcomes = await asyncio.gather(*streams)
    code = await asyncio.to_thread(server.process.wait, BOUND + 30)
    exited = time.monotonic() - signalled
    print(
        f"\nSIGTERM: {outcomes.count('finished')} of {STREAMS} streams finished "
        f"({in_flight} still running when a new request was refused); exit {code} after "
        f"{exited:.1f} s"
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (503, "server_shutting_down")
    assert in_flight > 0  # the refusal came while streams were in flight
    assert outcomes == ["finished"] * STREAMS, outcomes
    assert code == 0, server.log.read_text()[-3000:]
