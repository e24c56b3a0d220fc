"""One real local Ray cluster for the whole test session, serving two models over HTTP:

- "tiny": the tiny test LSTM, 1 replica, a roomy engine;
- "slow": a wide LSTM (a few ms per character, so the longest text allowed takes seconds) on an
  engine with room for 2 rows and 1 waiting request, for what must happen mid-generation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import ray
from ray import serve

from bot.generation.params import EngineConfig
from bot.serving.app import ModelDeployment, deploy, start_serve
from bot.serving.cli import OBJECT_STORE_BYTES
from tests.tinymodel import export_tiny

TINY_ENGINE = EngineConfig(workers=1, max_batch=32, max_queue=64)
SLOW_ENGINE = EngineConfig(workers=1, max_batch=2, max_queue=1)


@dataclass(frozen=True)
class Served:
    base: str  # http://127.0.0.1:PORT
    port: int
    tiny_onnx: Path
    metrics_port: int  # Ray's Prometheus endpoint on this node

    def url(self, model: str) -> str:
        return f"{self.base}/v1/models/{model}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def served(tiny_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    wide = export_tiny(tmp_path_factory.mktemp("slow") / "wide.onnx", hidden=1024, steps=1)
    port, metrics_port = free_port(), free_port()
    # Ray's metrics agent reports every 10 s by default; the metrics test would wait for it.
    os.environ["RAY_metrics_report_interval_ms"] = "500"  # noqa: SIM112 (Ray spells it so)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=OBJECT_STORE_BYTES,
        log_to_driver=False,
        _metrics_export_port=metrics_port,
    )
    try:
        start_serve("127.0.0.1", port)
        deploy(
            [
                ModelDeployment("tiny", str(tiny_onnx), TINY_ENGINE),
                ModelDeployment("slow", str(wide), SLOW_ENGINE),
            ]
        )
        yield Served(f"http://127.0.0.1:{port}", port, tiny_onnx, metrics_port)
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()


class Relay:
    """A TCP relay in front of the model server that the test stops and starts again: to the
    bot, the server at the relay's address goes away (connection refused) and comes back."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.drop_next = 0  # connections to close at once, before any byte of a request
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def drop(self, n: int) -> None:
        """Close the open connections (the client's pooled ones too) and the next `n` new ones."""
        self.drop_next = n
        for writer in list(self._writers):
            writer.close()
        await asyncio.sleep(0.1)  # the client's loop sees its pooled connections closed

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        self._server = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.drop_next:
            self.drop_next -= 1
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._writers -= {writer, up_writer}


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()
