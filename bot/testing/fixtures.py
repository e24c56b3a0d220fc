"""Pytest fixtures for tests against :class:`FakeDiscord` (the only module here importing pytest).

Load them from any conftest with ``from bot.testing.fixtures import *  # noqa: F403`` (the top
conftest may say ``pytest_plugins = ["bot.testing.fixtures"]`` instead). A test using
``fake_discord`` gets the ``e2e`` marker, so ``-m "not e2e"`` leaves the Discord tests out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bot.testing.client import discord_pointed_at
from bot.testing.fakediscord import FakeDiscord

__all__ = ["fake_discord", "pytest_collection_modifyitems", "pytest_configure"]

E2E = "e2e"
E2E_DESCRIPTION = f"{E2E}: runs a bot or a discord.py client against the test Discord server"


@pytest_asyncio.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A started FakeDiscord with discord.py pointed at it for the test's duration."""
    server = FakeDiscord(heartbeat_interval=0.5)
    async with server:
        with discord_pointed_at(server):
            yield server
    assert not server.internal_errors, f"fakediscord bugs: {server.internal_errors}"


def pytest_configure(config: pytest.Config) -> None:
    markers: list[str] = config.getini("markers")
    if not any(line.startswith(f"{E2E}:") for line in markers):
        config.addinivalue_line("markers", E2E_DESCRIPTION)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "fake_discord" in getattr(item, "fixturenames", ()):
            item.add_marker(E2E)
