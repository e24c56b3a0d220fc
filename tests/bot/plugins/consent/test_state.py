"""Consent in the store, on every driver: a guild's allowed channels, users who opted out, both
kept by `store copy`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.plugins.consent import state
from bot.settings import SettingsRegistry
from bot.stores import Store, open_store
from bot.stores.copy import copy_store
from bot.stores.urls import sqlite_url
from tests.bot.stores.conftest import SHARED, STORE_URLS

GUILD, OTHER_GUILD = 1001, 1002


@pytest.fixture(
    params=[
        pytest.param(name, marks=[getattr(pytest.mark, d.lane)] if d.lane else [])
        for name, d in sorted(STORE_URLS.items())
    ]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(STORE_URLS[request.param].url(request, tmp_path))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await open_store(store_url, SettingsRegistry())
    yield opened
    await opened.close()


async def test_allowed_channels_per_guild(store: Store) -> None:
    assert await state.allowed_channels(store, GUILD) == []
    assert await state.allow(store, GUILD, 30) and await state.allow(store, GUILD, 10)
    assert not await state.allow(store, GUILD, 30)  # already
    assert await state.allowed_channels(store, GUILD) == [10, 30]
    assert await state.allowed_channels(store, OTHER_GUILD) == []
    assert await state.deny(store, GUILD, 30) and not await state.deny(store, GUILD, 30)
    assert await state.allowed_channels(store, GUILD) == [10]
    await state.deny(store, GUILD, 10)
    assert await state.allowed_channels(store, GUILD) == []


async def test_admins_allowing_at_once_all_count(store: Store) -> None:
    await asyncio.gather(*(state.allow(store, GUILD, channel) for channel in range(1, 21)))
    assert await state.allowed_channels(store, GUILD) == list(range(1, 21))


async def test_opt_out_is_per_user_and_undone_by_opt_in(store: Store) -> None:
    assert await state.opted_out(store) == [] and await state.opted_out_since(store, 7) is None
    since = await state.opt_out(store, 7)
    assert await state.opt_out(store, 7) == since  # the first time stays
    await state.opt_out(store, 3)
    assert await state.opted_out(store) == [3, 7]
    assert await state.opted_out_since(store, 7) == since
    assert await state.opt_in(store, 7) and not await state.opt_in(store, 7)
    assert await state.opted_out(store) == [3]


async def test_store_copy_keeps_consent(store: Store, store_url: str, tmp_path: Path) -> None:
    if not any(store_url.startswith(scheme) for scheme in SHARED):
        pytest.skip("a memory store is gone once closed: nothing to copy from")
    await state.allow(store, GUILD, 10)
    await state.opt_out(store, 7)
    target = sqlite_url(tmp_path / "copy.sqlite3")
    await copy_store(store_url, target)
    copied = await open_store(target, SettingsRegistry())
    try:
        assert await state.allowed_channels(copied, GUILD) == [10]
        assert await state.opted_out(copied) == [7]
    finally:
        await copied.close()
