"""The store seam: `Store`, the abstract base every driver subclasses, and `MemoryStore`.

A store keeps five things, in every driver alike:

- **settings**: per channel, the keys plugins register (`bot.settings.SettingsRegistry`), each
  value validated on the way in and out and kept as JSON text (`get`, `get_all`, `set`, `reset`);
- **scoped state**: a plugin's own JSON values by (scope, scope id, key), where the scope is a
  guild, a channel or a user (`Scope`; a user's state holds across every guild):
  `get_state`, `set_state`, `delete_state`, `update_state` (an atomic read-modify-write, so a
  guild's set of allowed channels can gain one while another process removes one) and
  `state_holders` (every id holding a key, e.g. every user who opted out);
- **records**: JSON documents by (kind, id) with an expiry and a version (`put_record`,
  `get_record`, `swap_record`: a compare-and-set on the version, so two bot processes pressing
  on one record cannot both win; `delete_record`, `purge_expired`);
- **meta**: a little bot-wide text (`get_meta`/`set_meta`: the hash of the commands last synced);
- **locks** (`exclusive`): a store that other processes cannot see (SQLite, memory) gives locks
  that cover this process only; PostgreSQL's cover every process on the database.

`dump` and `load` hand all of it over raw (`StoreContents`), for `python -m bot store copy`.
A store counts its failures (`errors`, for the metrics) and answers `ping()` cheaply (for the
readiness probe).

`Store` does the checking, the validation and the JSON round trip; a driver implements the
abstract hooks (raw text in, raw text out), and Python refuses to construct one that misses a
hook (`TypeError`). A new driver is one module with a `Store` subclass, one opener in
`bot.stores.DRIVERS` and one line in the conformance suite's table (`tests/bot/stores`).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import enum
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bot.settings import (
    InvalidSettingError,
    SettingsRegistry,
    SettingsStoreError,
    encode_value,
)

log = logging.getLogger(__name__)

#: The longest record kind, record id and state key a store accepts (a record id may travel in
#: a Discord custom id).
MAX_KEY_LENGTH = 64

#: How many times `update_state` reads again after another process changed the value under it
#: (each time, that other process's update went through).
UPDATE_TRIES = 100
#: `update_state`s of one process take turns per key, over this many locks (a key hashes to one).
UPDATE_LOCKS = 64


class Scope(enum.StrEnum):
    """Whose state a value is. A user's state is the same in every guild."""

    GUILD = "guild"
    CHANNEL = "channel"
    USER = "user"


#: One stored setting as the driver keeps it: (channel id, key, JSON text).
StoredRow = tuple[int, str, str]
#: One value of scoped state: (scope, scope id, key, JSON text).
StateRow = tuple[str, int, str, str]
#: One record: (kind, id, JSON text, version, expires_at in unix seconds).
RecordRow = tuple[str, str, str, int, float]
#: One piece of bot-wide state: (key, text).
MetaRow = tuple[str, str]


@dataclass(frozen=True)
class StoredRecord:
    """A record as stored: its JSON text, its version (0 when created, +1 per swap), its expiry."""

    data: str
    version: int
    expires_at: float  # unix seconds


@dataclass(frozen=True)
class StoreContents:
    """Everything a store keeps, raw and sorted, as `store copy` moves it between drivers."""

    settings: tuple[StoredRow, ...] = ()
    state: tuple[StateRow, ...] = ()
    records: tuple[RecordRow, ...] = ()
    meta: tuple[MetaRow, ...] = ()


class Store(abc.ABC):
    """Settings, scoped state, records, meta and locks. Every method may raise SettingsError;
    a caller's malformed argument (a channel id that is not an int, a key too long, data that
    is not JSON) is a TypeError or ValueError."""

    def __init__(self, registry: SettingsRegistry) -> None:
        self._registry = registry
        self._locks: dict[str, asyncio.Lock] = {}
        self._update_locks = [asyncio.Lock() for _ in range(UPDATE_LOCKS)]
        self._errors = 0

    @property
    def registry(self) -> SettingsRegistry:
        return self._registry

    @property
    def errors(self) -> int:
        """How many operations failed with SettingsStoreError since the store was opened."""
        return self._errors

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[None]:
        """A lock named `name`, shared with every process that sees this store. This one covers
        this process only: drivers that other processes share override it."""
        async with self._locks.setdefault(name, asyncio.Lock()):
            yield

    @contextlib.contextmanager
    def _counting(self) -> Iterator[None]:
        """Count the store's own failures (not a caller's unknown key or invalid value)."""
        try:
            yield
        except SettingsStoreError:
            self._errors += 1
            raise

    # -- the hooks a driver implements: raw text in, raw text out ---------------------------------

    @abc.abstractmethod
    async def ping(self) -> None:
        """Return when the store is reachable now (its lightest round trip); raise
        SettingsStoreError when it is not."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the store's resources; closing twice is a no-op."""

    @abc.abstractmethod
    async def _read(self, channel_id: int, key: str) -> str | None: ...

    @abc.abstractmethod
    async def _read_all(self, channel_id: int) -> dict[str, str]: ...

    @abc.abstractmethod
    async def _write(self, channel_id: int, key: str, text: str) -> None: ...

    @abc.abstractmethod
    async def _delete(self, channel_id: int, key: str) -> None: ...

    @abc.abstractmethod
    async def _read_state(self, scope: Scope, scope_id: int, key: str) -> str | None: ...

    @abc.abstractmethod
    async def _write_state(self, scope: Scope, scope_id: int, key: str, text: str | None) -> None:
        """Store `text`, or delete the value when it is None."""

    @abc.abstractmethod
    async def _swap_state(
        self, scope: Scope, scope_id: int, key: str, expected: str | None, text: str | None
    ) -> bool:
        """Atomically: when the stored text is `expected` (None: there is none), store `text`
        (None: delete it) and return True; else change nothing and return False."""

    @abc.abstractmethod
    async def _state_holders(self, scope: Scope, key: str) -> dict[int, str]:
        """Every scope id holding `key`, with its text."""

    @abc.abstractmethod
    async def _put_record(
        self, kind: str, record_id: str, data: str, expires_at: float
    ) -> None: ...

    @abc.abstractmethod
    async def _get_record(self, kind: str, record_id: str, now: float) -> StoredRecord | None:
        """The record unless it expired by `now`."""

    @abc.abstractmethod
    async def _swap_record(
        self, kind: str, record_id: str, data: str, version: int, expires_at: float
    ) -> bool:
        """Atomically: when the stored version is `version`, write and bump it; else False."""

    @abc.abstractmethod
    async def _delete_record(self, kind: str, record_id: str) -> None: ...

    @abc.abstractmethod
    async def _purge_expired(self, now: float) -> int: ...

    @abc.abstractmethod
    async def _read_meta(self, key: str) -> str | None: ...

    @abc.abstractmethod
    async def _write_meta(self, key: str, value: str) -> None: ...

    @abc.abstractmethod
    async def _dump(self) -> StoreContents:
        """Every row of every kind, each kind sorted by its key."""

    @abc.abstractmethod
    async def _load(self, contents: StoreContents) -> None:
        """Write every row as it is, replacing rows with equal keys, in one transaction."""

    # -- settings (per channel, through the registry) ---------------------------------------------

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
        """The channel's value for `key`, or the key's registered default."""
        _check_id(channel_id, "channel_id")
        spec = self._registry.spec(key)
        with self._counting():
            text = await self._read(channel_id, key)
            return spec.default if text is None else self._decode(channel_id, key, text)

    async def get_all(self, channel_id: int) -> dict[str, Any]:
        """Every registered key's value for the channel (defaults included)."""
        _check_id(channel_id, "channel_id")
        values: dict[str, Any] = {}
        with self._counting():
            stored = await self._read_all(channel_id)
            for key in self._registry:
                text = stored.get(key)
                values[key] = (
                    self._registry.default(key)
                    if text is None
                    else self._decode(channel_id, key, text)
                )
        return values

    async def set(self, channel_id: int, key: str, value: Any) -> Any:
        """Validate, then store; returns the normalized value as it will read back."""
        _check_id(channel_id, "channel_id")
        text = encode_value(key, self._registry.validate(key, value))
        with self._counting():
            await self._write(channel_id, key, text)
        return json.loads(text)

    async def reset(self, channel_id: int, key: str) -> None:
        """Back to the default (no-op when the channel never set it)."""
        _check_id(channel_id, "channel_id")
        self._registry.spec(key)
        with self._counting():
            await self._delete(channel_id, key)

    # -- scoped state (a plugin's own JSON values per guild, channel or user) ---------------------

    async def get_state(self, scope: Scope, scope_id: int, key: str) -> Any:
        """The stored value, or None when there is none."""
        scope = _check_state(scope, scope_id, key)
        with self._counting():
            return _loads(await self._read_state(scope, scope_id, key), scope, key)

    async def set_state(self, scope: Scope, scope_id: int, key: str, value: Any) -> None:
        """Store `value` (anything JSON can hold; None deletes it)."""
        scope = _check_state(scope, scope_id, key)
        text = _dumps(value, key)
        with self._counting():
            await self._write_state(scope, scope_id, key, text)

    async def delete_state(self, scope: Scope, scope_id: int, key: str) -> None:
        """Remove the value (no-op when there is none)."""
        await self.set_state(scope, scope_id, key, None)

    async def update_state(
        self, scope: Scope, scope_id: int, key: str, change: Callable[[Any], Any]
    ) -> Any:
        """Replace the value with `change(value)` (None in, when there is none; None out
        deletes), atomically against every other writer, and return the new value.

        The updates of one process take turns; between processes, it is a compare-and-set on
        the stored text: when another process wrote in between, `change` runs again on what it
        wrote. So `change` must depend only on the value it is given, and should give the same
        result when applied twice (adding to a set does): if a connection dies after the write
        but before the answer, it is applied to its own result.
        """
        scope = _check_state(scope, scope_id, key)
        turn = self._update_locks[hash((scope, scope_id, key)) % UPDATE_LOCKS]
        async with turn:
            return await self._update(scope, scope_id, key, change)

    async def _update(
        self, scope: Scope, scope_id: int, key: str, change: Callable[[Any], Any]
    ) -> Any:
        with self._counting():
            for _ in range(UPDATE_TRIES):
                old = await self._read_state(scope, scope_id, key)
                value = change(_loads(old, scope, key))
                new = _dumps(value, key)
                if new == old or await self._swap_state(scope, scope_id, key, old, new):
                    return _loads(new, scope, key)
            raise SettingsStoreError(
                f"The {scope} state {key!r} of {scope_id} was changed by other processes "
                f"{UPDATE_TRIES} times in a row; try again."
            )

    async def state_holders(self, scope: Scope, key: str) -> dict[int, Any]:
        """Every id in `scope` holding a value for `key`, with that value, by ascending id."""
        scope = _check_state(scope, 0, key)
        with self._counting():
            found = await self._state_holders(scope, key)
            return {i: _loads(found[i], scope, key) for i in sorted(found)}

    # -- records ----------------------------------------------------------------------------------

    async def put_record(self, kind: str, record_id: str, data: str, expires_at: float) -> None:
        """Create (or replace) a record: JSON text `data`, version 0, kept until `expires_at`."""
        _check_record(kind, record_id, data)
        with self._counting():
            await self._put_record(kind, record_id, data, float(expires_at))

    async def get_record(self, kind: str, record_id: str, *, now: float) -> StoredRecord | None:
        """The record, or None when there is none or it expired by `now` (unix seconds)."""
        _check_record(kind, record_id)
        with self._counting():
            return await self._get_record(kind, record_id, float(now))

    async def swap_record(
        self, kind: str, record_id: str, data: str, *, version: int, expires_at: float
    ) -> bool:
        """Compare-and-set, atomically: when the stored version is `version`, write `data` and
        `expires_at` and bump the version; False (and no write) when it was changed or deleted."""
        _check_record(kind, record_id, data)
        with self._counting():
            return await self._swap_record(kind, record_id, data, int(version), float(expires_at))

    async def delete_record(self, kind: str, record_id: str) -> None:
        """Remove a record (no-op when there is none)."""
        _check_record(kind, record_id)
        with self._counting():
            await self._delete_record(kind, record_id)

    async def purge_expired(self, now: float) -> int:
        """Remove every record expired by `now`; returns how many."""
        with self._counting():
            return await self._purge_expired(float(now))

    # -- meta, and the whole store at once --------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        """Bot-wide state (not per channel), e.g. the hash of the commands last synced."""
        with self._counting():
            return await self._read_meta(key)

    async def set_meta(self, key: str, value: str) -> None:
        with self._counting():
            await self._write_meta(key, value)

    async def dump(self) -> StoreContents:
        """Everything the store keeps, raw (for copying a store)."""
        with self._counting():
            return await self._dump()

    async def load(self, contents: StoreContents) -> None:
        """Store raw rows as they are, in one transaction, replacing rows with equal keys."""
        for scope, scope_id, key, _ in contents.state:
            _check_state(scope, scope_id, key)
        with self._counting():
            await self._load(contents)


def _check_id(value: int, name: str) -> None:
    # Discord snowflakes are unsigned 63-bit; SQLite's INTEGER is signed 64-bit.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value < 2**63:
        raise ValueError(f"{name} {value} is out of range")


def _check_key(name: str, value: str) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_KEY_LENGTH:
        raise ValueError(f"a {name} is a string of 1 to {MAX_KEY_LENGTH} characters")


def _check_state(scope: str, scope_id: int, key: str) -> Scope:
    _check_id(scope_id, "scope_id")
    _check_key("state key", key)
    try:
        return Scope(scope)
    except ValueError:
        raise ValueError(
            f"a scope is one of {', '.join(s.value for s in Scope)}, not {scope!r}"
        ) from None


def _check_record(kind: str, record_id: str, data: str | None = None) -> None:
    _check_key("record kind", kind)
    _check_key("record id", record_id)
    if data is not None:
        try:
            json.loads(data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"record {kind}/{record_id} must be JSON text") from exc


def _dumps(value: Any, key: str) -> str | None:
    if value is None:
        return None
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the state {key!r} must be a JSON value, not {value!r}") from exc


def _loads(text: str | None, scope: Scope, key: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise SettingsStoreError(f"The stored {scope} state {key!r} is not valid JSON.") from exc


class MemoryStore(Store):
    """Everything in dicts: for plugin tests and `memory://`. Lost on exit."""

    def __init__(self, registry: SettingsRegistry) -> None:
        super().__init__(registry)
        self._settings: dict[tuple[int, str], str] = {}
        self._state: dict[tuple[str, int, str], str] = {}
        self._meta: dict[str, str] = {}
        self._records: dict[tuple[str, str], StoredRecord] = {}
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise SettingsStoreError("The in-memory settings store is closed.")

    async def ping(self) -> None:
        self._check_open()

    async def close(self) -> None:
        self._closed = True

    async def _read(self, channel_id: int, key: str) -> str | None:
        self._check_open()
        return self._settings.get((channel_id, key))

    async def _read_all(self, channel_id: int) -> dict[str, str]:
        self._check_open()
        return {k: v for (c, k), v in self._settings.items() if c == channel_id}

    async def _write(self, channel_id: int, key: str, text: str) -> None:
        self._check_open()
        self._settings[(channel_id, key)] = text

    async def _delete(self, channel_id: int, key: str) -> None:
        self._check_open()
        self._settings.pop((channel_id, key), None)

    async def _read_state(self, scope: Scope, scope_id: int, key: str) -> str | None:
        self._check_open()
        return self._state.get((scope.value, scope_id, key))

    async def _write_state(self, scope: Scope, scope_id: int, key: str, text: str | None) -> None:
        self._check_open()
        if text is None:
            self._state.pop((scope.value, scope_id, key), None)
        else:
            self._state[(scope.value, scope_id, key)] = text

    async def _swap_state(
        self, scope: Scope, scope_id: int, key: str, expected: str | None, text: str | None
    ) -> bool:
        self._check_open()
        # No await between the check and the write: atomic on the event loop.
        where = (scope.value, scope_id, key)
        if self._state.get(where) != expected:
            return False
        if text is None:
            del self._state[where]
        else:
            self._state[where] = text
        return True

    async def _state_holders(self, scope: Scope, key: str) -> dict[int, str]:
        self._check_open()
        return {i: v for (s, i, k), v in self._state.items() if s == scope.value and k == key}

    async def _put_record(self, kind: str, record_id: str, data: str, expires_at: float) -> None:
        self._check_open()
        self._records[(kind, record_id)] = StoredRecord(data, 0, expires_at)

    async def _get_record(self, kind: str, record_id: str, now: float) -> StoredRecord | None:
        self._check_open()
        found = self._records.get((kind, record_id))
        return found if found is not None and found.expires_at > now else None

    async def _swap_record(
        self, kind: str, record_id: str, data: str, version: int, expires_at: float
    ) -> bool:
        self._check_open()
        # No await between the check and the write: atomic on the event loop.
        found = self._records.get((kind, record_id))
        if found is None or found.version != version:
            return False
        self._records[(kind, record_id)] = StoredRecord(data, version + 1, expires_at)
        return True

    async def _delete_record(self, kind: str, record_id: str) -> None:
        self._check_open()
        self._records.pop((kind, record_id), None)

    async def _purge_expired(self, now: float) -> int:
        self._check_open()
        expired = [key for key, r in self._records.items() if r.expires_at <= now]
        for key in expired:
            del self._records[key]
        return len(expired)

    async def _read_meta(self, key: str) -> str | None:
        self._check_open()
        return self._meta.get(key)

    async def _write_meta(self, key: str, value: str) -> None:
        self._check_open()
        self._meta[key] = value

    async def _dump(self) -> StoreContents:
        self._check_open()
        return StoreContents(
            settings=tuple((c, k, v) for (c, k), v in sorted(self._settings.items())),
            state=tuple((s, i, k, v) for (s, i, k), v in sorted(self._state.items())),
            records=tuple(
                (kind, i, r.data, r.version, r.expires_at)
                for (kind, i), r in sorted(self._records.items())
            ),
            meta=tuple(sorted(self._meta.items())),
        )

    async def _load(self, contents: StoreContents) -> None:
        self._check_open()
        self._settings.update({(c, k): v for c, k, v in contents.settings})
        self._state.update({(s, i, k): v for s, i, k, v in contents.state})
        self._records.update(
            {(kind, i): StoredRecord(d, ver, exp) for kind, i, d, ver, exp in contents.records}
        )
        self._meta.update(contents.meta)
