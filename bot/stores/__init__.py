"""The stores, chosen by the scheme of `store.url`.

    sqlite:///charbot.sqlite3      the embedded default (a relative path lives in CHARBOT_DATA_DIR)
    sqlite:////var/lib/charbot.db  an absolute path (four slashes)
    postgresql://user@host:5432/db the shared store for several processes (the `postgres` extra)
    memory://                      nothing kept after exit (tests, trying things out)

`bot.stores.urls.resolve_url` is the one reader of a store URL (the config, `open_store` and
`store copy` all go through it), so a relative SQLite path means the same file everywhere, and a
bad URL is one sentence that never shows a password. `DRIVERS` maps a URL scheme to the
coroutine that opens that driver's store; every store is a `bot.stores.base.Store` (see there
for what one keeps).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from bot.settings import SettingsRegistry, SettingsStoreError
from bot.stores.base import (
    MemoryStore,
    Scope,
    Store,
    StoreContents,
    StoredRecord,
    StoredRow,
)
from bot.stores.sqlite import SqliteStore
from bot.stores.urls import StoreUrl, StoreUrlError, mask_url, resolve_url

__all__ = [
    "DRIVERS",
    "MemorySettingsStore",
    "MemoryStore",
    "Scope",
    "SettingsStore",
    "SqliteStore",
    "Store",
    "StoreContents",
    "StoreUrl",
    "StoreUrlError",
    "StoredRecord",
    "StoredRow",
    "mask_url",
    "open_store",
    "resolve_url",
]

#: The seam's former names, kept while code written against them moves over.
SettingsStore = Store
MemorySettingsStore = MemoryStore


#: Opens a store: (url, registry) -> store.
StoreOpener = Callable[[StoreUrl, SettingsRegistry], Awaitable[Store]]


async def _open_memory(url: StoreUrl, registry: SettingsRegistry) -> Store:
    return MemoryStore(registry)


async def _open_sqlite(url: StoreUrl, registry: SettingsRegistry) -> Store:
    assert url.path is not None  # resolve_url gives every sqlite URL its path
    return await SqliteStore.open(url.path, registry)


async def _open_postgres(url: StoreUrl, registry: SettingsRegistry) -> Store:
    try:  # asyncpg is an optional extra: only deployments that use PostgreSQL install it
        from bot.stores.postgres import PostgresStore
    except ImportError as exc:
        raise SettingsStoreError(
            f"The store {mask_url(url.url)} needs asyncpg: pip install 'charbot[postgres]'."
        ) from exc
    return await PostgresStore.open(url.url, registry)


DRIVERS: dict[str, StoreOpener] = {
    "memory": _open_memory,
    "sqlite": _open_sqlite,
    "postgresql": _open_postgres,
    "postgres": _open_postgres,
}


async def open_store(
    url: str,
    registry: SettingsRegistry,
    env: Mapping[str, str] | None = None,
    *,
    name: str = "The store URL",
) -> Store:
    """Open the store that `url` names (read by `resolve_url`), with the driver its scheme
    selects; a scheme no driver handles is a StoreUrlError whose sentence starts with `name`."""
    resolved = resolve_url(url, env, name=name)
    opener = DRIVERS.get(resolved.scheme)
    if opener is None:
        raise StoreUrlError(
            f"{name} has scheme {resolved.scheme!r}, which no driver handles "
            f"(known: {', '.join(sorted(DRIVERS))})."
        )
    return await opener(resolved, registry)
