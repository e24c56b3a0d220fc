"""Run a real discord.py client, or the whole charbot app, against a :class:`FakeDiscord`.

Nothing here imports pytest: the fixtures that wrap these helpers are in ``bot.testing.fixtures``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any, TypedDict

import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.config import load_config
from bot.discord.app import CharBot
from bot.runtime import build_bot
from bot.testing.fakediscord import FakeDiscord


class ClientTimeouts(TypedDict):
    guild_ready_timeout: float
    heartbeat_timeout: float


# Short client timeouts for tests: on_ready comes guild_ready_timeout after the last
# GUILD_CREATE; heartbeat_timeout is also discord.py's gateway receive timeout, so keep it
# several times the server's heartbeat_interval.
CLIENT_KWARGS = ClientTimeouts(guild_ready_timeout=0.1, heartbeat_timeout=5.0)


def discord_env(server: FakeDiscord) -> dict[str, str]:
    """The environment that points a charbot config (or a `python -m bot` process) at `server`."""
    return {
        "DISCORD_TOKEN": server.token,
        "CHARBOT_DISCORD_API_BASE": server.api_base,
        "CHARBOT_DISCORD_GATEWAY_URL": server.gateway_url,
    }


@contextlib.contextmanager
def discord_pointed_at(server: FakeDiscord) -> Iterator[None]:
    """Point discord.py's REST base and default gateway at ``server``; restore them after."""
    old_base, old_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    Route.BASE = server.api_base
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(server.gateway_url)
    try:
        yield
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gateway


@contextlib.asynccontextmanager
async def running_client(
    client: discord.Client, server: FakeDiscord, *, timeout: float = 10.0
) -> AsyncIterator[discord.Client]:
    """Start ``client`` against ``server``, wait for on_ready, and close it afterwards.

    A failure during login or ``setup_hook`` is raised here rather than hanging until timeout.
    """
    task = asyncio.create_task(client.start(server.token), name="fakediscord-client")
    try:
        async with asyncio.timeout(timeout):
            while not client.is_ready():
                if task.done():
                    task.result()  # raises what start() raised
                    raise RuntimeError("client.start() returned before the client was ready")
                await asyncio.sleep(0.01)
        yield client
    finally:
        await client.close()
        done, _ = await asyncio.wait({task}, timeout=5.0)
        if not done:
            task.cancel()
    # Only reached when the test body passed: surface a client that died mid-test.
    if task.done() and not task.cancelled() and (error := task.exception()) is not None:
        raise error


@contextlib.asynccontextmanager
async def running_bot(
    server: FakeDiscord, config_path: Path, overrides: Mapping[str, Any] | None = None
) -> AsyncIterator[CharBot]:
    """The charbot app from the config file at `config_path`, connected to `server`, with its
    plugins and models loaded; `overrides` are dotted config keys ({"engine.max_queue": 4})."""
    config = load_config(config_path, discord_env(server), dict(overrides or {}))
    bot = await build_bot(config, **CLIENT_KWARGS)
    async with running_client(bot, server):
        yield bot
