"""A real `python -m bot serve` on a local Ray instance of its own (no `--address`), started and
stopped as an operator does (issue 25, items 10 and 11): what its Ray instance listens on, what a
SIGKILL leaves running and the next start stops, and SIGTERM's drain with streams in flight.

Two servers in all, one after the other, on the same ports: the first is killed; the second
starts over its leftovers, then drains. Their Ray temp directory (RAY_TMPDIR) is the module's
own, so their sessions and records meet no other Ray instance of this machine.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.serving import leftovers
from bot.testing.ports import free_port
from tests.bot.serving.conftest import REPO, serve_config, wait_until_serving
from tests.tinymodels import TINY_LSTM, widened

pytestmark = [
    pytest.mark.ray,
    pytest.mark.skipif(not leftovers.SUPPORTED, reason="reads /proc (Linux)"),
]

STREAMS = 8  # in flight at SIGTERM, as in the report
ROWS = 8  # the slow model's batch: every stream runs at once
STREAM_TOKENS = 400  # seconds of work for the slow model at 8 rows
BOUND = 60  # engine.timeout_seconds: the drain's bound (a safety timeout here, not a timing)
REPLICA = "ray::ServeRepli"  # a Serve replica's process name (/proc's comm: 15 characters)


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base: str
    log: Path
    record: dict[str, Any]

    @property
    def session(self) -> Path:
        return Path(self.record["session_dir"])


@dataclass
class Restart:
    """What the first server listened on, what its SIGKILL left, and the second server."""

    listening: dict[str, set[tuple[str, int]]]  # Ray process name -> (address, port)
    left_after_kill: list[leftovers.RayProcess]
    left_after_restart: list[leftovers.RayProcess]
    first: Server
    second: Server
    records: Path
    port: int
    metrics_port: int


def listeners(pids: dict[int, str]) -> dict[str, set[tuple[str, int]]]:
    """The TCP addresses each process listens on (by /proc), by process name."""
    sockets: dict[str, tuple[str, int]] = {}
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            # /proc writes each 4-byte word of the address in host (little-endian) order.
            ordered = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            sockets[fields[9]] = (str(ipaddress.ip_address(ordered)), int(port, 16))
    found: dict[str, set[tuple[str, int]]] = {}
    for pid, name in pids.items():
        for target in leftovers._open_files(pid):
            inode = target.removeprefix("socket:[").removesuffix("]")
            if inode in sockets:
                found.setdefault(name, set()).add(sockets[inode])
    return found


def loopback(host: str) -> bool:
    address = ipaddress.ip_address(host)
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def settled(session: Path) -> list[leftovers.RayProcess]:
    """The session's processes once what dies with its server has died: none went for 3 s."""
    left = leftovers.session_processes(session)
    deadline, still = time.monotonic() + 60, time.monotonic()
    while time.monotonic() - still < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
        now = leftovers.session_processes(session)
        if now != left:
            left, still = now, time.monotonic()
    return left


@pytest.fixture(scope="module")
def restart(tiny_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Restart]:
    tmp = tmp_path_factory.mktemp("lifecycle")
    wide = widened(TINY_LSTM, tmp / "wide.onnx", hidden=1024)
    config = serve_config(tmp / "serve.toml", {"tiny": tiny_onnx, "slow": wide}, max_batch=ROWS)
    # Short: Ray's socket paths under it must stay within the 107 bytes a socket path may have.
    ray_tmp = Path(tempfile.mkdtemp(prefix="cbray", dir="/tmp"))
    records = leftovers.records_dir(ray_tmp / "ray")
    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_TMPDIR": str(ray_tmp)}
    env.pop("RAY_ADDRESS", None)
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> Server:
        log = tmp / f"{name}.log"
        command = [
            sys.executable, "-m", "bot", "serve", "--config", str(config),
            "--port", str(port), "--metrics-port", str(metrics_port),
        ]  # fmt: skip
        with log.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=out, env=env, cwd=REPO)
        started.append(process)
        base = f"http://127.0.0.1:{port}"
        # The record first: it is written once the leftovers are stopped, and until then what
        # answers on the port may be the killed server's proxy, still going.
        path = records / f"{process.pid}.json"
        deadline = time.monotonic() + 180
        while not path.exists():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        wait_until_serving(process, base, log)
        record = json.loads(path.read_text())
        return Server(process, base, log, record)

    try:
        first = start("first")
        ray_pids = {p.pid: p.name for p in leftovers.session_processes(first.session)}
        listening = listeners({first.process.pid: "bot serve (the driver)", **ray_pids})
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        left_after_kill = settled(first.session)
        second = start("second")  # on the same ports, over what the first left
        left_after_restart = leftovers.session_processes(first.session)
        yield Restart(
            listening,
            left_after_kill,
            left_after_restart,
            first,
            second,
            records,
            port,
            metrics_port,
        )
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait()
        leftovers.clean_up(records)  # what a killed server left: the product's own cleanup
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_a_local_instance_listens_on_loopback_and_a_crash_is_cleaned_up(restart: Restart) -> None:
    shown = {name: sorted(addresses) for name, addresses in restart.listening.items()}
    print(f"\nlistening: {shown}")
    print(f"left by SIGKILL: {[(p.name, p.pid) for p in restart.left_after_kill]}")
    # The HTTP proxy and Ray's metrics endpoint: on loopback, on the ports asked.
    everything = set().union(*restart.listening.values())
    assert {("127.0.0.1", restart.port), ("127.0.0.1", restart.metrics_port)} <= everything
    exposed = {
        name: sorted(a for a in addresses if not loopback(a[0]))
        for name, addresses in restart.listening.items()
    }
    exposed = {name: addresses for name, addresses in exposed.items() if addresses}
    # All of it on loopback but what Ray Serve binds on every interface itself: a replica's
    # server for calls between deployments (one, on a port of its choosing).
    assert list(exposed) in ([], [REPLICA]) and len(exposed.get(REPLICA, [])) <= 1, exposed
    # The first server's record outlived it; the second start stopped what it left, and
    # dropped the record.
    assert restart.left_after_kill, "a SIGKILL left nothing: the cleanup goes untested"
    assert restart.left_after_restart == []
    assert not (restart.records / f"{restart.first.process.pid}.json").exists()
    log = restart.second.log.read_text()
    assert "left by a model server that did not stop cleanly" in log, log[-3000:]
    answer = httpx.post(
        restart.second.base + "/v1/completions",
        json={"model": "tiny", "prompt": "To be", "max_tokens": 5},
        timeout=60,
    )
    assert answer.status_code == 200 and answer.json()["usage"]["completion_tokens"] == 5
    metrics = httpx.get(f"http://127.0.0.1:{restart.metrics_port}/metrics", timeout=30)
    assert metrics.status_code == 200 and "ray_" in metrics.text


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


async def test_sigterm_drains_the_streams_in_flight(restart: Restart) -> None:
    server = restart.second
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
    assert not (restart.records / f"{server.process.pid}.json").exists()
    assert leftovers.session_processes(server.session) == []  # a clean stop leaves nothing
