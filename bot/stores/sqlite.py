"""The embedded default store: one SQLite file (WAL journal, one transaction per write).

The schema is versioned from the first release (`MIGRATIONS`, `PRAGMA user_version`), and the
file is marked as ours (`PRAGMA application_id`): a file that is not a charbot settings database,
or one newer than this code, is refused at open and left untouched, never reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import aiosqlite

from bot.settings import SettingsRegistry, SettingsStoreError
from bot.stores.base import Scope, Store, StoreContents, StoredRecord

log = logging.getLogger(__name__)

#: Written into the file header (`PRAGMA application_id`), so a foreign database is recognised.
APPLICATION_ID = 0x43484254  # "CHBT"

#: MIGRATIONS[i] takes schema version i to i + 1, in one transaction. Append, never edit.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        """
        CREATE TABLE channel_settings (
            channel_id INTEGER NOT NULL,
            key        TEXT    NOT NULL,
            value      TEXT    NOT NULL,  -- JSON
            updated_at REAL    NOT NULL,  -- unix seconds
            PRIMARY KEY (channel_id, key)
        ) WITHOUT ROWID
        """,
    ),
    (
        """
        CREATE TABLE meta (
            key        TEXT NOT NULL PRIMARY KEY,
            value      TEXT NOT NULL,
            updated_at REAL NOT NULL  -- unix seconds
        ) WITHOUT ROWID
        """,
    ),
    (
        """
        CREATE TABLE records (
            kind       TEXT    NOT NULL,
            id         TEXT    NOT NULL,
            data       TEXT    NOT NULL,  -- JSON
            version    INTEGER NOT NULL,  -- 0 when created, +1 per compare-and-set
            expires_at REAL    NOT NULL,  -- unix seconds
            PRIMARY KEY (kind, id)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX records_by_expiry ON records (expires_at)",
    ),
    (
        """
        CREATE TABLE scoped_state (
            scope      TEXT    NOT NULL,  -- 'guild', 'channel' or 'user'
            scope_id   INTEGER NOT NULL,
            key        TEXT    NOT NULL,
            value      TEXT    NOT NULL,  -- JSON
            updated_at REAL    NOT NULL,  -- unix seconds
            PRIMARY KEY (scope, scope_id, key)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX scoped_state_by_key ON scoped_state (scope, key)",
    ),
]

_SQLITE_MAGIC = b"SQLite format 3\x00"

_UPSERT = (
    "INSERT INTO channel_settings (channel_id, key, value, updated_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (channel_id, key)"
    " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
)
_UPSERT_STATE = (
    "INSERT INTO scoped_state (scope, scope_id, key, value, updated_at) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (scope, scope_id, key)"
    " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
)
_UPSERT_RECORD = (
    "INSERT INTO records (kind, id, data, version, expires_at) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (kind, id) DO UPDATE SET data = excluded.data, version = excluded.version,"
    " expires_at = excluded.expires_at"
)
_UPSERT_META = (
    "INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
)
_STATE_WHERE = "scope = ? AND scope_id = ? AND key = ?"

#: Seconds to wait for another process's lock on the file (a second bot, a backup).
BUSY_TIMEOUT = 5.0


class SqliteStore(Store):
    """A store in one SQLite file. Open with `await SqliteStore.open(path, registry)`."""

    def __init__(self, conn: aiosqlite.Connection, path: Path, registry: SettingsRegistry) -> None:
        super().__init__(registry)
        self._conn: aiosqlite.Connection | None = conn
        self.path = path

    @classmethod
    async def open(cls, path: str | os.PathLike[str], registry: SettingsRegistry) -> SqliteStore:
        """Open (or create) the store; a file that is not ours is refused and left untouched."""
        where = Path(path).absolute()
        await asyncio.to_thread(_preflight, where)
        with _converting(where, "open"):
            # Autocommit: each write below is one statement, hence its own transaction.
            conn = await aiosqlite.connect(where, isolation_level=None)
        try:
            await _prepare(conn, where)
        except BaseException:
            await conn.close()
            raise
        log.info("settings store %s opened (schema version %d)", where, len(MIGRATIONS))
        return cls(conn, where, registry)

    def _connection(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise SettingsStoreError(f"The settings store {self.path} is closed.", path=self.path)
        return self._conn

    async def _read(self, channel_id: int, key: str) -> str | None:
        conn = self._connection()
        with _converting(self.path, "read"):
            async with conn.execute(
                "SELECT value FROM channel_settings WHERE channel_id = ? AND key = ?",
                (channel_id, key),
            ) as cursor:
                row = await cursor.fetchone()
        return None if row is None else str(row[0])

    async def _read_all(self, channel_id: int) -> dict[str, str]:
        conn = self._connection()
        with _converting(self.path, "read"):
            async with conn.execute(
                "SELECT key, value FROM channel_settings WHERE channel_id = ?", (channel_id,)
            ) as cursor:
                rows = await cursor.fetchall()
        return {str(k): str(v) for k, v in rows}

    async def _write(self, channel_id: int, key: str, text: str) -> None:
        conn = self._connection()
        with _converting(self.path, "write"):
            await conn.execute(_UPSERT, (channel_id, key, text, time.time()))

    async def _read_meta(self, key: str) -> str | None:
        conn = self._connection()
        with _converting(self.path, "read"):
            async with conn.execute("SELECT value FROM meta WHERE key = ?", (key,)) as cursor:
                row = await cursor.fetchone()
        return None if row is None else str(row[0])

    async def _write_meta(self, key: str, value: str) -> None:
        conn = self._connection()
        with _converting(self.path, "write"):
            await conn.execute(_UPSERT_META, (key, value, time.time()))

    async def _read_state(self, scope: Scope, scope_id: int, key: str) -> str | None:
        conn = self._connection()
        with _converting(self.path, "read"):
            async with conn.execute(
                f"SELECT value FROM scoped_state WHERE {_STATE_WHERE}",
                (scope.value, scope_id, key),
            ) as cursor:
                row = await cursor.fetchone()
        return None if row is None else str(row[0])

    async def _write_state(self, scope: Scope, scope_id: int, key: str, text: str | None) -> None:
        conn = self._connection()
        with _converting(self.path, "write"):
            if text is None:
                await conn.execute(
                    f"DELETE FROM scoped_state WHERE {_STATE_WHERE}", (scope.value, scope_id, key)
                )
            else:
                await conn.execute(_UPSERT_STATE, (scope.value, scope_id, key, text, time.time()))

    async def _swap_state(
        self, scope: Scope, scope_id: int, key: str, expected: str | None, text: str | None
    ) -> bool:
        conn = self._connection()
        where = (scope.value, scope_id, key)
        # One statement each, so one transaction: the check and the write cannot be split.
        if expected is None:
            statement = (
                "INSERT INTO scoped_state (scope, scope_id, key, value, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
            )
            values: tuple[object, ...] = (*where, text, time.time())
        elif text is None:
            statement = f"DELETE FROM scoped_state WHERE {_STATE_WHERE} AND value = ?"
            values = (*where, expected)
        else:
            statement = (
                "UPDATE scoped_state SET value = ?, updated_at = ?"
                f" WHERE {_STATE_WHERE} AND value = ?"
            )
            values = (text, time.time(), *where, expected)
        with _converting(self.path, "write"):
            async with conn.execute(statement, values) as cursor:
                return cursor.rowcount == 1

    async def _state_holders(self, scope: Scope, key: str) -> dict[int, str]:
        conn = self._connection()
        with _converting(self.path, "read"):
            async with conn.execute(
                "SELECT scope_id, value FROM scoped_state WHERE scope = ? AND key = ?",
                (scope.value, key),
            ) as cursor:
                rows = await cursor.fetchall()
        return {int(i): str(v) for i, v in rows}

    async def _dump(self) -> StoreContents:
        conn = self._connection()
        with _converting(self.path, "read"):
            # One read transaction: a consistent view of every table.
            await conn.execute("BEGIN")
            try:
                settings = await conn.execute_fetchall(
                    "SELECT channel_id, key, value FROM channel_settings ORDER BY channel_id, key"
                )
                state = await conn.execute_fetchall(
                    "SELECT scope, scope_id, key, value FROM scoped_state"
                    " ORDER BY scope, scope_id, key"
                )
                records = await conn.execute_fetchall(
                    "SELECT kind, id, data, version, expires_at FROM records ORDER BY kind, id"
                )
                meta = await conn.execute_fetchall("SELECT key, value FROM meta ORDER BY key")
            finally:
                await conn.execute("COMMIT")
        return StoreContents(
            settings=tuple((int(c), str(k), str(v)) for c, k, v in settings),
            state=tuple((str(s), int(i), str(k), str(v)) for s, i, k, v in state),
            records=tuple(
                (str(kind), str(i), str(d), int(ver), float(exp))
                for kind, i, d, ver, exp in records
            ),
            meta=tuple((str(k), str(v)) for k, v in meta),
        )

    async def _load(self, contents: StoreContents) -> None:
        conn = self._connection()
        now = time.time()
        with _converting(self.path, "write"):
            await conn.execute("BEGIN IMMEDIATE")
            try:
                await conn.executemany(_UPSERT, [(*row, now) for row in contents.settings])
                await conn.executemany(_UPSERT_STATE, [(*row, now) for row in contents.state])
                await conn.executemany(_UPSERT_RECORD, contents.records)
                await conn.executemany(_UPSERT_META, [(*row, now) for row in contents.meta])
                await conn.execute("COMMIT")
            except BaseException:
                await conn.execute("ROLLBACK")
                raise

    async def _delete(self, channel_id: int, key: str) -> None:
        conn = self._connection()
        with _converting(self.path, "write"):
            await conn.execute(
                "DELETE FROM channel_settings WHERE channel_id = ? AND key = ?", (channel_id, key)
            )

    async def ping(self) -> None:
        conn = self._connection()
        with _converting(self.path, "read"):
            async with conn.execute("SELECT 1") as cursor:
                await cursor.fetchone()

    async def _put_record(self, kind: str, record_id: str, data: str, expires_at: float) -> None:
        conn = self._connection()
        with _converting(self.path, "write"):
            await conn.execute(_UPSERT_RECORD, (kind, record_id, data, 0, expires_at))

    async def _get_record(self, kind: str, record_id: str, now: float) -> StoredRecord | None:
        conn = self._connection()
        with _converting(self.path, "read"):
            async with conn.execute(
                "SELECT data, version, expires_at FROM records"
                " WHERE kind = ? AND id = ? AND expires_at > ?",
                (kind, record_id, now),
            ) as cursor:
                row = await cursor.fetchone()
        return None if row is None else StoredRecord(str(row[0]), int(row[1]), float(row[2]))

    async def _swap_record(
        self, kind: str, record_id: str, data: str, version: int, expires_at: float
    ) -> bool:
        conn = self._connection()
        with _converting(self.path, "write"):
            # One statement, so one transaction: the check and the write cannot be split.
            async with conn.execute(
                "UPDATE records SET data = ?, version = version + 1, expires_at = ?"
                " WHERE kind = ? AND id = ? AND version = ?",
                (data, expires_at, kind, record_id, version),
            ) as cursor:
                return cursor.rowcount == 1

    async def _delete_record(self, kind: str, record_id: str) -> None:
        conn = self._connection()
        with _converting(self.path, "write"):
            await conn.execute("DELETE FROM records WHERE kind = ? AND id = ?", (kind, record_id))

    async def _purge_expired(self, now: float) -> int:
        conn = self._connection()
        with _converting(self.path, "write"):
            async with conn.execute("DELETE FROM records WHERE expires_at <= ?", (now,)) as cursor:
                return max(cursor.rowcount, 0)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with _converting(self.path, "close"):
                await conn.close()


@contextlib.contextmanager
def _converting(path: Path, action: str) -> Iterator[None]:
    """Turn sqlite's errors into SettingsStoreError where they enter (works across awaits)."""
    try:
        yield
    except sqlite3.Error as exc:
        # Opening writes nothing before its checks pass, and a failed migration rolls back.
        note = "; it was left untouched" if action == "open" else ""
        raise SettingsStoreError(
            f"Cannot {action} the settings store {path}: {exc}{note}.", path=path
        ) from exc


def _fail(path: Path, fault: str) -> SettingsStoreError:
    return SettingsStoreError(f"The settings store {path} {fault}", path=path)


def _preflight(path: Path) -> None:
    """Refuse, before SQLite touches anything, a path that cannot be (or is not) our database."""
    parent = path.parent
    if not parent.exists():
        raise _fail(path, f"cannot be created: the directory {parent} does not exist.")
    if not parent.is_dir():
        raise _fail(path, f"cannot be created: {parent} is not a directory.")
    # SQLite creates its -wal and -shm files beside the database, so the directory must be writable.
    if not os.access(parent, os.W_OK | os.X_OK):
        raise _fail(path, f"is unusable: the directory {parent} is not writable.")
    if not path.exists():
        return
    if not path.is_file():
        raise _fail(path, "is not a regular file.")
    if not os.access(path, os.R_OK | os.W_OK):
        raise _fail(path, "is not readable and writable; check its permissions.")
    try:
        with path.open("rb") as f:
            header = f.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise _fail(path, f"cannot be read: {exc.strerror or exc}.") from exc
    # An empty file holds nothing to lose: SQLite initializes it as a new database.
    if header and header != _SQLITE_MAGIC:
        raise _fail(
            path,
            "is not a SQLite database (corrupt, or some other file); it was left untouched: "
            "move it away or point store.path elsewhere.",
        )


async def _prepare(conn: aiosqlite.Connection, path: Path) -> None:
    """Check the file is ours and not newer, and migrate it, in one write transaction; then WAL.

    The check and the migration share one `BEGIN IMMEDIATE`, so processes opening a fresh file
    at once take turns: the first creates the schema, the others then find it in place (never
    half made). Nothing is written before the checks pass.
    """
    with _converting(path, "open"):
        # A second process (another bot instance, a backup) may hold the lock briefly: wait.
        await conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        await conn.execute("BEGIN IMMEDIATE")
        try:
            version = await _check_ours(conn, path)
            for step in range(version, len(MIGRATIONS)):
                await _migrate(conn, path, step)
            if version == len(MIGRATIONS):
                # Up to date: writing nothing (see the rollback below) leaves the file as it was.
                # SQLite opens a read-only file read-only without a word: find out now, not at
                # the first /set. BEGIN IMMEDIATE passes on such a file; a write does not.
                await conn.execute(f"PRAGMA user_version = {version}")
                await conn.execute("ROLLBACK")
            else:
                await conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                await conn.execute("ROLLBACK")
            raise
        # The journal mode changes outside any transaction, once the file is known to be ours.
        await _use_wal(conn, path)
        # FULL: a committed setting survives power loss too; writes are rare.
        await conn.execute("PRAGMA synchronous = FULL")


async def _use_wal(conn: aiosqlite.Connection, path: Path) -> None:
    """Switch the file to WAL (once: the mode persists). The switch needs an exclusive lock that
    SQLite does not wait for, so while another process opens the file it is retried."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    while (mode := await _pragma_text(conn, "journal_mode")).lower() != "wal":
        try:
            mode = await _pragma_text(conn, "journal_mode = WAL")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.01)
            continue
        if mode.lower() != "wal":
            log.warning("settings store %s: journal mode is %s, not WAL", path, mode)
            return


async def _check_ours(conn: aiosqlite.Connection, path: Path) -> int:
    """The file's schema version, or SettingsStoreError if it is not ours, newer, or damaged."""
    app_id = await _pragma(conn, "application_id")
    version = await _pragma(conn, "user_version")
    async with conn.execute("SELECT count(*) FROM sqlite_master") as cursor:
        row = await cursor.fetchone()
    objects = int(row[0]) if row else 0
    known = len(MIGRATIONS)
    if app_id not in (0, APPLICATION_ID) or (app_id == 0 and (version or objects)):
        raise _fail(path, "is a SQLite database of some other program; it was left untouched.")
    if version > known:
        raise _fail(
            path,
            f"has schema version {version}, newer than this charbot knows ({known}); "
            "upgrade charbot or restore a backup.",
        )
    async with conn.execute("PRAGMA quick_check") as cursor:
        problems = [str(r[0]) for r in await cursor.fetchall()]
    if problems != ["ok"]:
        raise _fail(path, f"is damaged ({problems[0]}); it was left untouched.")
    return version


async def _migrate(conn: aiosqlite.Connection, path: Path, step: int) -> None:
    """Run MIGRATIONS[step] and bump the version, inside the caller's transaction."""
    for statement in MIGRATIONS[step]:
        await conn.execute(statement)
    await conn.execute(f"PRAGMA user_version = {step + 1}")
    await conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    log.info("settings store %s: migrated schema %d -> %d", path, step, step + 1)


async def _pragma(conn: aiosqlite.Connection, name: str) -> int:
    return int(await _pragma_text(conn, name))


async def _pragma_text(conn: aiosqlite.Connection, name: str) -> str:
    async with conn.execute(f"PRAGMA {name}") as cursor:
        row = await cursor.fetchone()
    return "" if row is None else str(row[0])
