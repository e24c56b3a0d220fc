"""The deployment a soak run starts and stops, every part real and on 127.0.0.1: the test Discord
server with its world, a fresh PostgreSQL database behind a TCP relay (the relay is how the
database goes away), `python -m bot serve` on a local Ray cluster, and the bot processes.

Every child process is killed on the way out, whatever ended the run (`Deployment.close`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bot.testing import FakeDiscord, FakeMember, FakeUser, World, default_world, discord_env
from bot.testing.ports import free_port
from tests.postgres import kill_connections, run_admin, with_database
from tests.tcpproxy import TcpProxy
from tests.tinymodels import TINY_LSTM, widened

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
LOCAL_MODEL, SERVED_MODEL = "local", "served"
#: Hidden units of the soak's model (the tiny LSTM widened, random weights): a few ms a
#: character, so that a long completion streams (edited as it arrives) for a second or more.
MODEL_HIDDEN = 512
FIRST_USER_ID = 1_000_000_000_000_100_000
FIRST_EXTRA_CHANNEL = 1_000_000_000_000_000_410
IDENTIFY_SPACING = 1.0  # seconds: Discord's 5 s rule, shortened for the test server
START_TIMEOUT = 180.0  # seconds for any part to come up (a loaded 2-core machine is slow)


@dataclass(frozen=True)
class Topology:
    guilds: int = 8
    channels_per_guild: int = 8
    members: int = 320
    processes: int = 2
    shards: int = 4
    replicas: int = 2  # model server replicas; 0: no model server, every channel local

    def shard_ids(self, process: int) -> list[int]:
        """The shards of bot process `process`: consecutive, split evenly."""
        per = self.shards // self.processes
        return list(range(process * per, (process + 1) * per))


def soak_world(topology: Topology) -> World:
    """`default_world`'s guilds, each with `channels_per_guild` text channels, and `members`
    more people spread over the guilds; every eighth of them a moderator (Manage Channels)."""
    world = default_world(guilds=topology.guilds)
    for index, guild in enumerate(world.guilds):
        for extra in range(topology.channels_per_guild - len(guild.channels)):
            guild.add_channel(FIRST_EXTRA_CHANNEL + index * 1000 + extra, f"channel-{extra}")
    for i in range(topology.members):
        user = FakeUser(FIRST_USER_ID + i, f"user{i}", global_name=f"User {i}")
        guild = world.guilds[i % topology.guilds]
        moderators = guild.roles[2]  # default_world's "Moderators" (Manage Channels)
        guild.members.append(FakeMember(user, (moderators.id,) if i % 8 == 0 else ()))
    return world


# Looked up here, not in the child: between fork and exec only a call is safe (Ray's threads
# may hold locks that a lookup would wait on forever).
_PRCTL = ctypes.CDLL(None).prctl if sys.platform == "linux" else None
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child before it runs: the kernel kills it when the soak process dies, however it
    dies (SIGKILL included). Forked from the event loop's thread, which lives as long as the run
    (Linux's parent-death signal follows the forking thread)."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGKILL))


def with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username or 'postgres'}@{parts.hostname or '127.0.0.1'}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class Database:
    """A database created for the run (dropped at the end), reached by the bots through a relay
    that `cut()` stops and `restore()` starts again."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"charbot_soak_{os.getpid()}_{secrets.token_hex(3)}"
        self.url = with_database(admin_url, self.name)
        target = urlsplit(admin_url)
        self.proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
        self.created = False

    @property
    def bot_url(self) -> str:
        """The URL the bots use: through the relay."""
        return with_port(self.url, self.proxy.port)

    async def create(self) -> None:
        await run_admin(self.admin_url, f'CREATE DATABASE "{self.name}"')
        self.created = True
        await self.proxy.start()

    async def terminate_connections(self) -> int:
        """pg_terminate_backend on every connection to the run's database but this one."""
        return await kill_connections(self.url)

    async def cut(self) -> None:
        await self.proxy.stop()

    async def restore(self) -> None:
        await self.proxy.start()

    async def drop(self) -> None:
        await self.proxy.stop()
        if self.created:
            await run_admin(self.admin_url, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.created = False


class BotProcess:
    """One `python -m bot run` with some of the shards; restarted with the same arguments, its
    output appended to one log file."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log = name, list(argv), env, log
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self) -> None:
        with self.log.open("ab") as out:
            out.write(f"\n=== start {self.starts + 1} ===\n".encode())
            out.flush()
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, *self.argv,
                cwd=REPO, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                preexec_fn=die_with_parent,
            )  # fmt: skip
        self.starts += 1

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)

    async def wait(self, timeout: float) -> int | None:
        """The exit status, or None if it is still running after `timeout` seconds."""
        if self.proc is None:
            return None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            return None

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    def tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def bot_config(path: Path, world: World, model: Path, serve_port: int | None) -> Path:
    """The bots' config: the local model, and the served one when there is a model server."""
    text = f"""
[discord]
owner_ids = [{world.owner.id}]
cooldown_seconds = 0.0
sync_global = true
identify_spacing_seconds = {IDENTIFY_SPACING}

[engine]
workers = 1
max_length = 1000
timeout_seconds = 60.0

[generation]
length = 60

[models]
default = "{LOCAL_MODEL}"

[models.{LOCAL_MODEL}]
path = "{model}"
"""
    if serve_port is not None:
        text += f"""
[models.{SERVED_MODEL}]
backend = "openai"
url = "http://127.0.0.1:{serve_port}/v1"
"""
    path.write_text(text)
    return path


def serve_config(path: Path, model: Path) -> Path:
    path.write_text(
        "[engine]\nworkers = 1\nmax_batch = 16\nmax_queue = 64\nmax_length = 1000\n\n"
        f'[models]\ndefault = "{SERVED_MODEL}"\n\n[models.{SERVED_MODEL}]\npath = "{model}"\n'
    )
    return path


class ModelServer:
    """`python -m bot serve` joined to a Ray cluster this process starts: as a driver on the
    cluster, this process can find a replica and kill it."""

    def __init__(self, config: Path, replicas: int, log: Path) -> None:
        self.config, self.replicas, self.log = config, replicas, log
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.ray_started = False
        self.ray_tmp: str | None = None

    @property
    def v1(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start_ray(self) -> str:
        """A local Ray cluster with this process as its driver; its GCS address."""
        import ray

        from bot.serving.cli import OBJECT_STORE_BYTES

        # A Ray temp directory of its own (short: Ray's socket paths under it have 107 bytes at
        # most): this cluster never becomes the one /tmp/ray/ray_current_cluster names, which a
        # plain ray.init elsewhere on the machine would join.
        self.ray_tmp = tempfile.mkdtemp(prefix="cbsoak", dir="/tmp")
        os.environ["RAY_TMPDIR"] = (
            self.ray_tmp
        )  # this driver's, and the server's, which inherits it
        context = ray.init(
            address="local",
            num_cpus=self.replicas + 1,  # logical: one per replica, and room for Serve's own
            include_dashboard=False,
            object_store_memory=OBJECT_STORE_BYTES,
            log_to_driver=False,
        )
        self.ray_started = True
        address: dict[str, str] = context.address_info  # type: ignore[attr-defined]
        return address["gcs_address"]

    def start(self, gcs_address: str) -> None:
        """The server process, joining the cluster."""
        command = [
            sys.executable, "-m", "bot", "serve", "--config", str(self.config),
            "--port", str(self.port), "--address", gcs_address,
            "--replicas", str(self.replicas),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                command, stdout=out, stderr=out, env=env, cwd=REPO, preexec_fn=die_with_parent
            )

    async def wait_serving(self, timeout: float = START_TIMEOUT) -> None:
        import aiohttp

        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"the model server exited: {self.tail()}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.get(f"{self.v1}/models") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(1.0)
        raise RuntimeError(f"the model server did not start in {timeout:g} s: {self.tail()}")

    def kill_replica(self, name: str) -> None:
        """Kill the named replica actor (Serve starts another). Blocking: call in a thread."""
        import ray

        ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)

    def stop(self) -> None:
        """SIGTERM the server (Serve shuts down), kill it if it lingers, then stop Ray."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.ray_started:
            import ray

            ray.shutdown()
            self.ray_started = False
        if self.ray_tmp is not None:
            shutil.rmtree(self.ray_tmp, ignore_errors=True)
            self.ray_tmp = None

    def tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


class Deployment:
    """Everything a run starts, in order, and stops in reverse."""

    def __init__(
        self, topology: Topology, workdir: Path, admin_url: str, defects: Sequence[str] = ()
    ) -> None:
        self.topology = topology
        self.workdir = workdir
        self.world = soak_world(topology)
        self.server = FakeDiscord(
            world=self.world, recommended_shards=topology.shards, max_concurrency=1
        )
        self.database = Database(admin_url)
        self.model = widened(TINY_LSTM, workdir / "soak-model.onnx", hidden=MODEL_HIDDEN)
        self.model_server: ModelServer | None = None
        if topology.replicas > 0:
            self.model_server = ModelServer(
                serve_config(workdir / "serve.toml", self.model),
                topology.replicas,
                workdir / "serve.log",
            )
        self.defects = list(defects)
        self.bots: list[BotProcess] = []

    async def start(self) -> None:
        serving: asyncio.Task[None] | None = None
        if self.model_server is not None:
            # Ray in this thread (ray.init installs signal handlers: the main thread's job),
            # then the model server, the slowest part, comes up while the bots do.
            self.model_server.start(self.model_server.start_ray())
            serving = asyncio.create_task(self.model_server.wait_serving())
        await self.server.start()
        await self.database.create()
        port = self.model_server.port if self.model_server is not None else None
        config = bot_config(self.workdir / "charbot.toml", self.world, self.model, port)
        env = {
            **os.environ,
            **discord_env(self.server),
            "CHARBOT_STORE_URL": self.database.bot_url,
            "PYTHONPATH": str(REPO),
        }
        for index in range(self.topology.processes):
            shards = ",".join(map(str, self.topology.shard_ids(index)))
            bot_argv = [
                "--config", str(config), "run",
                "--shard-count", str(self.topology.shards), "--shard-ids", shards,
            ]  # fmt: skip
            prefix = ["-m", "bot"]
            if self.defects:
                prefix = ["-m", "bot.testing.defects", ",".join(self.defects), "--"]
            bot = BotProcess(
                f"bot{index}", prefix + bot_argv, env, self.workdir / f"bot{index}.log"
            )
            self.bots.append(bot)
            await bot.start()
        await self.wait_shards()
        if serving is not None:
            await serving

    def shards_connected(self) -> set[int]:
        return {s.shard_id for s in self.server.gateway.connected()}

    async def wait_shards(self, timeout: float = START_TIMEOUT) -> None:
        """Until every shard holds a session and the commands are synced."""

        def ready() -> bool:
            for bot in self.bots:
                if not bot.running:
                    raise RuntimeError(f"{bot.name} exited: {bot.tail()}")
            everyone = set(range(self.topology.shards))
            return self.shards_connected() == everyone and bool(self.server.synced_commands)

        await self.server.wait_until(ready, timeout, "every shard connected")

    def process_of(self, shard: int) -> BotProcess:
        return self.bots[shard // (self.topology.shards // self.topology.processes)]

    async def close(self) -> None:
        """Stop everything; each step runs even when one before it failed."""
        for bot in self.bots:
            with contextlib.suppress(Exception):
                await bot.kill()
        if self.model_server is not None:
            with contextlib.suppress(Exception):
                self.model_server.stop()
        with contextlib.suppress(Exception):
            await self.database.drop()
        with contextlib.suppress(Exception):
            await self.server.stop()
