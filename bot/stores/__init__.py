"""Settings stores, chosen by the scheme of `store.url`.

    sqlite:///charbot.sqlite3      the embedded default (a relative path lives in CHARBOT_DATA_DIR)
    sqlite:////var/lib/charbot.db  an absolute path (four slashes)
    postgresql://user@host:5432/db the shared store for several processes (the `postgres` extra)

`DRIVERS` maps a URL scheme to the coroutine that opens that driver's store; a new driver is one
module and one entry here. Every store implements `bot.stores.base.SettingsStore`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from bot.settings import SettingsRegistry, SettingsStoreError
from bot.stores.base import MemorySettingsStore, SettingsStore, StoreBase, StoredRecord, StoredRow
from bot.stores.sqlite import SqliteSettingsStore
from bot.stores.urls import mask_url

__all__ = [
    "DRIVERS",
    "MemorySettingsStore",
    "SettingsStore",
    "SqliteSettingsStore",
    "StoreBase",
    "StoredRecord",
    "StoredRow",
    "mask_url",
    "open_store",
    "sqlite_path",
]

#: Opens a store: (url, registry) -> store.
StoreOpener = Callable[[str, SettingsRegistry], Awaitable[SettingsStore]]

SQLITE_PREFIX = "sqlite:///"


def sqlite_path(url: str) -> str:
    """The file path in a `sqlite:///PATH` URL (`sqlite:////abs/path` for an absolute one)."""
    if not url.startswith(SQLITE_PREFIX):
        raise SettingsStoreError(
            f"A SQLite store URL starts with {SQLITE_PREFIX}; got {mask_url(url)!r}."
        )
    return url[len(SQLITE_PREFIX) :]


async def _open_sqlite(url: str, registry: SettingsRegistry) -> SettingsStore:
    return await SqliteSettingsStore.open(sqlite_path(url), registry)


async def _open_postgres(url: str, registry: SettingsRegistry) -> SettingsStore:
    try:  # asyncpg is an optional extra: only deployments that use PostgreSQL install it
        from bot.stores.postgres import PostgresSettingsStore
    except ImportError as exc:
        raise SettingsStoreError(
            f"The settings store {mask_url(url)} needs asyncpg: pip install 'charbot[postgres]'."
        ) from exc
    return await PostgresSettingsStore.open(url, registry)


DRIVERS: dict[str, StoreOpener] = {
    "sqlite": _open_sqlite,
    "postgresql": _open_postgres,
    "postgres": _open_postgres,
}


async def open_store(url: str, registry: SettingsRegistry) -> SettingsStore:
    """Open the store that `url` names, with the driver its scheme selects."""
    scheme = urlsplit(url).scheme.lower()
    opener = DRIVERS.get(scheme)
    if opener is None:
        raise SettingsStoreError(
            f"The settings store URL has scheme {scheme!r}, which no driver handles "
            f"(known: {', '.join(sorted(DRIVERS))})."
        )
    return await opener(url, registry)
