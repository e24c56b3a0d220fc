"""The settings store seam: the interface every driver implements, and the shared base.

A driver keeps raw JSON text per (channel, key); `StoreBase` does the validation through the
registry and the JSON round trip, so every driver reads back the same values. A second driver is
one new module with a `StoreBase` subclass and an opener registered in `bot.stores.DRIVERS`.
`MemorySettingsStore` serves plugin tests.

Besides the settings, a store keeps a little bot-wide state (`get_meta`/`set_meta`: the hash of
the commands last synced), hands out its raw rows for `python -m bot store copy` (`rows`,
`put_rows`), and offers named locks (`exclusive`). A store that other processes cannot see
(SQLite, memory) gives locks that cover this process only; PostgreSQL's cover every process on
the database.

A store counts its failures (`errors`, for the metrics) and answers `ping()` cheaply (for the
readiness probe): a driver implements `ping` with the lightest round trip it has.

It also keeps *records*: JSON documents that plugins need across restarts (what a message's
buttons continue, say), by (kind, id), each with an expiry and a version. The version makes a
compare-and-set (`swap_record`), so two bot processes pressing on one record cannot both win.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from bot.settings import (
    InvalidSettingError,
    SettingsRegistry,
    SettingsStoreError,
    encode_value,
)

log = logging.getLogger(__name__)

#: One stored setting as the driver keeps it: (channel id, key, JSON text).
StoredRow = tuple[int, str, str]

#: The longest record kind and id a store accepts (an id may travel in a Discord custom id).
MAX_RECORD_KEY = 64


@dataclass(frozen=True)
class StoredRecord:
    """A record as stored: its JSON text, its version (0 when created, +1 per swap), its expiry."""

    data: str
    version: int
    expires_at: float  # unix seconds


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

    async def ping(self) -> None:
        """Return when the store is reachable now; raise SettingsStoreError when it is not."""
        ...

    @property
    def errors(self) -> int:
        """How many operations failed with SettingsStoreError since the store was opened."""
        ...

    async def rows(self) -> list[StoredRow]:
        """Every stored setting, raw, ordered by channel then key (for copying a store)."""
        ...

    async def put_rows(self, rows: Iterable[StoredRow]) -> None:
        """Store raw rows as they are, in one transaction, replacing equal (channel, key)s."""
        ...

    async def get_meta(self, key: str) -> str | None:
        """Bot-wide state (not per channel), e.g. the hash of the commands last synced."""
        ...

    async def set_meta(self, key: str, value: str) -> None: ...

    def exclusive(self, name: str) -> AbstractAsyncContextManager[None]:
        """A lock named `name`, shared with every process that sees this store."""
        ...

    async def put_record(self, kind: str, record_id: str, data: str, expires_at: float) -> None:
        """Create (or replace) a record: JSON text `data`, version 0, kept until `expires_at`."""
        ...

    async def get_record(self, kind: str, record_id: str, *, now: float) -> StoredRecord | None:
        """The record, or None when there is none or it expired by `now` (unix seconds)."""
        ...

    async def swap_record(
        self, kind: str, record_id: str, data: str, *, version: int, expires_at: float
    ) -> bool:
        """Compare-and-set, atomically: when the stored version is `version`, write `data` and
        `expires_at` and bump the version; False (and no write) when it was changed or deleted."""
        ...

    async def delete_record(self, kind: str, record_id: str) -> None:
        """Remove a record (no-op when there is none)."""
        ...

    async def purge_expired(self, now: float) -> int:
        """Remove every record expired by `now`; returns how many."""
        ...

    async def close(self) -> None: ...


class StoreBase:
    """The validation and JSON handling shared by the stores; subclasses keep raw JSON text."""

    def __init__(self, registry: SettingsRegistry) -> None:
        self._registry = registry
        self._locks: dict[str, asyncio.Lock] = {}
        self._errors = 0

    @property
    def registry(self) -> SettingsRegistry:
        return self._registry

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[None]:
        """This process's lock named `name`: stores that other processes share override it."""
        async with self._locks.setdefault(name, asyncio.Lock()):
            yield

    @property
    def errors(self) -> int:
        return self._errors

    @contextlib.contextmanager
    def _counting(self) -> Iterator[None]:
        """Count the store's own failures (not a caller's unknown key or invalid value)."""
        try:
            yield
        except SettingsStoreError:
            self._errors += 1
            raise

    async def ping(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not implement ping()")

    async def _read(self, channel_id: int, key: str) -> str | None:
        raise NotImplementedError

    async def _read_all(self, channel_id: int) -> dict[str, str]:
        raise NotImplementedError

    async def _write(self, channel_id: int, key: str, text: str) -> None:
        raise NotImplementedError

    async def _delete(self, channel_id: int, key: str) -> None:
        raise NotImplementedError

    async def _put_record(self, kind: str, record_id: str, data: str, expires_at: float) -> None:
        raise NotImplementedError

    async def _get_record(self, kind: str, record_id: str, now: float) -> StoredRecord | None:
        raise NotImplementedError

    async def _swap_record(
        self, kind: str, record_id: str, data: str, version: int, expires_at: float
    ) -> bool:
        raise NotImplementedError

    async def _delete_record(self, kind: str, record_id: str) -> None:
        raise NotImplementedError

    async def _purge_expired(self, now: float) -> int:
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
        with self._counting():
            text = await self._read(channel_id, key)
            return spec.default if text is None else self._decode(channel_id, key, text)

    async def get_all(self, channel_id: int) -> dict[str, Any]:
        _check_channel(channel_id)
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
        _check_channel(channel_id)
        text = encode_value(key, self._registry.validate(key, value))
        with self._counting():
            await self._write(channel_id, key, text)
        return json.loads(text)

    async def reset(self, channel_id: int, key: str) -> None:
        _check_channel(channel_id)
        self._registry.spec(key)
        with self._counting():
            await self._delete(channel_id, key)

    async def put_record(self, kind: str, record_id: str, data: str, expires_at: float) -> None:
        _check_record(kind, record_id, data)
        with self._counting():
            await self._put_record(kind, record_id, data, float(expires_at))

    async def get_record(self, kind: str, record_id: str, *, now: float) -> StoredRecord | None:
        _check_record(kind, record_id)
        with self._counting():
            return await self._get_record(kind, record_id, float(now))

    async def swap_record(
        self, kind: str, record_id: str, data: str, *, version: int, expires_at: float
    ) -> bool:
        _check_record(kind, record_id, data)
        with self._counting():
            return await self._swap_record(kind, record_id, data, int(version), float(expires_at))

    async def delete_record(self, kind: str, record_id: str) -> None:
        _check_record(kind, record_id)
        with self._counting():
            await self._delete_record(kind, record_id)

    async def purge_expired(self, now: float) -> int:
        with self._counting():
            return await self._purge_expired(float(now))


def _check_record(kind: str, record_id: str, data: str | None = None) -> None:
    for name, value in (("kind", kind), ("id", record_id)):
        if not isinstance(value, str) or not 0 < len(value) <= MAX_RECORD_KEY:
            raise ValueError(f"a record {name} is a string of 1 to {MAX_RECORD_KEY} characters")
    if data is not None:
        try:
            json.loads(data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"record {kind}/{record_id} must be JSON text") from exc


def _check_channel(channel_id: int) -> None:
    # Discord snowflakes are unsigned 63-bit; SQLite's INTEGER is signed 64-bit.
    if isinstance(channel_id, bool) or not isinstance(channel_id, int):
        raise TypeError(f"channel_id must be an int, not {type(channel_id).__name__}")
    if not 0 <= channel_id < 2**63:
        raise ValueError(f"channel_id {channel_id} is out of range")


class MemorySettingsStore(StoreBase):
    """Settings in a dict: for plugin tests and the console chat. Lost on exit."""

    def __init__(self, registry: SettingsRegistry) -> None:
        super().__init__(registry)
        self._rows: dict[tuple[int, str], str] = {}
        self._meta: dict[str, str] = {}
        self._records: dict[tuple[str, str], StoredRecord] = {}
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

    async def rows(self) -> list[StoredRow]:
        self._check_open()
        return [(c, k, v) for (c, k), v in sorted(self._rows.items())]

    async def put_rows(self, rows: Iterable[StoredRow]) -> None:
        self._check_open()
        self._rows.update({(c, k): v for c, k, v in rows})

    async def get_meta(self, key: str) -> str | None:
        self._check_open()
        return self._meta.get(key)

    async def set_meta(self, key: str, value: str) -> None:
        self._check_open()
        self._meta[key] = value

    async def ping(self) -> None:
        self._check_open()

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

    async def close(self) -> None:
        self._closed = True
