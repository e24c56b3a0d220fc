"""One real local Ray cluster for the whole test session, and on it a real `python -m bot serve`
(a process of its own that joins the cluster with `--address`), with an API key, serving:

- "tiny": the tiny test LSTM;
- "slow": a wide LSTM (a few ms per character, so the longest text allowed takes seconds), for
  what must happen mid-generation;
- "play": the tiny LSTM again, its metadata naming the `play` chat template, with a `chat_name`.

The config gives every engine room for `ROWS` rows and `QUEUED` waiting requests, so a test can
fill one. The test process is a driver on the same cluster: it can find and kill a replica, and
read Ray's Prometheus endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import ray

from bot.serving.cli import OBJECT_STORE_BYTES
from bot.testing.ports import free_port
from tests.tinymodels import TINY_LSTM, TINY_PLAY, widened

ROWS = 4  # each engine's batch
QUEUED = 4  # each engine's queue
KEY = "sk-charbot-test-7f3a"  # the served API key (a test must find it in no log)
REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Served:
    base: str  # http://127.0.0.1:PORT
    port: int
    tiny_onnx: Path
    metrics_port: int  # Ray's Prometheus endpoint on this node
    log: Path  # the server process's stdout and stderr
    ray_session: Path  # the cluster's session directory (its logs are under it)
    key: str = KEY

    @property
    def v1(self) -> str:
        return self.base + "/v1"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


PLAY_SPEAKER = "HAMLET"  # the "play" model's chat_name


def serve_config(path: Path, models: dict[str, Path], **engine: int | float) -> Path:
    """A config serving `models` with each engine's ROWS and QUEUED (and `engine` on top)."""
    settings = {"workers": 1, "max_batch": ROWS, "max_queue": QUEUED} | engine
    text = "[engine]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())
    text += f'\n[models]\ndefault = "{next(iter(models))}"\n'
    for name, model in models.items():
        text += f'\n[models.{name}]\npath = "{model}"\n'
        if name == "play":
            text += f'chat_name = "{PLAY_SPEAKER}"\n'
    path.write_text(text)
    return path


def wait_until_serving(process: subprocess.Popen[bytes], base: str, log: Path) -> None:
    """Until the server answers /healthz (or the process died: fail with its log)."""
    import urllib.request

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the model server exited early:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(base + "/healthz") as response:
            if response.status == 200:
                return
        time.sleep(0.5)
    raise AssertionError(f"the model server did not start:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def served(tiny_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("served")
    wide = widened(TINY_LSTM, tmp / "wide.onnx", hidden=1024)
    play = tmp / "play.onnx"
    play.write_bytes(TINY_PLAY.read_bytes())
    port, metrics_port = free_port(), free_port()
    # Ray's metrics agent reports every 10 s by default; the metrics test would wait for it.
    os.environ["RAY_metrics_report_interval_ms"] = "500"  # noqa: SIM112 (Ray spells it so)
    # "local": a new instance. Without it ray.init joins the cluster named in Ray's shared
    # /tmp/ray/ray_current_cluster (the last one any process on this machine started), or
    # refuses to, since num_cpus is given.
    context = ray.init(
        address="local",
        num_cpus=4,  # logical: a replica reserves one per model, and Serve may start another
        include_dashboard=False,
        object_store_memory=OBJECT_STORE_BYTES,
        log_to_driver=False,
        _metrics_export_port=metrics_port,
    )
    address: dict[str, str] = context.address_info  # type: ignore[attr-defined]
    config = serve_config(tmp / "serve.toml", {"tiny": tiny_onnx, "slow": wide, "play": play})
    key_file = tmp / "key"
    key_file.write_text(KEY + "\n")
    log = tmp / "serve.log"
    command = [
        sys.executable, "-m", "bot", "serve", "--config", str(config), "--port", str(port),
        "--address", address["gcs_address"], "--api-key-file", str(key_file),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out, env=env, cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, base, log)
        session = Path(address["session_dir"])
        yield Served(base, port, tiny_onnx, metrics_port, log, session)
        process.send_signal(signal.SIGTERM)
        # SIGTERM drains (at most engine.timeout_seconds), shuts Serve down, and the process
        # ends by itself, with status 0.
        assert process.wait(120) == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
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
