"""Scale-out, end to end: several `python -m bot run` processes, each running some shards of one
bot against FakeDiscord (6 guilds), all sharing one real PostgreSQL store.

IDENTIFY spacing is `discord.identify_spacing_seconds` = 1 s here (5 s, Discord's rule, by
default) so the processes start in seconds; the test checks the configured spacing. The fake
records IDENTIFYs when it receives them, a little after the process took its turn (later still
on a loaded machine), so gaps are checked with `JITTER` of slack: without the shared lock, two
processes starting together identify within a few milliseconds of each other.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bot.testing import FakeDiscord, FakeGuild, Identify, default_world, discord_env, shard_of
from tests.postgres import SECRET, kill_connections, with_password
from tests.tcpproxy import TcpProxy

REPO = Path(__file__).resolve().parents[3]
SPACING = 1.0
JITTER = 0.2
GLOBAL_SYNC = ("PUT", "/applications/{app_id}/commands")


class BotProcess:
    """One `python -m bot run` with its own log file."""

    def __init__(self, name: str, log: Path, proc: asyncio.subprocess.Process) -> None:
        self.name, self.log, self.proc = name, log, proc

    @classmethod
    async def start(cls, name: str, config: Path, env: dict[str, str], *flags: str) -> BotProcess:
        log = config.parent / f"{name}.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "--config", str(config), "run", *flags,
                cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            )  # fmt: skip
        return cls(name, log, proc)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def stop(self) -> int:
        """SIGTERM (a graceful shutdown) and the exit code."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 30)

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()


@pytest.fixture
async def processes() -> AsyncIterator[list[BotProcess]]:
    """Every process a test starts; any still running at the end is killed."""
    started: list[BotProcess] = []
    yield started
    for bot in started:
        await bot.kill()


def write_config(tmp_path: Path, server: FakeDiscord, model: Path) -> Path:
    path = tmp_path / "charbot.toml"
    path.write_text(
        f"""
[discord]
owner_ids = [{server.world.owner.id}]
cooldown_seconds = 0.0
sync_global = true
identify_spacing_seconds = {SPACING}

[generation]
length = 20

[models]
default = "tiny"

[models.tiny]
path = "{model}"
"""
    )
    return path


def bot_env(server: FakeDiscord, store_url: str) -> dict[str, str]:
    return {
        **os.environ,
        **discord_env(server),
        "CHARBOT_STORE_URL": store_url,
        "PYTHONPATH": str(REPO),
    }


async def wait_shards(
    server: FakeDiscord, count: int, procs: Sequence[BotProcess], timeout: float = 60
) -> None:
    def ready() -> bool:
        for bot in procs:
            if bot.proc.returncode is not None:
                raise AssertionError(f"{bot.name} exited: {bot.text()[-2000:]}")
        shards = {(s.shard_id, s.shard_count) for s in server.gateway.connected()}
        return shards == {(i, count) for i in range(count)} and bool(server.synced_commands)

    logs = ", ".join(str(b.log) for b in procs)
    await server.wait_until(ready, timeout, f"{count} shards connected; logs: {logs}")


def assert_spaced(identifies: Sequence[Identify]) -> None:
    """IDENTIFYs of one bucket are at least the configured spacing apart."""
    by_bucket = itertools.groupby(sorted(identifies, key=lambda i: i.bucket), lambda i: i.bucket)
    for bucket, group in by_bucket:
        times = sorted(i.at for i in group)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(gap >= SPACING - JITTER for gap in gaps), (bucket, gaps)


def general(guild: FakeGuild) -> int:
    return guild.channels[0].id


def temperature(index: int) -> float:
    return round(0.1 * (index + 1), 1)


async def test_shards_across_processes_share_one_store_and_survive_a_reshard(
    postgres_url: str, tmp_path: Path, tiny_onnx: Path, processes: list[BotProcess]
) -> None:
    world = default_world(guilds=6)
    server = FakeDiscord(world=world, recommended_shards=4, max_concurrency=1)
    async with server:
        config = write_config(tmp_path, server, tiny_onnx)
        env = bot_env(server, with_password(postgres_url))
        w = server.world

        # Two processes, shards 0-1 and 2-3 of 4, started together.
        first = await BotProcess.start(
            "first", config, env, "--shard-count", "4", "--shard-ids", "0,1"
        )
        second = await BotProcess.start(
            "second", config, env, "--shard-count", "4", "--shard-ids", "2,3"
        )
        processes += [first, second]
        await wait_shards(server, 4, processes)
        assert_spaced(server.identifies)  # max_concurrency 1: all four in one bucket

        sets = [
            await server.invoke_command(
                "temperature set",
                {"value": temperature(i)},
                channel_id=general(g),
                user=w.moderator,
            )
            for i, g in enumerate(w.guilds)
        ]
        completes = [
            await server.invoke_command("complete", {"prompt": f"Guild {i}"}, channel_id=general(g))
            for i, g in enumerate(w.guilds)
        ]
        for i, (set_, complete) in enumerate(zip(sets, completes, strict=True)):
            told = await set_.wait_response(timeout=20)
            assert told.content == f"Temperature set to {temperature(i):g} for this channel."
            answer = await complete.wait_idle(quiet=0.3, timeout=30)
            assert (answer.content or "").startswith(f"**Guild {i}**"), answer
        await asyncio.sleep(0.3)
        # Exactly once each: only the owning shard's session got the interaction.
        assert [len(h.replies) for h in sets + completes] == [1] * 12

        status = await server.invoke_command(
            "admin status", channel_id=general(w.guilds_of_shard(0, 4)[0]), user=w.owner
        )
        first_line = ((await status.wait_response(timeout=10)).content or "").split("\n")[0]
        owned = sum(shard_of(g.id, 4) in (0, 1) for g in w.guilds)
        assert first_line.startswith("Shards 0: ") and ", 1: " in first_line, first_line
        assert first_line.endswith(f"(of 4); guilds {owned}"), first_line

        # The second process dies: the first one's guilds are still answered.
        await second.kill()
        for guild in w.guilds:
            if shard_of(guild.id, 4) in (0, 1):
                ia = await server.invoke_command(
                    "temperature show", channel_id=general(guild), user=w.member
                )
                assert "temperature is" in ((await ia.wait_response(timeout=10)).content or "")
        assert await first.stop() == 0
        syncs = [r for r in server.requests if (r.method, r.route) == GLOBAL_SYNC]
        assert len(syncs) == 1  # by the process running shard 0

        # Reshard: three processes, one shard each of 3; guilds move between processes.
        server.gateway.max_concurrency = 2
        before = len(server.identifies)
        trio = [
            await BotProcess.start(
                f"trio{i}", config, env, "--shard-count", "3", "--shard-ids", str(i)
            )
            for i in range(3)
        ]
        processes += trio
        await wait_shards(server, 3, trio)
        resharded = server.identifies[before:]
        assert sorted((i.shard_id, i.bucket) for i in resharded) == [(0, 0), (1, 1), (2, 0)]
        assert_spaced(resharded)
        shows = [
            await server.invoke_command("temperature show", channel_id=general(g), user=w.member)
            for g in w.guilds
        ]
        for i, show in enumerate(shows):
            reply = await show.wait_response(timeout=20)
            assert reply.content == f"This channel's temperature is {temperature(i):g}.", reply
        assert [r for r in server.requests if (r.method, r.route) == GLOBAL_SYNC] == syncs
        assert "commands unchanged" in trio[0].text()
        assert [await bot.stop() for bot in trio] == [0, 0, 0]

    logs = "".join(bot.text() for bot in processes)
    assert SECRET not in logs and server.token not in logs
    assert "postgresql://postgres:***@" in logs
    assert not server.internal_errors, server.internal_errors


async def test_a_database_outage_is_told_and_recovered_without_a_restart(
    postgres_url: str, tmp_path: Path, tiny_onnx: Path, processes: list[BotProcess]
) -> None:
    target = urlsplit(postgres_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    server = FakeDiscord()
    try:
        async with server:
            w = server.world
            config = write_config(tmp_path, server, tiny_onnx)
            env = bot_env(server, with_password(postgres_url, port=proxy.port))
            bot = await BotProcess.start("solo", config, env)
            processes.append(bot)
            await wait_shards(server, 1, [bot])

            async def show(channel: int) -> tuple[str, bool]:
                ia = await server.invoke_command("temperature show", channel_id=channel)
                reply = await ia.wait_response(timeout=15)
                return reply.content or "", reply.ephemeral

            ia = await server.invoke_command("temperature set", {"value": 0.6}, user=w.moderator)
            assert "0.6" in ((await ia.wait_response(timeout=15)).content or "")
            assert await kill_connections(postgres_url) >= 1
            assert await show(w.general.id) == ("This channel's temperature is 0.6.", False)

            await proxy.stop()  # the database is unreachable
            content, ephemeral = await show(w.general.id)
            assert "settings are unavailable" in content and "try again shortly" in content
            assert ephemeral
            ia = await server.invoke_command(
                "complete", {"prompt": "To be"}, channel_id=w.random.id
            )
            told = await ia.wait_response(timeout=15)
            assert "settings are unavailable" in (told.content or ""), told
            assert told.ephemeral and len(ia.replies) == 1
            assert bot.proc.returncode is None

            await proxy.start()  # back: the same process recovers, nothing lost
            assert await show(w.general.id) == ("This channel's temperature is 0.6.", False)
            assert server.identify_count == 1  # never reconnected to Discord
            assert await bot.stop() == 0
    finally:
        await proxy.stop()
    log = bot.text()
    assert "unavailable" in log and SECRET not in log and server.token not in log
