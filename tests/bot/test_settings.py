"""Per-channel settings: the registry, both stores, the SQLite file's crash and corruption cases."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from bot.plugins.temperature import validate_temperature
from bot.settings import (
    InvalidSettingError,
    SettingRegistrationError,
    SettingsError,
    SettingsRegistry,
    SettingsStoreError,
    UnknownSettingError,
    resolve,
)
from bot.stores import MemorySettingsStore, SettingsStore, SqliteSettingsStore
from bot.stores import sqlite as settings_module

REPO = Path(__file__).resolve().parents[2]
CHANNEL = 1234567890123456789  # a realistic snowflake, near the top of the int64 range
OTHER = 42


def validate_model(value: Any) -> str:
    if value not in ("shakespeare", "lyrics"):
        raise InvalidSettingError(f"Model must be one of shakespeare, lyrics, not {value!r}.")
    return str(value)


def validate_counter(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10**12:
        raise InvalidSettingError(f"Counter must be a whole number, not {value!r}.")
    return value


def make_registry() -> SettingsRegistry:
    registry = SettingsRegistry()
    registry.register_channel(
        "temperature", default=None, validate=validate_temperature, owner="temperature"
    )
    registry.register_channel(
        "model", default="shakespeare", validate=validate_model, owner="models"
    )
    registry.register_channel("counter", default=0, validate=validate_counter, owner="tests")
    return registry


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SettingsStore]:
    s: SettingsStore
    if request.param == "memory":
        s = MemorySettingsStore(make_registry())
    else:
        s = await SqliteSettingsStore.open(tmp_path / "settings.sqlite3", make_registry())
    yield s
    await s.close()


# -- scopes and validators -------------------------------------------------------------------------


def test_resolve_most_specific_non_none_wins() -> None:
    assert resolve(0.2, 1.5, 0.8) == 0.2
    assert resolve(None, 1.5, 0.8) == 1.5
    assert resolve(None, None, 0.8) == 0.8
    # 0.0 is a value (greedy), not "unset".
    assert resolve(0.0, 1.5, 0.8) == 0.0
    assert resolve(None, 0.0, 0.8) == 0.0


@pytest.mark.parametrize("value", [0.0, 2.0, 1, 0.7])
def test_temperature_validator_accepts(value: float) -> None:
    assert validate_temperature(value) == float(value)
    assert isinstance(validate_temperature(value), float)


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, -1, 2.0001, "hot", "0.5", None, True, [1.0]]
)
def test_temperature_validator_rejects(value: Any) -> None:
    with pytest.raises(InvalidSettingError, match=r"^The temperature must be from 0.0 to 2.0"):
        validate_temperature(value)


# -- the registry ----------------------------------------------------------------------------------


def test_registry_defaults_and_unknown_key() -> None:
    registry = make_registry()
    assert registry.keys() == ["counter", "model", "temperature"]
    assert list(registry) == registry.keys()
    assert registry.default("temperature") is None
    assert "model" in registry and "nope" not in registry
    with pytest.raises(UnknownSettingError, match="no setting named 'nope'") as info:
        registry.spec("nope")
    assert info.value.key == "nope"
    assert isinstance(info.value, SettingsError)


def test_registry_two_owners_one_key_is_an_error() -> None:
    registry = make_registry()
    with pytest.raises(SettingRegistrationError, match="already registered by 'temperature'"):
        registry.register_channel("temperature", default=1.0, owner="other-plugin")


def test_registry_same_owner_may_register_again_and_unregister() -> None:
    # An extension reload runs its setup again.
    registry = make_registry()
    registry.register_channel("temperature", default=0.5, owner="temperature")
    assert registry.default("temperature") == 0.5
    registry.unregister_owner("temperature")
    assert "temperature" not in registry
    registry.register_channel("temperature", default=None, owner="other-plugin")


def test_registry_validate_tags_the_key() -> None:
    with pytest.raises(InvalidSettingError) as info:
        make_registry().validate("temperature", -1)
    assert info.value.key == "temperature"


def test_registry_refuses_a_default_that_is_not_json() -> None:
    with pytest.raises(InvalidSettingError, match="cannot be stored"):
        SettingsRegistry().register_channel("x", default=object(), owner="t")


# -- both stores -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_defaults(store: SettingsStore) -> None:
    assert await store.get(CHANNEL, "temperature") is None
    assert await store.get(CHANNEL, "model") == "shakespeare"
    assert await store.get_all(CHANNEL) == {
        "counter": 0,
        "model": "shakespeare",
        "temperature": None,
    }


@pytest.mark.asyncio
async def test_set_get_reset(store: SettingsStore) -> None:
    assert await store.set(CHANNEL, "temperature", 1) == 1.0
    assert await store.get(CHANNEL, "temperature") == 1.0
    assert await store.get(OTHER, "temperature") is None  # per channel
    await store.set(CHANNEL, "temperature", 0.3)  # overwrite
    assert await store.get(CHANNEL, "temperature") == 0.3
    assert (await store.get_all(CHANNEL))["temperature"] == 0.3
    await store.reset(CHANNEL, "temperature")
    assert await store.get(CHANNEL, "temperature") is None
    await store.reset(CHANNEL, "temperature")  # resetting an unset key is a no-op


@pytest.mark.asyncio
@pytest.mark.parametrize("value", [math.nan, math.inf, -1, 2.0001, "warm"])
async def test_set_rejects_invalid_values_and_keeps_the_old(
    store: SettingsStore, value: Any
) -> None:
    await store.set(CHANNEL, "temperature", 0.5)
    with pytest.raises(InvalidSettingError, match=r"The temperature must be from 0\.0 to 2\.0"):
        await store.set(CHANNEL, "temperature", value)
    assert await store.get(CHANNEL, "temperature") == 0.5


@pytest.mark.asyncio
async def test_unknown_key_everywhere(store: SettingsStore) -> None:
    with pytest.raises(UnknownSettingError):
        await store.get(CHANNEL, "colour")
    with pytest.raises(UnknownSettingError):
        await store.set(CHANNEL, "colour", "blue")
    with pytest.raises(UnknownSettingError):
        await store.reset(CHANNEL, "colour")


@pytest.mark.asyncio
async def test_bad_channel_ids(store: SettingsStore) -> None:
    with pytest.raises(TypeError):
        await store.get("123", "temperature")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await store.set(2**63, "temperature", 1.0)


@pytest.mark.asyncio
async def test_stored_value_that_no_longer_validates_reads_as_default(
    store: SettingsStore,
) -> None:
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


@pytest.mark.asyncio
async def test_unregistered_keys_are_left_out_of_get_all(store: SettingsStore) -> None:
    await store.set(CHANNEL, "counter", 3)
    store.registry.unregister_owner("tests")
    assert "counter" not in await store.get_all(CHANNEL)


@pytest.mark.asyncio
async def test_concurrent_writes(store: SettingsStore) -> None:
    channels = range(1, 21)

    async def writer(channel: int) -> None:
        for i in range(10):
            await store.set(channel, "counter", channel * 100 + i)
            await store.set(CHANNEL, "counter", i)  # everyone also hits one shared row

    await asyncio.gather(*(writer(c) for c in channels))
    for c in channels:
        assert await store.get(c, "counter") == c * 100 + 9
    assert await store.get(CHANNEL, "counter") == 9


@pytest.mark.asyncio
async def test_closed_store_raises(store: SettingsStore) -> None:
    await store.close()
    with pytest.raises(SettingsStoreError, match="closed"):
        await store.get(CHANNEL, "temperature")
    await store.close()  # idempotent


# -- SQLite ----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_persistence_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = await SqliteSettingsStore.open(path, make_registry())
    await store.set(CHANNEL, "temperature", 0.25)
    await store.set(CHANNEL, "model", "lyrics")
    await store.set(OTHER, "counter", 7)
    await store.close()

    store = await SqliteSettingsStore.open(str(path), make_registry())
    try:
        assert await store.get(CHANNEL, "temperature") == 0.25
        assert await store.get(CHANNEL, "model") == "lyrics"
        assert await store.get(OTHER, "counter") == 7
    finally:
        await store.close()

    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(settings_module.MIGRATIONS)
        (text,) = db.execute(
            "SELECT value FROM channel_settings WHERE channel_id = ? AND key = 'model'", (CHANNEL,)
        ).fetchone()
    assert text == '"lyrics"'  # JSON text
    db.close()


def _assert_refused_untouched(path: Path, before: bytes, exc: SettingsStoreError) -> None:
    assert str(path) in str(exc)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no -wal, -shm


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "content",
    [
        os.urandom(4096),
        b"temperature = 0.8\nmodel = 'shakespeare'\n",
        b"SQLite format 3\x00" + os.urandom(8192),  # right magic, garbage after
    ],
    ids=["random", "text", "bad-pages"],
)
async def test_corrupt_file_is_refused_and_left_untouched(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "s.sqlite3"
    path.write_bytes(content)
    with pytest.raises(SettingsStoreError) as info:
        await SqliteSettingsStore.open(path, make_registry())
    _assert_refused_untouched(path, content, info.value)


@pytest.mark.asyncio
async def test_truncated_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = await SqliteSettingsStore.open(path, make_registry())
    for c in range(300):  # enough rows for several pages
        await store.set(c, "model", "lyrics")
    await store.close()
    content = path.read_bytes()[: 4096 + 100]
    path.write_bytes(content)
    with pytest.raises(SettingsStoreError) as info:
        await SqliteSettingsStore.open(path, make_registry())
    _assert_refused_untouched(path, content, info.value)


@pytest.mark.asyncio
async def test_other_programs_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
    db.close()
    before = path.read_bytes()
    with pytest.raises(SettingsStoreError, match="some other program") as info:
        await SqliteSettingsStore.open(path, make_registry())
    _assert_refused_untouched(path, before, info.value)


@pytest.mark.asyncio
async def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = await SqliteSettingsStore.open(path, make_registry())
    await store.set(CHANNEL, "counter", 5)
    await store.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    db.close()
    before = path.read_bytes()
    with pytest.raises(SettingsStoreError, match=r"schema version 99, newer") as info:
        await SqliteSettingsStore.open(path, make_registry())
    _assert_refused_untouched(path, before, info.value)


@pytest.mark.asyncio
async def test_migration_hook_upgrades_and_keeps_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.sqlite3"
    store = await SqliteSettingsStore.open(path, make_registry())
    await store.set(CHANNEL, "counter", 5)
    await store.close()

    v2 = ("CREATE INDEX channel_settings_by_key ON channel_settings (key)",)
    monkeypatch.setattr(settings_module, "MIGRATIONS", [*settings_module.MIGRATIONS, v2])
    store = await SqliteSettingsStore.open(path, make_registry())
    try:
        assert await store.get(CHANNEL, "counter") == 5
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(settings_module.MIGRATIONS)
        assert db.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'channel_settings_by_key'"
        ).fetchone()
    db.close()


@pytest.mark.asyncio
async def test_failed_migration_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.sqlite3"
    store = await SqliteSettingsStore.open(path, make_registry())
    await store.close()
    broken = ("CREATE TABLE extra (x)", "THIS IS NOT SQL")
    monkeypatch.setattr(settings_module, "MIGRATIONS", [*settings_module.MIGRATIONS, broken])
    with pytest.raises(SettingsStoreError, match="syntax error"):
        await SqliteSettingsStore.open(path, make_registry())
    with sqlite3.connect(path) as db:
        assert (
            db.execute("PRAGMA user_version").fetchone()[0] == len(settings_module.MIGRATIONS) - 1
        )
        assert db.execute("SELECT 1 FROM sqlite_master WHERE name = 'extra'").fetchone() is None
    db.close()


@pytest.mark.asyncio
async def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "s.sqlite3"
    with pytest.raises(SettingsStoreError, match="does not exist") as info:
        await SqliteSettingsStore.open(path, make_registry())
    assert str(path) in str(info.value)
    assert not path.parent.exists()  # never created behind the operator's back


@pytest.mark.asyncio
async def test_parent_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a directory")
    with pytest.raises(SettingsStoreError, match="is not a directory"):
        await SqliteSettingsStore.open(tmp_path / "data" / "s.sqlite3", make_registry())


@pytest.mark.asyncio
async def test_path_that_is_a_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsStoreError, match="not a regular file"):
        await SqliteSettingsStore.open(tmp_path, make_registry())


@pytest.mark.asyncio
@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
async def test_unwritable_directory_is_an_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o500)
    try:
        with pytest.raises(SettingsStoreError, match="not writable") as info:
            await SqliteSettingsStore.open(data / "s.sqlite3", make_registry())
        assert str(data) in str(info.value)
    finally:
        data.chmod(0o700)


@pytest.mark.asyncio
@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
async def test_read_only_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = await SqliteSettingsStore.open(path, make_registry())
    await store.close()
    path.chmod(0o400)
    with pytest.raises(SettingsStoreError, match="permissions"):
        await SqliteSettingsStore.open(path, make_registry())


@pytest.mark.asyncio
async def test_read_only_database_is_found_at_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root ignores permission bits, so make SQLite itself open the file read-only.
    path = tmp_path / "s.sqlite3"
    store = await SqliteSettingsStore.open(path, make_registry())
    await store.close()
    real_connect = aiosqlite.connect

    def read_only_connect(database: Path, **kwargs: Any) -> Any:
        return real_connect(f"file:{database}?mode=ro", uri=True, **kwargs)

    monkeypatch.setattr(aiosqlite, "connect", read_only_connect)
    with pytest.raises(SettingsStoreError, match="readonly") as info:
        await SqliteSettingsStore.open(path, make_registry())
    assert str(path) in str(info.value)


@pytest.mark.asyncio
async def test_sqlite_errors_are_converted(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = await SqliteSettingsStore.open(path, make_registry())
    try:
        # Another process drops the table under us: the error arrives as a SettingsStoreError.
        with sqlite3.connect(path) as db:
            db.execute("DROP TABLE channel_settings")
        db.close()
        with pytest.raises(SettingsStoreError, match="no such table") as info:
            await store.set(CHANNEL, "counter", 1)
        assert isinstance(info.value.__cause__, sqlite3.Error)
    finally:
        await store.close()


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from bot.settings import SettingsRegistry
    from bot.stores import SqliteSettingsStore

    async def main() -> None:
        registry = SettingsRegistry()
        registry.register_channel("counter", default=0, validate=int, owner="t")
        registry.register_channel("model", default="", owner="t")
        store = await SqliteSettingsStore.open(sys.argv[1], registry)
        i = 0
        while True:
            i += 1
            # Two keys per step: a torn file would show a model text from another step.
            await store.set(1, "model", "step %d " % i + "x" * (i % 3000))
            await store.set(1, "counter", i)
            print(i, flush=True)

    asyncio.run(main())
    """
)


def test_sigkill_during_writes_leaves_a_consistent_file(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.monotonic()
    for run in range(3):
        path = tmp_path / f"s{run}.sqlite3"
        proc = subprocess.Popen(
            [sys.executable, str(script), str(path)], stdout=subprocess.PIPE, env=env, text=True
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.strip() == "1", first
        time.sleep(0.1 + 0.05 * run)  # kill at a different point each run
        proc.send_signal(signal.SIGKILL)
        rest = proc.stdout.read().split()
        proc.wait()
        last_acknowledged = int(rest[-1]) if rest else 1

        async def check(path: Path = path, acked: int = last_acknowledged) -> None:
            store = await SqliteSettingsStore.open(path, make_registry())
            try:
                counter = await store.get(1, "counter")
                # Acknowledged writes are durable; at most one more committed before the kill.
                assert acked <= counter <= acked + 1
            finally:
                await store.close()
            with sqlite3.connect(path) as db:
                assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                (model,) = db.execute(
                    "SELECT value FROM channel_settings WHERE key = 'model'"
                ).fetchone()
            db.close()
            # The model row of step `counter` (or of the next step, written before its counter).
            assert model.startswith((f'"step {counter} ', f'"step {counter + 1} '))

        asyncio.run(check())
    assert time.monotonic() - started < 5


# -- choosing the store by URL ---------------------------------------------------------------------


async def test_open_store_picks_the_driver_by_scheme(tmp_path: Path) -> None:
    from bot.stores import open_store

    store = await open_store(f"sqlite:///{tmp_path / 's.sqlite3'}", make_registry())
    try:
        assert isinstance(store, SqliteSettingsStore)
        await store.set(CHANNEL, "temperature", 0.3)
        assert await store.get(CHANNEL, "temperature") == 0.3
    finally:
        await store.close()
    with pytest.raises(SettingsStoreError, match=r"scheme 'mysql', which no driver handles"):
        await open_store("mysql://db/charbot", make_registry())
