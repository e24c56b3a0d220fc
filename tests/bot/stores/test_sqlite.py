"""The SQLite driver's own cases: the file across reopening, crashes, corruption, permissions,
migrations, and several processes opening one file at once."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from bot.settings import SettingsStoreError
from bot.stores import Scope, SqliteStore
from bot.stores import sqlite as sqlite_module
from tests.bot.stores.conftest import make_registry

REPO = Path(__file__).resolve().parents[3]
CHANNEL = 1234567890123456789
OTHER = 42


async def test_persistence_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = await SqliteStore.open(path, make_registry())
    await store.set(CHANNEL, "temperature", 0.25)
    await store.set(CHANNEL, "model", "lyrics")
    await store.set(OTHER, "counter", 7)
    await store.set_state(Scope.USER, OTHER, "consent.opted_out", True)
    await store.close()

    store = await SqliteStore.open(str(path), make_registry())
    try:
        assert await store.get(CHANNEL, "temperature") == 0.25
        assert await store.get(CHANNEL, "model") == "lyrics"
        assert await store.get(OTHER, "counter") == 7
        assert await store.state_holders(Scope.USER, "consent.opted_out") == {OTHER: True}
    finally:
        await store.close()

    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(sqlite_module.MIGRATIONS)
        (text,) = db.execute(
            "SELECT value FROM channel_settings WHERE channel_id = ? AND key = 'model'", (CHANNEL,)
        ).fetchone()
    assert text == '"lyrics"'  # JSON text
    db.close()


def _assert_refused_untouched(path: Path, before: bytes, exc: SettingsStoreError) -> None:
    assert str(path) in str(exc)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no -wal, -shm


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
        await SqliteStore.open(path, make_registry())
    _assert_refused_untouched(path, content, info.value)


async def test_truncated_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = await SqliteStore.open(path, make_registry())
    for c in range(300):  # enough rows for several pages
        await store.set(c, "model", "lyrics")
    await store.close()
    content = path.read_bytes()[: 4096 + 100]
    path.write_bytes(content)
    with pytest.raises(SettingsStoreError) as info:
        await SqliteStore.open(path, make_registry())
    _assert_refused_untouched(path, content, info.value)


async def test_other_programs_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
    db.close()
    before = path.read_bytes()
    with pytest.raises(SettingsStoreError, match="some other program") as info:
        await SqliteStore.open(path, make_registry())
    _assert_refused_untouched(path, before, info.value)


async def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = await SqliteStore.open(path, make_registry())
    await store.set(CHANNEL, "counter", 5)
    await store.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    db.close()
    before = path.read_bytes()
    with pytest.raises(SettingsStoreError, match=r"schema version 99, newer") as info:
        await SqliteStore.open(path, make_registry())
    _assert_refused_untouched(path, before, info.value)


async def test_migration_hook_upgrades_and_keeps_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.sqlite3"
    store = await SqliteStore.open(path, make_registry())
    await store.set(CHANNEL, "counter", 5)
    await store.close()

    v2 = ("CREATE INDEX channel_settings_by_key ON channel_settings (key)",)
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", [*sqlite_module.MIGRATIONS, v2])
    store = await SqliteStore.open(path, make_registry())
    try:
        assert await store.get(CHANNEL, "counter") == 5
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(sqlite_module.MIGRATIONS)
        assert db.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'channel_settings_by_key'"
        ).fetchone()
    db.close()


async def test_failed_migration_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.sqlite3"
    store = await SqliteStore.open(path, make_registry())
    await store.close()
    broken = ("CREATE TABLE extra (x)", "THIS IS NOT SQL")
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", [*sqlite_module.MIGRATIONS, broken])
    with pytest.raises(SettingsStoreError, match="syntax error"):
        await SqliteStore.open(path, make_registry())
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(sqlite_module.MIGRATIONS) - 1
        assert db.execute("SELECT 1 FROM sqlite_master WHERE name = 'extra'").fetchone() is None
    db.close()


async def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "s.sqlite3"
    with pytest.raises(SettingsStoreError, match="does not exist") as info:
        await SqliteStore.open(path, make_registry())
    assert str(path) in str(info.value)
    assert not path.parent.exists()  # never created behind the operator's back


async def test_parent_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a directory")
    with pytest.raises(SettingsStoreError, match="is not a directory"):
        await SqliteStore.open(tmp_path / "data" / "s.sqlite3", make_registry())


async def test_path_that_is_a_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsStoreError, match="not a regular file"):
        await SqliteStore.open(tmp_path, make_registry())


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
async def test_unwritable_directory_is_an_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o500)
    try:
        with pytest.raises(SettingsStoreError, match="not writable") as info:
            await SqliteStore.open(data / "s.sqlite3", make_registry())
        assert str(data) in str(info.value)
    finally:
        data.chmod(0o700)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
async def test_read_only_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = await SqliteStore.open(path, make_registry())
    await store.close()
    path.chmod(0o400)
    with pytest.raises(SettingsStoreError, match="permissions"):
        await SqliteStore.open(path, make_registry())


async def test_read_only_database_is_found_at_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root ignores permission bits, so make SQLite itself open the file read-only.
    path = tmp_path / "s.sqlite3"
    store = await SqliteStore.open(path, make_registry())
    await store.close()
    real_connect = aiosqlite.connect

    def read_only_connect(database: Path, **kwargs: Any) -> Any:
        return real_connect(f"file:{database}?mode=ro", uri=True, **kwargs)

    monkeypatch.setattr(aiosqlite, "connect", read_only_connect)
    with pytest.raises(SettingsStoreError, match="readonly") as info:
        await SqliteStore.open(path, make_registry())
    assert str(path) in str(info.value)


async def test_sqlite_errors_are_converted(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = await SqliteStore.open(path, make_registry())
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
    from bot.stores import SqliteStore

    async def main() -> None:
        registry = SettingsRegistry()
        registry.register_channel("counter", default=0, validate=int, owner="t")
        registry.register_channel("model", default="", owner="t")
        store = await SqliteStore.open(sys.argv[1], registry)
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
            store = await SqliteStore.open(path, make_registry())
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


async def test_an_old_database_gains_the_later_tables_and_keeps_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.sqlite3"
    migrations = sqlite_module.MIGRATIONS
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", migrations[:1])  # the first release's
    old = await SqliteStore.open(path, make_registry())
    await old.set(5, "temperature", 0.5)
    await old.close()
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", migrations)
    store = await SqliteStore.open(path, make_registry())
    try:
        assert await store.get(5, "temperature") == 0.5
        await store.put_record("k", "a", "1", expires_at=1.0)
        await store.set_state(Scope.GUILD, 5, "consent.channels", [1])
        await store.set_meta("k", "v")
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(migrations)
    db.close()


# Each round, every process waits at the same gate, then opens the round's fresh store.
_OPENER = textwrap.dedent(
    """
    import asyncio, os, sys, time

    from bot.settings import SettingsError, SettingsRegistry
    from bot.stores import SqliteStore

    root, rounds = sys.argv[1], int(sys.argv[2])

    async def main():
        print("ready", flush=True)
        for r in range(rounds):
            while not os.path.exists(os.path.join(root, f"go{r}")):
                time.sleep(0.0005)
            try:
                path = os.path.join(root, f"round{r}.sqlite3")
                store = await SqliteStore.open(path, SettingsRegistry())
                await store.close()
                print("ok", flush=True)
            except SettingsError as exc:
                print(exc, flush=True)

    asyncio.run(main())
    """
)


def test_concurrent_first_opens_all_succeed(tmp_path: Path) -> None:
    """Several bot processes opening one fresh SQLite store at once (a fleet's first start)."""
    processes, rounds = 4, 6
    script = tmp_path / "opener.py"
    script.write_text(_OPENER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), str(rounds)],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(processes)
    ]
    outcomes: list[str] = []
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        for r in range(rounds):
            (tmp_path / f"go{r}").touch()
            for proc in procs:
                assert proc.stdout is not None
                outcomes.append(proc.stdout.readline().strip())
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    assert outcomes == ["ok"] * (processes * rounds)
