"""The PostgreSQL store on a real server: schema, no cache, lost connections, outages, locks,
`store copy` both ways, and a password that never shows."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from bot.cli import main
from bot.settings import (
    SettingsRegistry,
    SettingsStoreError,
    SettingsUnavailableError,
)
from bot.stores import open_store
from bot.stores import postgres as postgres_module
from bot.stores.postgres import MIGRATIONS, PostgresSettingsStore
from tests.postgres import SECRET, kill_connections, with_password
from tests.tcpproxy import TcpProxy

CHANNEL = 1_000_000_000_000_000_401


def registry() -> SettingsRegistry:
    reg = SettingsRegistry()
    reg.register_channel("temperature", default=None, owner="test")
    reg.register_channel("model", default="shakespeare", owner="test")
    return reg


async def test_schema_values_and_meta_without_cache(postgres_url: str) -> None:
    first = await open_store(postgres_url, registry())
    second = await open_store(postgres_url, registry())  # another process, as far as PG knows
    try:
        assert isinstance(first, PostgresSettingsStore)
        assert await first.get(CHANNEL, "model") == "shakespeare"
        assert await first.set(CHANNEL, "temperature", 0.5) == 0.5
        assert await second.get(CHANNEL, "temperature") == 0.5
        await second.set(CHANNEL, "temperature", 1.25)
        assert await first.get(CHANNEL, "temperature") == 1.25  # no per-process cache
        assert await first.get_all(CHANNEL) == {"model": "shakespeare", "temperature": 1.25}
        await first.reset(CHANNEL, "temperature")
        assert await second.get(CHANNEL, "temperature") is None
        assert await first.get_meta("commands.sha256.global") is None
        await first.set_meta("commands.sha256.global", "abc")
        assert await second.get_meta("commands.sha256.global") == "abc"
        await first.put_rows([(7, "model", '"tiny"'), (CHANNEL, "temperature", "0.25")])
        assert await second.rows() == [(7, "model", '"tiny"'), (CHANNEL, "temperature", "0.25")]
    finally:
        await first.close()
        await second.close()
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


@pytest.mark.parametrize("driver", ["sqlite", "postgresql"])
async def test_meta_rows_and_locks_in_both_drivers(
    driver: str, postgres_url: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 's.sqlite3'}" if driver == "sqlite" else postgres_url
    store = await open_store(url, registry())
    try:
        assert await store.get_meta("commands.sha256.global") is None
        await store.set_meta("commands.sha256.global", "one")
        await store.set_meta("commands.sha256.global", "two")
        assert await store.get_meta("commands.sha256.global") == "two"
        await store.put_rows([(9, "model", '"tiny"'), (2, "temperature", "0.5")])
        await store.put_rows([(2, "temperature", "0.75")])
        assert await store.rows() == [(2, "temperature", "0.75"), (9, "model", '"tiny"')]
        assert await store.get(2, "temperature") == 0.75
        async with store.exclusive("charbot.identify.0"):
            pass
    finally:
        await store.close()


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
            await store.ping()
        assert store.errors == 3  # what the metrics count: the failed reads and write

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
    assert isinstance(store, PostgresSettingsStore)
    async with store.exclusive(name):
        entered.append(name)


def test_store_copy_both_ways_twice(
    postgres_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    source = f"sqlite:///{tmp_path / 'a.sqlite3'}"
    back = f"sqlite:///{tmp_path / 'b.sqlite3'}"
    pg = with_password(postgres_url)
    rows = [(c, "temperature", f"0.{c}") for c in range(1, 7)] + [(3, "model", '"tiny"')]

    async def seed() -> None:
        store = await open_store(source, registry())
        await store.put_rows(rows)
        await store.close()

    asyncio.run(seed())
    outputs = []
    for src, dst in [(source, pg), (source, pg), (pg, back), (pg, back)]:
        assert main(["store", "copy", "--from", src, "--to", dst]) == 0
        outputs.append(capsys.readouterr())
    shown_pg = pg.replace(SECRET, "***")
    assert outputs[0].out.strip() == (
        f"Copied 7 settings of 6 channels from {source} to {shown_pg}: 7 written, 0 already there."
    )
    assert outputs[1].out.strip().endswith(": 0 written, 7 already there.")
    assert outputs[2].out.strip().endswith(": 7 written, 0 already there.")
    assert outputs[3].out.strip().endswith(": 0 written, 7 already there.")

    async def read_back() -> list[tuple[int, str, str]]:
        store = await open_store(back, registry())
        try:
            return await store.rows()
        finally:
            await store.close()

    assert asyncio.run(read_back()) == sorted(rows)
    assert main(["store", "copy", "--from", pg, "--to", pg]) == 1
    assert (
        main(
            [
                "store",
                "copy",
                "--from",
                source,
                "--to",
                "postgresql://u:" + SECRET + "@127.0.0.1:1/x",
            ]
        )
        == 1
    )
    assert (
        main(["store", "copy", "--from", f"sqlite:///{tmp_path / 'typo.sqlite3'}", "--to", pg]) == 1
    )
    errors = capsys.readouterr().err
    assert "name the same store" in errors and "Cannot reach the settings store" in errors
    assert "typo.sqlite3, does not exist" in errors and not (tmp_path / "typo.sqlite3").exists()
    everything = "".join(o.out + o.err for o in outputs) + errors + caplog.text
    assert SECRET not in everything
