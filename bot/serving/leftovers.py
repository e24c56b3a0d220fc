"""What a crashed `python -m bot serve` leaves, and cleaning it up on the next start.

A server that starts a local Ray instance writes a record (`Record`): its pid, and the Ray
session it started. It removes the record when it stops. A record whose server is gone (killed
by SIGKILL, the OOM killer, a power cut of the process) names a session whose Ray processes may
still run: Ray's agents and workers outlive the server that started them. The next `serve` stops
them as `ray stop` would (the raylet first, the GCS last; SIGTERM, then SIGKILL after a grace
period), but only the processes of that session: a Ray cluster someone started themselves
(`ray start`, another program's `ray.init`) has a session of its own and is left alone.

A process belongs to a session when it is one of Ray's (by the names `ray stop` looks for) and
has a file open under the session's directory (each has its log files there). Linux only (read
from /proc); elsewhere nothing is recorded or cleaned.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SUPPORTED = sys.platform.startswith("linux")
#: Seconds the processes of a session get after SIGTERM, in all, before SIGKILL (`ray stop`
#: splits its grace period the same way, over its three groups).
GRACE_SECONDS = 6.0
# What `ray stop` stops, in its order: the raylet, then everything else, the GCS last. A name
# is matched against the process's name, a path fragment against its command line.
RAYLET, GCS = "raylet", "gcs_server"
RAY_NAMES = ("raylet", "plasma_store", "gcs_server")
RAY_WORKER_PREFIX = "ray::"  # workers and agents name themselves ray::...
RAY_SCRIPTS = (
    "default_worker.py",
    "setup_worker.py",
    "log_monitor.py",
    "monitor.py",
    "ray_process_reaper.py",
    "ray.util.client.server",
    "dashboard/agent.py",
    "dashboard/dashboard.py",
    "runtime_env/agent/main.py",
)


@dataclass(frozen=True)
class Record:
    """A running server's claim on the local Ray session it started."""

    pid: int
    started: int  # the process's start time (clock ticks after boot): a reused pid differs
    session_dir: str
    port: int  # the HTTP port, for the operator reading it

    def server_alive(self) -> bool:
        return start_time(self.pid) == self.started


@dataclass(frozen=True)
class RayProcess:
    pid: int
    name: str

    @property
    def group(self) -> int:
        """Its place in `ray stop`'s order."""
        return 0 if self.name == RAYLET else 2 if self.name == GCS else 1


def records_dir(ray_temp_dir: Path) -> Path:
    return ray_temp_dir / "charbot-serve"


def write_record(directory: Path, session_dir: str, port: int) -> Path | None:
    """Record this process's claim on `session_dir`; the record's path (None off Linux, or
    where it cannot be written: then a crash is not cleaned up, and the log says so)."""
    if not SUPPORTED:
        return None
    record = Record(os.getpid(), start_time(os.getpid()) or 0, session_dir, port)
    path = directory / f"{record.pid}.json"
    partial = path.with_suffix(".partial")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(asdict(record)))
        partial.replace(path)  # whole or absent, for a server starting at the same moment
    except OSError as exc:
        log.warning("cannot record the local Ray instance in %s: %s", directory, exc)
        return None
    return path


def read_records(directory: Path) -> list[tuple[Path, Record]]:
    found = []
    for path in sorted(directory.glob("*.json")):
        try:
            found.append((path, Record(**json.loads(path.read_text()))))
        except (OSError, ValueError, TypeError):
            log.warning("ignoring an unreadable record of a model server: %s", path)
    return found


def clean_up(directory: Path) -> list[RayProcess]:
    """Stop what every crashed server recorded in `directory` left running, and drop its
    record; a server still running keeps its record and session. What was stopped."""
    if not SUPPORTED:
        return []
    stopped: list[RayProcess] = []
    for path, record in read_records(directory):
        if record.server_alive():
            continue
        left = session_processes(Path(record.session_dir))
        if left:
            log.warning(
                "stopping %d Ray process(es) left by a model server that did not stop cleanly "
                "(pid %d, port %d, %s): %s",
                len(left),
                record.pid,
                record.port,
                record.session_dir,
                ", ".join(f"{p.name} ({p.pid})" for p in left),
            )
            stop(left)
            stopped += left
        path.unlink(missing_ok=True)
    return stopped


def session_processes(session_dir: Path) -> list[RayProcess]:
    """Ray's processes with a file open under `session_dir` (this user's that can be read)."""
    session = str(session_dir.resolve()) + os.sep
    found = []
    for pid in _pids():
        name = process_name(pid)
        if name is None or not _is_ray(pid, name):
            continue
        if any(target.startswith(session) for target in _open_files(pid)):
            found.append(RayProcess(pid, name))
    return found


def stop(processes: Sequence[RayProcess]) -> None:
    """SIGTERM each group in `ray stop`'s order, then SIGKILL what outlived its grace."""
    for group in range(3):
        members = [p for p in processes if p.group == group]
        _signal(members, signal.SIGTERM)
        left = _wait_gone(members, GRACE_SECONDS / 3)
        _signal(left, signal.SIGKILL)
        _wait_gone(left, GRACE_SECONDS / 3)


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, whose parent has not reaped it, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def start_time(pid: int) -> int | None:
    """When `pid` started, in clock ticks after boot (/proc's field 22); None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The name (field 2) is in parentheses and may hold spaces: count the fields after it.
    return int(stat.rpartition(")")[2].split()[19])


def process_name(pid: int) -> str | None:
    """The name `ray stop` matches: /proc's comm (15 characters at most), else None if gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def _is_ray(pid: int, name: str) -> bool:
    if name in RAY_NAMES or name.startswith(RAY_WORKER_PREFIX):
        return True
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, UnicodeDecodeError):
        return False
    return command.startswith(RAY_WORKER_PREFIX) or any(s in command for s in RAY_SCRIPTS)


def _pids() -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            yield int(entry.name)


def _open_files(pid: int) -> Iterator[str]:
    with contextlib.suppress(OSError):
        for fd in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                yield os.readlink(fd.path)


def _signal(processes: Sequence[RayProcess], sig: signal.Signals) -> None:
    for process in processes:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(process.pid, sig)


def _wait_gone(processes: Sequence[RayProcess], seconds: float) -> list[RayProcess]:
    deadline = time.monotonic() + seconds
    left = [p for p in processes if alive(p.pid)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if alive(p.pid)]
    return left
