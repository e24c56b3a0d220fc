"""Per-channel settings: a registry of the keys plugins own, and the async stores that keep them.

Scopes, most specific wins: a per-call option, then the channel's setting, then the config's
default (`resolve`). Each plugin registers the keys it owns, with a default and a validator, as
Red-DiscordBot's `Config.register_channel` does; a key nobody registered is an error.

    registry = SettingsRegistry()
    registry.register_channel(
        "temperature", default=None, validate=float_range(0.0, 2.0, label="Temperature"),
        owner="temperature",
    )
    store = await SqliteSettingsStore.open(path, registry)
    await store.set(channel_id, "temperature", 0.5)

Values are stored as JSON text, so a value reads back the same from every store. SQLite is the
embedded default: WAL journal, one transaction per write, a versioned schema. A file that is not
a charbot settings database is refused at open and left untouched, never reset.

Errors:

    CharbotError                 (bot.errors)
     └── SettingsError
          ├── UnknownSettingError      a key no loaded plugin registered
          ├── InvalidSettingError      a value its validator refused (the message is for users)
          ├── SettingRegistrationError two owners registering one key
          └── SettingsStoreError       the store cannot be opened, read or written
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiosqlite

from bot.errors import CharbotError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Takes a raw value, returns the normalized one, or raises `InvalidSettingError`.
Validator = Callable[[Any], Any]


# -- errors ----------------------------------------------------------------------------------------


class SettingsError(CharbotError):
    """Base of every per-channel settings error."""


class UnknownSettingError(SettingsError):
    """A key that no loaded plugin registered."""

    def __init__(self, key: str, known: Sequence[str] = ()) -> None:
        hint = f"; known settings: {', '.join(sorted(known))}" if known else ""
        super().__init__(f"There is no setting named {key!r}{hint}.")
        self.key = key


class InvalidSettingError(SettingsError):
    """A value that the key's validator refused; the message is shown to the user as it is."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class SettingRegistrationError(SettingsError):
    """A key registered twice by different owners (two plugins claiming one setting)."""


class SettingsStoreError(SettingsError):
    """The store cannot be opened, read or written; the message names the file and the fault."""

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


# -- scopes ----------------------------------------------------------------------------------------


def resolve(per_call: T | None, channel_value: T | None, default: T) -> T:
    """The most specific value that is set: the call's option, the channel's, then the default."""
    if per_call is not None:
        return per_call
    if channel_value is not None:
        return channel_value
    return default


# -- validators ------------------------------------------------------------------------------------


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def float_range(minimum: float, maximum: float, *, label: str = "The value") -> Validator:
    """A validator for a finite number in [minimum, maximum]; ints are accepted as floats."""

    def validate(value: Any) -> float:
        # bool is an int subclass, but `True` for a temperature is a mistake, not 1.0.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidSettingError(f"{label} must be a number, not {_shown(value)}.")
        number = float(value)
        if not math.isfinite(number) or not minimum <= number <= maximum:
            raise InvalidSettingError(
                f"{label} must be a number from {minimum} to {maximum}, not {_shown(value)}."
            )
        return number

    return validate


def int_range(minimum: int, maximum: int, *, label: str = "The value") -> Validator:
    """A validator for a whole number in [minimum, maximum]."""

    def validate(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidSettingError(f"{label} must be a whole number, not {_shown(value)}.")
        if not minimum <= value <= maximum:
            raise InvalidSettingError(
                f"{label} must be a whole number from {minimum} to {maximum}, not {value}."
            )
        return value

    return validate


def one_of(choices: Sequence[str], *, label: str = "The value") -> Validator:
    """A validator for one string out of a fixed list."""
    allowed = tuple(choices)

    def validate(value: Any) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise InvalidSettingError(
                f"{label} must be one of {', '.join(allowed)}, not {_shown(value)}."
            )
        return value

    return validate


def _any_value(value: Any) -> Any:
    return value


# -- the registry ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingSpec:
    """One registered per-channel key."""

    key: str
    default: Any
    validate: Validator
    owner: str
    description: str = ""


class SettingsRegistry:
    """The keys plugins own; the stores validate every write through it."""

    def __init__(self) -> None:
        self._specs: dict[str, SettingSpec] = {}

    def register_channel(
        self,
        key: str,
        *,
        default: Any,
        validate: Validator | None = None,
        owner: str,
        description: str = "",
    ) -> SettingSpec:
        """Register a per-channel key. The same owner may register again (an extension reload)."""
        if not key or not isinstance(key, str):
            raise SettingRegistrationError(
                f"A setting key must be a non-empty string, not {key!r}."
            )
        current = self._specs.get(key)
        if current is not None and current.owner != owner:
            raise SettingRegistrationError(
                f"Setting {key!r} is already registered by {current.owner!r}; "
                f"{owner!r} cannot register it too."
            )
        # The default is stored nowhere, but it must survive the same JSON round trip as values.
        _encode(key, default)
        spec = SettingSpec(key, default, validate or _any_value, owner, description)
        self._specs[key] = spec
        return spec

    def unregister_owner(self, owner: str) -> None:
        """Forget the keys `owner` registered (its plugin unloaded); stored values are kept."""
        for key in [k for k, s in self._specs.items() if s.owner == owner]:
            del self._specs[key]

    def spec(self, key: str) -> SettingSpec:
        try:
            return self._specs[key]
        except KeyError:
            raise UnknownSettingError(key, list(self._specs)) from None

    def __contains__(self, key: object) -> bool:
        return key in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._specs))

    def keys(self) -> list[str]:
        return sorted(self._specs)

    def default(self, key: str) -> Any:
        return self.spec(key).default

    def validate(self, key: str, value: Any) -> Any:
        """The normalized value, or `InvalidSettingError` (tagged with the key)."""
        spec = self.spec(key)
        try:
            return spec.validate(value)
        except InvalidSettingError as exc:
            exc.key = key
            raise


def _encode(key: str, value: Any) -> str:
    try:
        # NaN and inf are not JSON; a validator that lets them through has a bug.
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidSettingError(
            f"The value for {key!r} cannot be stored: {_shown(value)}.", key=key
        ) from exc


# -- the store interface ---------------------------------------------------------------------------


class SettingsStore(Protocol):
    """Per-channel settings, validated through a registry. Every method may raise SettingsError."""

    @property
    def registry(self) -> SettingsRegistry: ...

    async def get(self, channel_id: int, key: str) -> Any:
        """The channel's value for `key`, or the key's registered default."""
        ...

    async def get_all(self, channel_id: int) -> dict[str, Any]:
        """Every registered key's value for the channel (defaults included)."""
        ...

    async def set(self, channel_id: int, key: str, value: Any) -> Any:
        """Validate, then store; returns the normalized value as it will read back."""
        ...

    async def reset(self, channel_id: int, key: str) -> None:
        """Back to the default (no-op when the channel never set it)."""
        ...

    async def close(self) -> None: ...


class _StoreBase:
    """The validation and JSON handling shared by the stores; subclasses keep raw JSON text."""

    def __init__(self, registry: SettingsRegistry) -> None:
        self._registry = registry

    @property
    def registry(self) -> SettingsRegistry:
        return self._registry

    async def _read(self, channel_id: int, key: str) -> str | None:
        raise NotImplementedError

    async def _read_all(self, channel_id: int) -> dict[str, str]:
        raise NotImplementedError

    async def _write(self, channel_id: int, key: str, text: str) -> None:
        raise NotImplementedError

    async def _delete(self, channel_id: int, key: str) -> None:
        raise NotImplementedError

    def _decode(self, channel_id: int, key: str, text: str) -> Any:
        spec = self._registry.spec(key)
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise SettingsStoreError(
                f"The stored value of {key!r} for channel {channel_id} is not valid JSON."
            ) from exc
        try:
            return spec.validate(value)
        except InvalidSettingError as exc:
            # The plugin tightened its rules since this was saved: serve the default, keep the row.
            log.warning(
                "channel %d: stored %s=%s no longer valid (%s); using the default",
                channel_id,
                key,
                text[:40],
                exc,
            )
            return spec.default

    async def get(self, channel_id: int, key: str) -> Any:
        _check_channel(channel_id)
        spec = self._registry.spec(key)
        text = await self._read(channel_id, key)
        return spec.default if text is None else self._decode(channel_id, key, text)

    async def get_all(self, channel_id: int) -> dict[str, Any]:
        _check_channel(channel_id)
        stored = await self._read_all(channel_id)
        values: dict[str, Any] = {}
        for key in self._registry:
            text = stored.get(key)
            values[key] = (
                self._registry.default(key) if text is None else self._decode(channel_id, key, text)
            )
        return values

    async def set(self, channel_id: int, key: str, value: Any) -> Any:
        _check_channel(channel_id)
        text = _encode(key, self._registry.validate(key, value))
        await self._write(channel_id, key, text)
        return json.loads(text)

    async def reset(self, channel_id: int, key: str) -> None:
        _check_channel(channel_id)
        self._registry.spec(key)
        await self._delete(channel_id, key)


def _check_channel(channel_id: int) -> None:
    # Discord snowflakes are unsigned 63-bit; SQLite's INTEGER is signed 64-bit.
    if isinstance(channel_id, bool) or not isinstance(channel_id, int):
        raise TypeError(f"channel_id must be an int, not {type(channel_id).__name__}")
    if not 0 <= channel_id < 2**63:
        raise ValueError(f"channel_id {channel_id} is out of range")


class MemorySettingsStore(_StoreBase):
    """Settings in a dict: for plugin tests and the console chat. Lost on exit."""

    def __init__(self, registry: SettingsRegistry) -> None:
        super().__init__(registry)
        self._rows: dict[tuple[int, str], str] = {}
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise SettingsStoreError("The in-memory settings store is closed.")

    async def _read(self, channel_id: int, key: str) -> str | None:
        self._check_open()
        return self._rows.get((channel_id, key))

    async def _read_all(self, channel_id: int) -> dict[str, str]:
        self._check_open()
        return {k: v for (c, k), v in self._rows.items() if c == channel_id}

    async def _write(self, channel_id: int, key: str, text: str) -> None:
        self._check_open()
        self._rows[(channel_id, key)] = text

    async def _delete(self, channel_id: int, key: str) -> None:
        self._check_open()
        self._rows.pop((channel_id, key), None)

    async def close(self) -> None:
        self._closed = True


# -- SQLite ----------------------------------------------------------------------------------------

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
]

_SQLITE_MAGIC = b"SQLite format 3\x00"


class SqliteSettingsStore(_StoreBase):
    """Settings in one SQLite file. Open with `await SqliteSettingsStore.open(path, registry)`."""

    def __init__(self, conn: aiosqlite.Connection, path: Path, registry: SettingsRegistry) -> None:
        super().__init__(registry)
        self._conn: aiosqlite.Connection | None = conn
        self.path = path

    @classmethod
    async def open(
        cls, path: str | os.PathLike[str], registry: SettingsRegistry
    ) -> SqliteSettingsStore:
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
            await conn.execute(
                "INSERT INTO channel_settings (channel_id, key, value, updated_at)"
                " VALUES (?, ?, ?, ?)"
                " ON CONFLICT (channel_id, key)"
                " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (channel_id, key, text, time.time()),
            )

    async def _delete(self, channel_id: int, key: str) -> None:
        conn = self._connection()
        with _converting(self.path, "write"):
            await conn.execute(
                "DELETE FROM channel_settings WHERE channel_id = ? AND key = ?", (channel_id, key)
            )

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
    """Check the file is ours and not newer, then set WAL and migrate; raise before any write."""
    with _converting(path, "open"):
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

        mode = await _pragma_text(conn, "journal_mode = WAL")
        if mode.lower() != "wal":
            log.warning("settings store %s: journal mode is %s, not WAL", path, mode)
        # FULL: a committed setting survives power loss too; writes are rare.
        await conn.execute("PRAGMA synchronous = FULL")
        # A second process (another bot instance, a backup) may hold the lock briefly.
        await conn.execute("PRAGMA busy_timeout = 5000")

        for step in range(version, known):
            await _migrate(conn, path, step)
        if version == known:
            await _probe_writable(conn, path, version)


async def _migrate(conn: aiosqlite.Connection, path: Path, step: int) -> None:
    """Run MIGRATIONS[step] and bump the version in one transaction: all of it, or none."""
    await conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in MIGRATIONS[step]:
            await conn.execute(statement)
        await conn.execute(f"PRAGMA user_version = {step + 1}")
        await conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        await conn.execute("COMMIT")
    except BaseException:
        await conn.execute("ROLLBACK")
        raise
    log.info("settings store %s: migrated schema %d -> %d", path, step, step + 1)


async def _probe_writable(conn: aiosqlite.Connection, path: Path, version: int) -> None:
    # SQLite opens a read-only file read-only without a word; find out now, not at the first /set.
    await conn.execute("BEGIN IMMEDIATE")
    try:
        await conn.execute(f"PRAGMA user_version = {version}")
    finally:
        await conn.execute("ROLLBACK")


async def _pragma(conn: aiosqlite.Connection, name: str) -> int:
    return int(await _pragma_text(conn, name))


async def _pragma_text(conn: aiosqlite.Connection, name: str) -> str:
    async with conn.execute(f"PRAGMA {name}") as cursor:
        row = await cursor.fetchone()
    return "" if row is None else str(row[0])
