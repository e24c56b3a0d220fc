"""The store seam's conformance suite: every test here runs on every driver (`STORE_URLS`).

What one driver does, all do: settings through the registry, scoped state per guild, channel and
user (atomic updates, listing by key), records with expiry and compare-and-set, meta, locks, and
the whole store dumped and loaded.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.settings import InvalidSettingError, SettingsStoreError, UnknownSettingError
from bot.stores import Scope, Store, StoreContents, open_store
from tests.bot.stores.conftest import SHARED, make_registry

CHANNEL = 1234567890123456789  # a realistic snowflake, near the top of the int64 range
OTHER = 42
GUILD = 1_100_000_000_000_000_001
USER = 1_200_000_000_000_000_002
NOW = 1_000_000.0


@pytest.fixture
async def twin(driver: str, store_url: str, store: Store) -> AsyncIterator[Store]:
    """A second handle on the same data, as another bot process holds it (for memory, which no
    other process sees, the same store)."""
    if driver not in SHARED:
        yield store
        return
    other = await open_store(store_url, make_registry())
    yield other
    await other.close()


# -- settings --------------------------------------------------------------------------------------


async def test_defaults(store: Store) -> None:
    assert await store.get(CHANNEL, "temperature") is None
    assert await store.get(CHANNEL, "model") == "shakespeare"
    assert await store.get_all(CHANNEL) == {
        "counter": 0,
        "model": "shakespeare",
        "temperature": None,
    }


async def test_set_get_reset(store: Store, twin: Store) -> None:
    assert await store.set(CHANNEL, "temperature", 1) == 1.0
    assert await twin.get(CHANNEL, "temperature") == 1.0  # no per-process cache
    assert await store.get(OTHER, "temperature") is None  # per channel
    await twin.set(CHANNEL, "temperature", 0.3)  # overwrite
    assert await store.get(CHANNEL, "temperature") == 0.3
    assert (await store.get_all(CHANNEL))["temperature"] == 0.3
    await store.reset(CHANNEL, "temperature")
    assert await twin.get(CHANNEL, "temperature") is None
    await store.reset(CHANNEL, "temperature")  # resetting an unset key is a no-op


@pytest.mark.parametrize("value", [math.nan, math.inf, -1, 2.0001, "warm"])
async def test_set_rejects_invalid_values_and_keeps_the_old(store: Store, value: Any) -> None:
    await store.set(CHANNEL, "temperature", 0.5)
    with pytest.raises(InvalidSettingError, match=r"The temperature must be from 0\.0 to 2\.0"):
        await store.set(CHANNEL, "temperature", value)
    assert await store.get(CHANNEL, "temperature") == 0.5


async def test_unknown_key_everywhere(store: Store) -> None:
    with pytest.raises(UnknownSettingError):
        await store.get(CHANNEL, "colour")
    with pytest.raises(UnknownSettingError):
        await store.set(CHANNEL, "colour", "blue")
    with pytest.raises(UnknownSettingError):
        await store.reset(CHANNEL, "colour")


async def test_bad_channel_ids(store: Store) -> None:
    with pytest.raises(TypeError):
        await store.get("123", "temperature")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await store.set(2**63, "temperature", 1.0)


async def test_stored_value_that_no_longer_validates_reads_as_default(store: Store) -> None:
    await store.set(CHANNEL, "temperature", 1.5)

    # The plugin narrowed its range in a later version; the old row must not reach the engine.
    def narrower(value: Any) -> float:
        if value > 1.0:
            raise InvalidSettingError(f"The temperature must be at most 1; got {value!r}.")
        return float(value)

    store.registry.register_channel(
        "temperature", default=None, validate=narrower, owner="temperature"
    )
    assert await store.get(CHANNEL, "temperature") is None


async def test_unregistered_keys_are_left_out_of_get_all(store: Store) -> None:
    await store.set(CHANNEL, "counter", 3)
    store.registry.unregister_owner("tests")
    assert "counter" not in await store.get_all(CHANNEL)


async def test_concurrent_writes(store: Store) -> None:
    channels = range(1, 21)

    async def writer(channel: int) -> None:
        for i in range(10):
            await store.set(channel, "counter", channel * 100 + i)
            await store.set(CHANNEL, "counter", i)  # everyone also hits one shared row

    await asyncio.gather(*(writer(c) for c in channels))
    for c in channels:
        assert await store.get(c, "counter") == c * 100 + 9
    assert await store.get(CHANNEL, "counter") == 9


async def test_closed_store_raises_and_counts(store: Store) -> None:
    await store.ping()  # the readiness probe's check
    assert store.errors == 0
    await store.close()
    with pytest.raises(SettingsStoreError, match="closed"):
        await store.get(CHANNEL, "temperature")
    with pytest.raises(SettingsStoreError, match="closed"):
        await store.ping()
    assert store.errors == 1  # what the metrics count: the failed read (the probe reports its own)
    await store.close()  # idempotent


# -- scoped state ----------------------------------------------------------------------------------


async def test_state_is_kept_per_scope_id_and_key(store: Store, twin: Store) -> None:
    assert await store.get_state(Scope.USER, USER, "consent.opted_out") is None
    await store.set_state(Scope.USER, USER, "consent.opted_out", True)
    await store.set_state(Scope.GUILD, GUILD, "consent.channels", [3, 1])
    await store.set_state(Scope.CHANNEL, CHANNEL, "note", {"a": [1, "é"], "b": None})
    assert await twin.get_state(Scope.USER, USER, "consent.opted_out") is True
    assert await twin.get_state(Scope.GUILD, GUILD, "consent.channels") == [3, 1]
    assert await twin.get_state(Scope.CHANNEL, CHANNEL, "note") == {"a": [1, "é"], "b": None}
    # Scopes, ids and keys are apart; settings are not state.
    assert await store.get_state(Scope.GUILD, USER, "consent.opted_out") is None
    assert await store.get_state(Scope.USER, USER + 1, "consent.opted_out") is None
    assert await store.get_state(Scope.USER, USER, "consent.channels") is None
    assert await store.get(CHANNEL, "temperature") is None
    await store.set_state(Scope.USER, USER, "consent.opted_out", False)  # overwrite
    assert await twin.get_state(Scope.USER, USER, "consent.opted_out") is False
    await twin.delete_state(Scope.USER, USER, "consent.opted_out")
    assert await store.get_state(Scope.USER, USER, "consent.opted_out") is None
    await store.delete_state(Scope.USER, USER, "consent.opted_out")  # no-op
    await store.set_state(Scope.GUILD, GUILD, "consent.channels", None)  # None deletes too
    assert await store.get_state(Scope.GUILD, GUILD, "consent.channels") is None


async def test_state_holders_lists_every_id_with_the_key(store: Store) -> None:
    """Every user who opted out, across guilds: one call."""
    assert await store.state_holders(Scope.USER, "consent.opted_out") == {}
    for user in (USER, 7, 2**63 - 1):
        await store.set_state(Scope.USER, user, "consent.opted_out", True)
    await store.set_state(Scope.USER, 8, "other", True)
    await store.set_state(Scope.GUILD, 9, "consent.opted_out", True)
    await store.delete_state(Scope.USER, 7, "consent.opted_out")
    holders = await store.state_holders(Scope.USER, "consent.opted_out")
    assert holders == {USER: True, 2**63 - 1: True}
    assert list(holders) == sorted(holders)


async def test_update_state_is_atomic_across_processes(store: Store, twin: Store) -> None:
    """A guild's allowed channels: adds and removes racing through two handles all land."""

    def adding(channel: int) -> Any:
        return lambda channels: sorted({*(channels or []), channel})

    def removing(channel: int) -> Any:
        return lambda channels: sorted(set(channels or []) - {channel}) or None

    await store.update_state(Scope.GUILD, GUILD, "consent.channels", adding(1000))
    await asyncio.gather(
        *(
            (store, twin)[c % 2].update_state(Scope.GUILD, GUILD, "consent.channels", adding(c))
            for c in range(1, 25)
        ),
        store.update_state(Scope.GUILD, GUILD, "consent.channels", removing(1000)),
    )
    assert await store.get_state(Scope.GUILD, GUILD, "consent.channels") == list(range(1, 25))

    # The new value comes back; an unchanged one is not written; None deletes.
    assert await twin.update_state(Scope.GUILD, GUILD, "consent.channels", adding(3)) == list(
        range(1, 25)
    )
    for c in range(1, 25):
        await (store, twin)[c % 2].update_state(Scope.GUILD, GUILD, "consent.channels", removing(c))
    assert await store.get_state(Scope.GUILD, GUILD, "consent.channels") is None
    assert await store.state_holders(Scope.GUILD, "consent.channels") == {}


async def test_state_refuses_bad_input(store: Store) -> None:
    with pytest.raises(ValueError, match="a scope is one of guild, channel, user"):
        await store.set_state("server", 1, "k", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1 to 64"):
        await store.set_state(Scope.USER, 1, "k" * 65, 1)
    with pytest.raises(ValueError, match="1 to 64"):
        await store.get_state(Scope.USER, 1, "")
    with pytest.raises(TypeError):
        await store.get_state(Scope.USER, "1", "k")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="out of range"):
        await store.set_state(Scope.USER, -1, "k", 1)
    for value in (math.nan, object(), {1, 2}):
        with pytest.raises(ValueError, match="must be a JSON value"):
            await store.set_state(Scope.USER, 1, "k", value)
    with pytest.raises(ValueError, match="must be a JSON value"):
        await store.update_state(Scope.USER, 1, "k", lambda _: math.inf)
    assert await store.state_holders(Scope.USER, "k") == {}  # nothing was written


# -- records ---------------------------------------------------------------------------------------


async def test_records_expire_and_are_purged(store: Store) -> None:
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


async def test_swap_is_a_compare_and_set(store: Store, twin: Store) -> None:
    await store.put_record("k", "a", '"v0"', expires_at=NOW + 10)
    # Two writers read version 0 and race: exactly one wins.
    results = await asyncio.gather(
        *(
            handle.swap_record("k", "a", f'"w{i}"', version=0, expires_at=NOW + 20)
            for i, handle in enumerate((store, twin))
        )
    )
    assert sorted(results) == [False, True]
    found = await store.get_record("k", "a", now=NOW + 15)
    assert found is not None and found.version == 1 and found.expires_at == NOW + 20
    assert not await store.swap_record("k", "a", '"x"', version=0, expires_at=NOW)
    assert not await store.swap_record("k", "gone", '"x"', version=0, expires_at=NOW)


async def test_records_refuse_bad_keys_and_data(store: Store) -> None:
    with pytest.raises(ValueError, match="JSON"):
        await store.put_record("k", "a", "not json", expires_at=NOW)
    with pytest.raises(ValueError, match="1 to 64"):
        await store.put_record("k", "x" * 65, "1", expires_at=NOW)


# -- meta, locks -----------------------------------------------------------------------------------


async def test_meta(store: Store, twin: Store) -> None:
    assert await store.get_meta("commands.sha256.global") is None
    await store.set_meta("commands.sha256.global", "one")
    await twin.set_meta("commands.sha256.global", "two")
    assert await store.get_meta("commands.sha256.global") == "two"
    assert await store.get_meta("commands.sha256.other") is None


async def test_exclusive_admits_one_holder_at_a_time(store: Store) -> None:
    inside: list[str] = []
    most = 0

    async def hold(name: str, who: str) -> None:
        nonlocal most
        async with store.exclusive(name):
            inside.append(who)
            most = max(most, len(inside))
            for _ in range(5):  # let the others run while this one holds the lock
                await asyncio.sleep(0)
            inside.remove(who)

    await asyncio.gather(*(hold("charbot.identify.0", f"t{i}") for i in range(4)))
    assert most == 1
    # Locks of other names are apart: one holder of each at once.
    await asyncio.gather(*(hold(f"charbot.identify.{i}", "x") for i in range(2)))


# -- the whole store -------------------------------------------------------------------------------


async def test_dump_and_load_hand_over_every_kind(store: Store) -> None:
    await store.set(CHANNEL, "model", "lyrics")
    await store.set(OTHER, "counter", 7)
    await store.set_state(Scope.USER, USER, "consent.opted_out", True)
    await store.set_state(Scope.GUILD, GUILD, "consent.channels", [1, 2])
    await store.put_record("completion", "r1", '{"t": 1}', expires_at=NOW + 5)
    await store.swap_record("completion", "r1", '{"t": 2}', version=0, expires_at=NOW + 9)
    await store.set_meta("commands.sha256.global", "abc")
    contents = await store.dump()
    assert contents == StoreContents(
        settings=((OTHER, "counter", "7"), (CHANNEL, "model", '"lyrics"')),
        state=(
            ("guild", GUILD, "consent.channels", "[1,2]"),
            ("user", USER, "consent.opted_out", "true"),
        ),
        records=(("completion", "r1", '{"t": 2}', 1, NOW + 9),),
        meta=(("commands.sha256.global", "abc"),),
    )

    # Loading replaces equal keys (versions included) and keeps what only the target holds.
    await store.set(CHANNEL, "model", "shakespeare")
    await store.set_state(Scope.GUILD, GUILD, "consent.channels", [9])
    await store.swap_record("completion", "r1", '{"t": 3}', version=1, expires_at=NOW + 9)
    await store.set_meta("commands.sha256.global", "def")
    await store.set(OTHER, "temperature", 0.5)
    await store.load(contents)
    assert await store.get(CHANNEL, "model") == "lyrics"
    assert await store.get_state(Scope.GUILD, GUILD, "consent.channels") == [1, 2]
    record = await store.get_record("completion", "r1", now=NOW)
    assert record is not None and (record.data, record.version) == ('{"t": 2}', 1)
    assert await store.get_meta("commands.sha256.global") == "abc"
    assert await store.get(OTHER, "temperature") == 0.5
    await store.load(StoreContents())  # nothing to load is fine
    with pytest.raises(ValueError, match="a scope is one of"):
        await store.load(StoreContents(state=(("server", 1, "k", "1"),)))
