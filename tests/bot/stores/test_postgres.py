"""The PostgreSQL driver's own cases on a real server: its versioned schema, lost connections,
outages, locks shared between processes, and a password that never shows."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import asyncpg
import pytest

from bot.settings import SettingsStoreError, SettingsUnavailableError
from bot.stores import Scope, open_store
from bot.stores import postgres as postgres_module
from bot.stores.postgres import MIGRATIONS, PostgresStore
from tests.bot.stores.conftest import make_registry as registry
from tests.postgres import SECRET, kill_connections, with_password
from tests.tcpproxy import TcpProxy

CHANNEL = 1_000_000_000_000_000_401


async def test_the_schema_is_versioned_and_a_newer_one_refused(postgres_url: str) -> None:
    store = await open_store(postgres_url, registry())
    await store.close()
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetchval("SELECT version FROM charbot_schema") == len(MIGRATIONS)
        await conn.execute("UPDATE charbot_schema SET version = 99")
    finally:
        await conn.close()
    with pytest.raises(SettingsStoreError) as info:
        await open_store(with_password(postgres_url), registry())
    message = str(info.value)
    assert f"schema version 99, newer than this charbot knows ({len(MIGRATIONS)})" in message
    assert SECRET not in message and ":***@" in message and "\n" not in message


async def test_an_old_schema_gains_the_later_tables_and_keeps_its_data(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres_module, "MIGRATIONS", MIGRATIONS[:2])  # before records
    old = await open_store(postgres_url, registry())
    await old.set(CHANNEL, "temperature", 0.5)
    await old.close()
    monkeypatch.setattr(postgres_module, "MIGRATIONS", MIGRATIONS)
    store = await open_store(postgres_url, registry())
    try:
        assert await store.get(CHANNEL, "temperature") == 0.5
        await store.put_record("k", "a", "1", expires_at=1.0)
        await store.set_state(Scope.USER, 5, "consent.opted_out", True)
    finally:
        await store.close()
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetchval("SELECT version FROM charbot_schema") == len(MIGRATIONS)
    finally:
        await conn.close()


async def test_killed_connections_and_an_outage_are_survived(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    target = urlsplit(postgres_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    url = with_password(postgres_url, port=proxy.port)
    store = await open_store(url, registry())
    try:
        await store.set(CHANNEL, "temperature", 0.7)
        await store.ping()  # the readiness probe's check
        assert await kill_connections(postgres_url) >= 1
        assert await store.get(CHANNEL, "temperature") == 0.7  # a new connection, silently

        await proxy.stop()  # the server is unreachable
        for _ in range(2):
            with pytest.raises(SettingsUnavailableError, match="try again shortly"):
                await store.get(CHANNEL, "temperature")
        with pytest.raises(SettingsUnavailableError):
            await store.set(CHANNEL, "temperature", 0.1)
        with pytest.raises(SettingsUnavailableError):
            await store.update_state(Scope.USER, 5, "consent.opted_out", lambda _: True)
        with pytest.raises(SettingsUnavailableError):
            await store.ping()
        assert store.errors == 4  # what the metrics count: the failed reads and writes

        await proxy.start()  # back: the same store recovers by itself
        await store.ping()
        assert await store.get(CHANNEL, "temperature") == 0.7
        await store.set(CHANNEL, "temperature", 0.9)
        assert await store.get(CHANNEL, "temperature") == 0.9
    finally:
        await store.close()
        await proxy.stop()
    assert "unavailable" in caplog.text
    assert SECRET not in caplog.text


async def test_unreachable_at_open_is_one_sentence_without_the_password() -> None:
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:1/nothing"
    with pytest.raises(SettingsStoreError) as info:
        await open_store(url, registry())
    message = str(info.value)
    assert message.startswith(
        "Cannot reach the settings store postgresql://postgres:***@127.0.0.1:1"
    )
    assert SECRET not in message and "\n" not in message


async def test_exclusive_is_shared_between_stores(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A statement timeout shorter than the hold: waiting for a lock is not a timed-out statement.
    monkeypatch.setattr(postgres_module, "COMMAND_TIMEOUT", 0.2)
    first = await open_store(postgres_url, registry())
    second = await open_store(postgres_url, registry())
    entered: list[str] = []
    try:
        async with first.exclusive("charbot.identify.0"):
            waiting = asyncio.create_task(_enter(second, "charbot.identify.0", entered))
            with pytest.raises(TimeoutError):  # held by the other "process"
                await asyncio.wait_for(asyncio.shield(waiting), 0.5)
            async with second.exclusive("charbot.identify.1"):  # another bucket is free
                entered.append("bucket 1")
            assert entered == ["bucket 1"]
        await asyncio.wait_for(waiting, 5)
        assert entered == ["bucket 1", "charbot.identify.0"]
    finally:
        await first.close()
        await second.close()


async def _enter(store: object, name: str, entered: list[str]) -> None:
    assert isinstance(store, PostgresStore)
    async with store.exclusive(name):
        entered.append(name)
