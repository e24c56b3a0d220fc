"""Pytest fixtures and helpers to run a real discord.py client against :class:`FakeDiscord`.

Use from a conftest: ``from tests.fakediscord.fixtures import fake_discord  # noqa: F401``
(or ``pytest_plugins = ["tests.fakediscord.fixtures"]`` in the root conftest).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import TypedDict

import discord
import pytest_asyncio
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from .server import FakeDiscord


class ClientTimeouts(TypedDict):
    guild_ready_timeout: float
    heartbeat_timeout: float


# Short client timeouts for tests: on_ready comes guild_ready_timeout after the last
# GUILD_CREATE; heartbeat_timeout is also discord.py's gateway receive timeout, so keep it
# several times the server's heartbeat_interval.
CLIENT_KWARGS = ClientTimeouts(guild_ready_timeout=0.1, heartbeat_timeout=5.0)


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


@pytest_asyncio.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A started FakeDiscord with discord.py pointed at it for the test's duration."""
    server = FakeDiscord(heartbeat_interval=0.5)
    async with server:
        with discord_pointed_at(server):
            yield server
    assert not server.internal_errors, f"fakediscord bugs: {server.internal_errors}"
