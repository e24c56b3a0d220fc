"""The shared store: PostgreSQL through asyncpg, for several bot processes (or machines).

    store.url = "postgresql://charbot@db.example:5432/charbot"   (or CHARBOT_STORE_URL)

Tables are prefixed `charbot_` so the database may hold other things. The schema is versioned
(`charbot_schema`, `MIGRATIONS`) and created on first start under an advisory lock, so processes
starting together migrate once; a schema newer than this code is refused with one sentence.

A pool of connections serves every call; a connection that was lost is replaced on the next
call, and a call whose connection died under it is retried once (every statement here is
idempotent). While the server cannot be reached, calls raise `SettingsUnavailableError`, which
the commands show to the user ("settings are unavailable, try again shortly"); the process stays
up and recovers when the server returns. Nothing is cached per process: every read goes to the
database, so a value set through one process is what every other process reads next.

`exclusive(name)` is a lock shared by every process on the database (`pg_advisory_lock`, held on
a connection of its own): the gateway uses it to space IDENTIFYs per bucket across processes.
The URL's password is never shown: messages carry `mask_url(url)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import asyncpg

from bot.settings import SettingsRegistry, SettingsStoreError, SettingsUnavailableError
from bot.stores.base import Scope, Store, StoreContents, StoredRecord
from bot.stores.urls import mask_url

log = logging.getLogger(__name__)

T = TypeVar("T")

#: MIGRATIONS[i] takes schema version i to i + 1, in one transaction. Append, never edit.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        """
        CREATE TABLE charbot_channel_settings (
            channel_id BIGINT      NOT NULL,
            key        TEXT        NOT NULL,
            value      TEXT        NOT NULL,  -- JSON
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (channel_id, key)
        )
        """,
        """
        CREATE TABLE charbot_meta (
            key        TEXT        PRIMARY KEY,
            value      TEXT        NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )
        """,
    ),
    (
        """
        CREATE TABLE charbot_records (
            kind       TEXT             NOT NULL,
            id         TEXT             NOT NULL,
            data       TEXT             NOT NULL,  -- JSON
            version    INTEGER          NOT NULL,  -- 0 when created, +1 per compare-and-set
            expires_at DOUBLE PRECISION NOT NULL,  -- unix seconds
            PRIMARY KEY (kind, id)
        )
        """,
        "CREATE INDEX charbot_records_by_expiry ON charbot_records (expires_at)",
    ),
    (
        """
        CREATE TABLE charbot_scoped_state (
            scope      TEXT        NOT NULL,  -- 'guild', 'channel' or 'user'
            scope_id   BIGINT      NOT NULL,
            key        TEXT        NOT NULL,
            value      TEXT        NOT NULL,  -- JSON
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (scope, scope_id, key)
        )
        """,
        "CREATE INDEX charbot_scoped_state_by_key ON charbot_scoped_state (scope, key)",
    ),
]

_UPSERT_SETTING = (
    "INSERT INTO charbot_channel_settings (channel_id, key, value) VALUES ($1, $2, $3)"
    " ON CONFLICT (channel_id, key) DO UPDATE SET value = excluded.value, updated_at = now()"
)
_UPSERT_STATE = (
    "INSERT INTO charbot_scoped_state (scope, scope_id, key, value) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (scope, scope_id, key) DO UPDATE SET value = excluded.value, updated_at = now()"
)
_UPSERT_RECORD = (
    "INSERT INTO charbot_records (kind, id, data, version, expires_at) VALUES ($1, $2, $3, $4, $5)"
    " ON CONFLICT (kind, id) DO UPDATE SET data = excluded.data, version = excluded.version,"
    " expires_at = excluded.expires_at"
)
_UPSERT_META = (
    "INSERT INTO charbot_meta (key, value) VALUES ($1, $2)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()"
)
_STATE_WHERE = "scope = $1 AND scope_id = $2 AND key = $3"

POOL_MIN, POOL_MAX = 1, 10
# A command must answer within Discord's 3 s: an unreachable server fails it before that.
CONNECT_TIMEOUT = 2.0  # seconds to open (or wait for) a connection
COMMAND_TIMEOUT = 2.0  # seconds for one statement, unless given its own below
BULK_TIMEOUT = 300.0  # seconds for all the rows of a store at once (`store copy`)
#: Seconds to wait for a lock another process holds: an IDENTIFY lock is held 5 s per shard
#: queued before this one.
LOCK_TIMEOUT = 3600.0
#: The advisory lock key that serializes migrations (any fixed 64-bit number).
MIGRATION_LOCK = 0x4348_4254_0000_0001

#: Errors that mean "the server cannot be reached or the connection is gone": transient.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now
    asyncpg.exceptions.TooManyConnectionsError,
)
#: Errors after which a connection must not be used again (asyncpg may leave its protocol
#: mid-operation when the socket dies under a query).
_BROKEN = (*_UNAVAILABLE, asyncpg.exceptions.InternalClientError)


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a lock name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class PostgresStore(Store):
    """A store in PostgreSQL. Open with `await PostgresStore.open(url, registry)`."""

    def __init__(self, pool: asyncpg.Pool, url: str, registry: SettingsRegistry) -> None:
        super().__init__(registry)
        self._pool: asyncpg.Pool | None = pool
        self.shown_url = mask_url(url)

    @classmethod
    async def open(cls, url: str, registry: SettingsRegistry) -> PostgresStore:
        """Connect, create or migrate the schema; refuse one newer than this code."""
        shown = mask_url(url)
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=POOL_MIN,
                max_size=POOL_MAX,
                timeout=CONNECT_TIMEOUT,
                command_timeout=COMMAND_TIMEOUT,
            )
        except _UNAVAILABLE as exc:
            raise SettingsStoreError(
                f"Cannot reach the settings store {shown}: {_reason(exc)}."
            ) from exc
        except asyncpg.PostgresError as exc:
            # Wrong database name, role or password: the server's reason (it holds no password).
            raise SettingsStoreError(
                f"Cannot open the settings store {shown}: {_reason(exc)}."
            ) from exc
        except ValueError as exc:
            # Not echoed: asyncpg's message may quote the URL, password included.
            raise SettingsStoreError(
                f"The settings store URL {shown} is not a valid PostgreSQL URL."
            ) from exc
        store = cls(pool, url, registry)
        try:
            version = await store._run("open", store._migrate)
        except BaseException:
            await pool.close()
            raise
        log.info("settings store %s opened (schema version %d)", shown, version)
        return store

    # -- plumbing --------------------------------------------------------------------------

    def _live_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise SettingsStoreError(f"The settings store {self.shown_url} is closed.")
        return self._pool

    async def _run(self, action: str, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """`work` on a pooled connection. A connection that fails under it (killed, cut, the
        server restarted) is thrown away, never reused, and the call is tried once more on a
        fresh one: every statement here is idempotent."""
        for attempt in (1, 2):
            pool = self._live_pool()
            try:
                conn = await pool.acquire(timeout=CONNECT_TIMEOUT)
            except _UNAVAILABLE as exc:
                raise self._unavailable(action, exc) from exc
            try:
                return await work(conn)
            except _BROKEN as exc:
                with contextlib.suppress(asyncpg.InterfaceError):  # the pool dropped it already
                    conn.terminate()
                if attempt == 2:
                    raise self._unavailable(action, exc) from exc
                log.info("settings store %s: connection lost, retrying", self.shown_url)
            except asyncpg.PostgresError as exc:
                raise SettingsStoreError(
                    f"Cannot {action} the settings store {self.shown_url}: {_reason(exc)}."
                ) from exc
            finally:
                with contextlib.suppress(*_UNAVAILABLE):
                    await pool.release(conn)
        raise AssertionError("unreachable")  # pragma: no cover

    def _unavailable(self, action: str, exc: BaseException) -> SettingsUnavailableError:
        log.warning("settings store %s unavailable (%s): %s", self.shown_url, action, _reason(exc))
        return SettingsUnavailableError()

    async def _migrate(self, conn: asyncpg.Connection) -> int:
        known = len(MIGRATIONS)
        async with conn.transaction():
            # Two processes starting at once: the second waits, then finds the schema current.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS charbot_schema (version INTEGER NOT NULL)"
            )
            version = await conn.fetchval("SELECT max(version) FROM charbot_schema")
            version = 0 if version is None else int(version)
            if version > known:
                raise SettingsStoreError(
                    f"The settings store {self.shown_url} has schema version {version}, newer "
                    f"than this charbot knows ({known}); upgrade charbot."
                )
            for step in range(version, known):
                for statement in MIGRATIONS[step]:
                    await conn.execute(statement)
                log.info(
                    "settings store %s: migrated schema %d -> %d", self.shown_url, step, step + 1
                )
            if version < known:
                await conn.execute("DELETE FROM charbot_schema")
                await conn.execute("INSERT INTO charbot_schema (version) VALUES ($1)", known)
        return known

    # -- settings --------------------------------------------------------------------------

    async def ping(self) -> None:
        async def select_one(conn: asyncpg.Connection) -> None:
            await conn.fetchval("SELECT 1")

        await self._run("reach", select_one)

    async def _read(self, channel_id: int, key: str) -> str | None:
        async def read(conn: asyncpg.Connection) -> str | None:
            value = await conn.fetchval(
                "SELECT value FROM charbot_channel_settings WHERE channel_id = $1 AND key = $2",
                channel_id,
                key,
            )
            return None if value is None else str(value)

        return await self._run("read", read)

    async def _read_all(self, channel_id: int) -> dict[str, str]:
        async def read(conn: asyncpg.Connection) -> dict[str, str]:
            rows = await conn.fetch(
                "SELECT key, value FROM charbot_channel_settings WHERE channel_id = $1",
                channel_id,
            )
            return {str(r["key"]): str(r["value"]) for r in rows}

        return await self._run("read", read)

    async def _write(self, channel_id: int, key: str, text: str) -> None:
        async def write(conn: asyncpg.Connection) -> None:
            await conn.execute(_UPSERT_SETTING, channel_id, key, text)

        await self._run("write", write)

    async def _delete(self, channel_id: int, key: str) -> None:
        async def delete(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "DELETE FROM charbot_channel_settings WHERE channel_id = $1 AND key = $2",
                channel_id,
                key,
            )

        await self._run("write", delete)

    # -- scoped state ------------------------------------------------------------------------

    async def _read_state(self, scope: Scope, scope_id: int, key: str) -> str | None:
        async def read(conn: asyncpg.Connection) -> str | None:
            value = await conn.fetchval(
                f"SELECT value FROM charbot_scoped_state WHERE {_STATE_WHERE}",
                scope.value,
                scope_id,
                key,
            )
            return None if value is None else str(value)

        return await self._run("read", read)

    async def _write_state(self, scope: Scope, scope_id: int, key: str, text: str | None) -> None:
        async def write(conn: asyncpg.Connection) -> None:
            if text is None:
                await conn.execute(
                    f"DELETE FROM charbot_scoped_state WHERE {_STATE_WHERE}",
                    scope.value,
                    scope_id,
                    key,
                )
            else:
                await conn.execute(_UPSERT_STATE, scope.value, scope_id, key, text)

        await self._run("write", write)

    async def _swap_state(
        self, scope: Scope, scope_id: int, key: str, expected: str | None, text: str | None
    ) -> bool:
        # One statement each: the row lock (or the primary key, for an insert) makes a racing
        # second statement see the first's result and change nothing.
        if expected is None:
            statement = (
                "INSERT INTO charbot_scoped_state (scope, scope_id, key, value)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
            )
            values: tuple[object, ...] = (text,)
        elif text is None:
            statement = f"DELETE FROM charbot_scoped_state WHERE {_STATE_WHERE} AND value = $4"
            values = (expected,)
        else:
            statement = (
                "UPDATE charbot_scoped_state SET value = $5, updated_at = now()"
                f" WHERE {_STATE_WHERE} AND value = $4"
            )
            values = (expected, text)

        async def swap(conn: asyncpg.Connection) -> bool:
            status = await conn.execute(statement, scope.value, scope_id, key, *values)
            return str(status).endswith(" 1")

        return await self._run("write", swap)

    async def _state_holders(self, scope: Scope, key: str) -> dict[int, str]:
        async def read(conn: asyncpg.Connection) -> dict[int, str]:
            rows = await conn.fetch(
                "SELECT scope_id, value FROM charbot_scoped_state WHERE scope = $1 AND key = $2",
                scope.value,
                key,
                timeout=BULK_TIMEOUT,
            )
            return {int(r["scope_id"]): str(r["value"]) for r in rows}

        return await self._run("read", read)

    # -- the whole store at once (`store copy`) ------------------------------------------------

    async def _dump(self) -> StoreContents:
        async def read(conn: asyncpg.Connection) -> StoreContents:
            # One snapshot of every table.
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                settings = await conn.fetch(
                    "SELECT channel_id, key, value FROM charbot_channel_settings"
                    " ORDER BY channel_id, key",
                    timeout=BULK_TIMEOUT,
                )
                state = await conn.fetch(
                    "SELECT scope, scope_id, key, value FROM charbot_scoped_state"
                    " ORDER BY scope, scope_id, key",
                    timeout=BULK_TIMEOUT,
                )
                records = await conn.fetch(
                    "SELECT kind, id, data, version, expires_at FROM charbot_records"
                    " ORDER BY kind, id",
                    timeout=BULK_TIMEOUT,
                )
                meta = await conn.fetch(
                    "SELECT key, value FROM charbot_meta ORDER BY key", timeout=BULK_TIMEOUT
                )
            return StoreContents(
                settings=tuple((int(c), str(k), str(v)) for c, k, v in settings),
                state=tuple((str(s), int(i), str(k), str(v)) for s, i, k, v in state),
                records=tuple(
                    (str(kind), str(i), str(d), int(ver), float(exp))
                    for kind, i, d, ver, exp in records
                ),
                meta=tuple((str(k), str(v)) for k, v in meta),
            )

        return await self._run("read", read)

    async def _load(self, contents: StoreContents) -> None:
        async def write(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                for statement, rows in (
                    (_UPSERT_SETTING, contents.settings),
                    (_UPSERT_STATE, contents.state),
                    (_UPSERT_RECORD, contents.records),
                    (_UPSERT_META, contents.meta),
                ):
                    if rows:
                        await conn.executemany(statement, rows, timeout=BULK_TIMEOUT)

        await self._run("write", write)

    # -- records -----------------------------------------------------------------------------

    async def _put_record(self, kind: str, record_id: str, data: str, expires_at: float) -> None:
        async def write(conn: asyncpg.Connection) -> None:
            await conn.execute(_UPSERT_RECORD, kind, record_id, data, 0, expires_at)

        await self._run("write", write)

    async def _get_record(self, kind: str, record_id: str, now: float) -> StoredRecord | None:
        async def read(conn: asyncpg.Connection) -> StoredRecord | None:
            row = await conn.fetchrow(
                "SELECT data, version, expires_at FROM charbot_records"
                " WHERE kind = $1 AND id = $2 AND expires_at > $3",
                kind,
                record_id,
                now,
            )
            if row is None:
                return None
            return StoredRecord(str(row["data"]), int(row["version"]), float(row["expires_at"]))

        return await self._run("read", read)

    async def _swap_record(
        self, kind: str, record_id: str, data: str, version: int, expires_at: float
    ) -> bool:
        async def swap(conn: asyncpg.Connection) -> bool:
            # One statement: the row lock makes a racing second UPDATE see the new version.
            # (Should the connection die after the commit, the retry finds the version moved and
            # answers False: a press is then refused, never answered twice.)
            status = await conn.execute(
                "UPDATE charbot_records SET data = $3, version = version + 1, expires_at = $5"
                " WHERE kind = $1 AND id = $2 AND version = $4",
                kind,
                record_id,
                data,
                version,
                expires_at,
            )
            return str(status) == "UPDATE 1"

        return await self._run("write", swap)

    async def _delete_record(self, kind: str, record_id: str) -> None:
        async def delete(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "DELETE FROM charbot_records WHERE kind = $1 AND id = $2", kind, record_id
            )

        await self._run("write", delete)

    async def _purge_expired(self, now: float) -> int:
        async def purge(conn: asyncpg.Connection) -> int:
            status = await conn.execute("DELETE FROM charbot_records WHERE expires_at <= $1", now)
            return int(str(status).rsplit(" ", 1)[-1])

        return await self._run("write", purge)

    # -- bot-wide state and locks ------------------------------------------------------------

    async def _read_meta(self, key: str) -> str | None:
        async def read(conn: asyncpg.Connection) -> str | None:
            value = await conn.fetchval("SELECT value FROM charbot_meta WHERE key = $1", key)
            return None if value is None else str(value)

        return await self._run("read", read)

    async def _write_meta(self, key: str, value: str) -> None:
        async def write(conn: asyncpg.Connection) -> None:
            await conn.execute(_UPSERT_META, key, value)

        await self._run("write", write)

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[None]:
        """Held by one process at a time among all those on this database.

        The lock lives on one connection, kept out of the pool meanwhile; if that connection
        dies, PostgreSQL releases the lock with it.
        """
        key = lock_key(name)
        pool = self._live_pool()
        try:
            conn = await pool.acquire(timeout=CONNECT_TIMEOUT)
        except _UNAVAILABLE as exc:
            raise self._unavailable("lock", exc) from exc
        try:
            try:
                await conn.execute("SELECT pg_advisory_lock($1)", key, timeout=LOCK_TIMEOUT)
            except _BROKEN as exc:
                with contextlib.suppress(asyncpg.InterfaceError):
                    conn.terminate()
                raise self._unavailable("lock", exc) from exc
            try:
                yield
            finally:
                with contextlib.suppress(*_UNAVAILABLE):  # a lost connection released it
                    await conn.execute("SELECT pg_advisory_unlock($1)", key)
        finally:
            # Release resets the connection (pg_advisory_unlock_all) before it is reused.
            with contextlib.suppress(*_UNAVAILABLE):
                await pool.release(conn)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), COMMAND_TIMEOUT)
            except _UNAVAILABLE:  # TimeoutError included
                pool.terminate()


def _reason(exc: BaseException) -> str:
    """The error's own text, without a trailing period (it ends our sentence)."""
    text = str(exc).strip() or type(exc).__name__
    return text.rstrip(".")
