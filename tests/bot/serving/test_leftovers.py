"""Which processes a crashed server's record lets the next start stop (`bot/serving/leftovers.py`),
with real processes and no Ray: each names itself as a Ray process does (its /proc comm) and holds
a file open, as Ray's processes hold their logs. The real `python -m bot serve` killed and
started again is in test_lifecycle.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.serving import leftovers

pytestmark = pytest.mark.skipif(not leftovers.SUPPORTED, reason="reads /proc (Linux)")

# Names itself argv[1], holds argv[2] open, says so, and waits to be stopped.
PRETEND = """
import sys, time
open("/proc/self/comm", "w").write(sys.argv[1])
log = open(sys.argv[2], "a")
print("ready", flush=True)
time.sleep(120)
"""


Spawn = Callable[[str, Path], "subprocess.Popen[str]"]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    started: list[subprocess.Popen[str]] = []

    def start(name: str, log: Path) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", PRETEND, name, str(log)], stdout=subprocess.PIPE, text=True
        )
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def test_only_the_crashed_servers_ray_processes_are_stopped(tmp_path: Path, spawn: Spawn) -> None:
    crashed, theirs = tmp_path / "session_crashed", tmp_path / "session_theirs"
    for session in (crashed, theirs):
        (session / "logs").mkdir(parents=True)
    raylet = spawn("raylet", crashed / "logs" / "raylet.out")
    agent = spawn("ray::DashboardAgent", crashed / "logs" / "agent.out")
    gcs = spawn("gcs_server", crashed / "logs" / "gcs_server.out")
    # A Ray cluster someone started themselves, and an operator's `tail -f` of the crashed logs.
    user_raylet = spawn("raylet", theirs / "logs" / "raylet.out")
    tail = spawn("tail", crashed / "logs" / "raylet.out")

    found = leftovers.session_processes(crashed)
    assert sorted(p.pid for p in found) == sorted([raylet.pid, agent.pid, gcs.pid])

    records = tmp_path / "records"
    records.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    gone = leftovers.Record(int(dead.stdout), 1, str(crashed), 8000)
    (records / f"{gone.pid}.json").write_text(json.dumps(gone.__dict__))
    mine = leftovers.write_record(records, str(theirs), 8001)  # this process: a running server
    assert mine is not None

    stopped = leftovers.clean_up(records)
    assert sorted(p.pid for p in stopped) == sorted([raylet.pid, agent.pid, gcs.pid])
    assert {p.name for p in stopped} == {"raylet", "ray::DashboardA", "gcs_server"}  # comm: 15
    for process in (raylet, agent, gcs):
        assert process.wait(5) == -15  # SIGTERM was enough
    assert user_raylet.poll() is None and tail.poll() is None
    assert sorted(records.iterdir()) == [mine]  # the crashed server's record is gone
    assert leftovers.read_records(records)[0][1].pid == os.getpid()
