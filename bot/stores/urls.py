"""Store URLs: how one is read (`resolve_url`, the one place a relative SQLite path is put in
CHARBOT_DATA_DIR) and how one may be shown (`mask_url`, the password hidden).

The config reads `store.url` here, `bot.stores.open_store` and `store copy` too, so a relative
SQLite path names the same file everywhere. Which driver a scheme selects is
`bot.stores.DRIVERS`' business: `open_store` refuses a scheme no driver handles.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from bot.errors import CharbotError

MASK = "***"

#: The one spelling of a SQLite store URL's start: the file's path follows (a fourth slash for
#: an absolute one).
SQLITE_PREFIX = "sqlite:///"

#: Where relative SQLite paths live (default: the current directory).
DATA_DIR_ENV = "CHARBOT_DATA_DIR"


class StoreUrlError(CharbotError):
    """A store URL that names no store; the message is one sentence and shows no password."""


@dataclass(frozen=True)
class StoreUrl:
    """A store URL as read: its scheme, and for SQLite the file's absolute path."""

    url: str  # what the driver opens: a relative SQLite path made absolute
    scheme: str  # lower case
    path: Path | None = None  # the SQLite file


def sqlite_url(path: str | Path) -> str:
    """The store URL of the SQLite file at `path`."""
    return f"{SQLITE_PREFIX}{path}"


def resolve_url(
    url: str, env: Mapping[str, str] | None = None, *, name: str = "The store URL"
) -> StoreUrl:
    """Read a store URL; a relative SQLite path is made absolute in `CHARBOT_DATA_DIR` (from
    `env`, default the process's environment). A URL that cannot name a store is a
    StoreUrlError whose sentence starts with `name`."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
    except ValueError:
        raise StoreUrlError(f"{name} cannot be parsed as a URL.") from None
    if not scheme or "://" not in url:
        # Not echoed: what was meant as a URL may hold a password anywhere.
        raise StoreUrlError(
            f"{name} is not a URL such as sqlite:///charbot.sqlite3 or postgresql://user@host/db."
        )
    bad_port = _bad_port(parts.netloc)
    if bad_port is not None:
        raise StoreUrlError(
            f"{name} ({mask_url(url)}) has port {bad_port}, which is not a TCP port (1 to 65535)."
        )
    if scheme != "sqlite":
        return StoreUrl(url, scheme)
    file = url[len(SQLITE_PREFIX) :]
    if not url.lower().startswith(SQLITE_PREFIX) or not file:
        raise StoreUrlError(
            f"{name} ({url}) names no file: a SQLite URL is {SQLITE_PREFIX} and then the "
            f"file's path ({SQLITE_PREFIX}/var/lib/charbot.sqlite3 for an absolute one)."
        )
    path = Path(file).expanduser()
    if not path.is_absolute():
        data_dir = (os.environ if env is None else env).get(DATA_DIR_ENV) or "."
        path = (Path(data_dir).expanduser() / path).absolute()
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


def mask_url(url: str) -> str:
    """`url` with its password (in the authority or a `password=` query parameter) replaced by
    ``***``: the only form of a store URL that may be logged, printed or put in a message."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not parseable as a URL: show nothing of what may be secret
        return f"<a store URL that cannot be parsed ({len(url)} characters)>"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    in_query = any(k.lower() == "password" for k, _ in pairs)
    if password is None and not in_query:
        return url
    netloc = parts.netloc
    if password is not None:
        # The host and port as written: a port out of range is shown, never parsed.
        host_and_port = netloc.rpartition("@")[2]
        netloc = f"{parts.username or ''}:{MASK}@{host_and_port}"
    query = parts.query
    if in_query:
        masked = [(k, MASK if k.lower() == "password" else v) for k, v in pairs]
        query = urlencode(masked, safe="*/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
