"""Pytest fixtures for tests against :class:`FakeDiscord` (the only module here importing pytest).

Load them from a conftest: ``pytest_plugins = ["bot.testing.fixtures"]``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from bot.testing.client import discord_pointed_at
from bot.testing.fakediscord import FakeDiscord


@pytest_asyncio.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A started FakeDiscord with discord.py pointed at it for the test's duration."""
    server = FakeDiscord(heartbeat_interval=0.5)
    async with server:
        with discord_pointed_at(server):
            yield server
    assert not server.internal_errors, f"fakediscord bugs: {server.internal_errors}"
