"""The stores, chosen by the scheme of `store.url`.

    sqlite:///charbot.sqlite3      the embedded default (a relative path lives in CHARBOT_DATA_DIR)
    sqlite:////var/lib/charbot.db  an absolute path (four slashes)
    postgresql://user@host:5432/db the shared store for several processes (the `postgres` extra)
    memory://                      nothing kept after exit (tests, trying things out)

`resolve_url` is the one reader of a store URL: the config, `open_store` and `store copy` all
go through it, so a relative SQLite path means the same file everywhere, and a bad URL is one
sentence that never shows a password. `DRIVERS` maps a URL scheme to the coroutine that opens
that driver's store; every store is a `bot.stores.base.Store` (see there for what one keeps).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

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
from bot.stores.urls import SQLITE_PREFIX, in_data_dir, mask_url, sqlite_url

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
    "StoredRecord",
    "StoredRow",
    "mask_url",
    "open_store",
    "resolve_url",
]

#: The seam's former names, kept while code written against them moves over.
SettingsStore = Store
MemorySettingsStore = MemoryStore


@dataclass(frozen=True)
class StoreUrl:
    """A store URL as read: the driver's scheme, and for SQLite the file's absolute path."""

    url: str  # what the driver opens: a relative SQLite path made absolute
    scheme: str
    path: Path | None = None  # the SQLite file


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


def resolve_url(
    url: str, env: Mapping[str, str] | None = None, *, name: str = "The store URL"
) -> StoreUrl:
    """Read a store URL: its driver, and a relative SQLite path made absolute in
    `CHARBOT_DATA_DIR` (from `env`, default the process's environment). A URL that names no
    store is a SettingsStoreError whose sentence starts with `name` and shows no password."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
    except ValueError:
        raise SettingsStoreError(f"{name} cannot be parsed as a URL.") from None
    if not scheme or "://" not in url:
        raise SettingsStoreError(
            f"{name} is not a URL such as sqlite:///charbot.sqlite3 or postgresql://user@host/db."
        )
    if scheme not in DRIVERS:
        raise SettingsStoreError(
            f"{name} has scheme {scheme!r}, which no driver handles "
            f"(known: {', '.join(sorted(DRIVERS))})."
        )
    bad_port = _bad_port(parts.netloc)
    if bad_port is not None:
        raise SettingsStoreError(
            f"{name} ({mask_url(url)}) has port {bad_port}, which is not a TCP port (1 to 65535)."
        )
    if scheme != "sqlite":
        return StoreUrl(url, scheme)
    file = url[len(SQLITE_PREFIX) :]
    if not url.lower().startswith(SQLITE_PREFIX) or not file:
        raise SettingsStoreError(
            f"{name} ({url}) names no file: a SQLite URL is {SQLITE_PREFIX} and then the "
            f"file's path ({SQLITE_PREFIX}/var/lib/charbot.sqlite3 for an absolute one)."
        )
    path = in_data_dir(file, os.environ if env is None else env)
    return StoreUrl(sqlite_url(path), scheme, path)


def _bad_port(netloc: str) -> str | None:
    """The first port in `netloc` that is not 1 to 65535, as written; None when all are fine.
    (PostgreSQL URLs may list several hosts: `h1:5432,h2:5433`.)"""
    for host in netloc.rpartition("@")[2].split(","):
        if host.endswith("]") or ":" not in host:  # no port (an IPv6 literal ends with "]")
            continue
        port = host.rpartition(":")[2]
        if port and not (port.isdigit() and 0 < int(port) <= 65535):
            return port
    return None


async def open_store(
    url: str, registry: SettingsRegistry, env: Mapping[str, str] | None = None
) -> Store:
    """Open the store that `url` names (see `resolve_url`), with the driver its scheme selects."""
    resolved = resolve_url(url, env)
    return await DRIVERS[resolved.scheme](resolved, registry)
