"""The stores' records (expiry, compare-and-set) and the completion records built on them."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.core.records import (
    SECONDS_PER_DAY,
    ClaimStatus,
    CompletionRecord,
    CompletionRecords,
)
from bot.generation.params import GenerationParams
from bot.settings import SettingsRegistry
from bot.stores import MemorySettingsStore, SettingsStore, SqliteSettingsStore, open_store
from bot.stores import sqlite as sqlite_module

NOW = 1_000_000.0


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """The driver, and for PostgreSQL the URL of an emptied test database."""
    if request.param == "postgres":
        return request.param, request.getfixturevalue("postgres_url")
    return request.param, None


@pytest.fixture
async def store(store_kind: tuple[str, str | None], tmp_path: Path) -> AsyncIterator[SettingsStore]:
    registry = SettingsRegistry()
    kind, url = store_kind
    s: SettingsStore
    if kind == "memory":
        s = MemorySettingsStore(registry)
    elif url is None:
        s = await SqliteSettingsStore.open(tmp_path / "s.sqlite3", registry)
    else:
        s = await open_store(url, registry)
    yield s
    await s.close()


async def test_records_expire_and_are_purged(store: SettingsStore) -> None:
    await store.put_record("k", "a", '{"x": 1}', expires_at=NOW + 10)
    await store.put_record("k", "b", "[]", expires_at=NOW - 1)
    found = await store.get_record("k", "a", now=NOW)
    assert found is not None and (found.data, found.version) == ('{"x": 1}', 0)
    assert await store.get_record("k", "a", now=NOW + 10) is None  # expired at its time
    assert await store.get_record("k", "b", now=NOW) is None
    assert await store.get_record("other", "a", now=NOW) is None  # kinds are apart
    assert await store.purge_expired(NOW) == 1
    await store.delete_record("k", "a")
    await store.delete_record("k", "a")  # no-op
    assert await store.get_record("k", "a", now=NOW) is None


async def test_swap_is_a_compare_and_set(store: SettingsStore) -> None:
    await store.put_record("k", "a", '"v0"', expires_at=NOW + 10)
    # Two writers read version 0 and race: exactly one wins.
    results = await asyncio.gather(
        *(store.swap_record("k", "a", f'"w{i}"', version=0, expires_at=NOW + 20) for i in range(2))
    )
    assert sorted(results) == [False, True]
    found = await store.get_record("k", "a", now=NOW + 15)
    assert found is not None and found.version == 1 and found.expires_at == NOW + 20
    assert not await store.swap_record("k", "a", '"x"', version=0, expires_at=NOW)
    assert not await store.swap_record("k", "gone", '"x"', version=0, expires_at=NOW)


async def test_records_refuse_bad_keys_and_data(store: SettingsStore) -> None:
    with pytest.raises(ValueError, match="JSON"):
        await store.put_record("k", "a", "not json", expires_at=NOW)
    with pytest.raises(ValueError, match="1 to 64"):
        await store.put_record("k", "x" * 65, "1", expires_at=NOW)


async def test_an_old_database_gains_the_records_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.sqlite3"
    registry = SettingsRegistry()
    registry.register_channel("temperature", default=None, owner="tests")
    migrations = sqlite_module.MIGRATIONS
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", migrations[:1])
    old = await SqliteSettingsStore.open(path, registry)
    await old.set(5, "temperature", 0.5)
    await old.close()
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", migrations)
    store = await SqliteSettingsStore.open(path, registry)
    try:
        assert await store.get(5, "temperature") == 0.5
        await store.put_record("k", "a", "1", expires_at=NOW)
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(migrations)
    db.close()


# -- completion records ---------------------------------------------------------------------------


def a_record() -> CompletionRecord:
    params = GenerationParams(max_length=30, temperature=0.5, top_k=3, top_p=0.9)
    return CompletionRecord("To be", ", or not", "tiny", params, author_id=7, channel_id=8)


async def test_completion_records_round_trip_and_claims() -> None:
    clock = [NOW]
    records = CompletionRecords(MemorySettingsStore(SettingsRegistry()), 7, lambda: clock[0])
    record_id, version = await records.add(a_record())
    assert await records.get(record_id) == (a_record(), 0)

    claim = await records.claim(record_id, version)
    assert claim.status is ClaimStatus.CLAIMED and claim.record == a_record()
    assert (await records.claim(record_id, version)).status is ClaimStatus.BUSY  # in process
    records._working.clear()  # as another process sharing the store would see it
    assert (await records.claim(record_id, version)).status is ClaimStatus.BUSY  # in the store
    assert (await records.claim(record_id, claim.version)).status is ClaimStatus.BUSY

    new_version = await records.release(claim, replace(a_record(), text=" again"))
    assert new_version == version + 2
    stale = await records.claim(record_id, version)  # buttons from before the release
    assert stale.status is ClaimStatus.STALE and stale.version == new_version
    stored = await records.get(record_id)
    assert stored is not None and stored[0].text == " again" and not stored[0].busy

    clock[0] += 7 * SECONDS_PER_DAY  # the lifetime runs from the last release
    assert (await records.claim(record_id, new_version)).status is ClaimStatus.GONE
    assert await records.purge() == 1


def test_the_context_is_prompt_and_text_cut_from_the_start() -> None:
    record = a_record()
    assert record.context(100) == "To be, or not"
    assert record.context(6) == "or not"
    assert CompletionRecord.decode(record.encode()) == record
    assert CompletionRecord.decode('{"format": 99}') is None
