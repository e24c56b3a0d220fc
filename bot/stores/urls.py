"""Store URLs: where a relative SQLite path lives, and how a URL may be shown (password hidden)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

#: The one spelling of a SQLite store URL's start: the file's path follows (a fourth slash for
#: an absolute one).
SQLITE_PREFIX = "sqlite:///"

#: Where relative SQLite paths live (default: the current directory).
DATA_DIR_ENV = "CHARBOT_DATA_DIR"


def sqlite_url(path: str | Path) -> str:
    """The store URL of the SQLite file at `path`."""
    return f"{SQLITE_PREFIX}{path}"


def in_data_dir(path: str, env: Mapping[str, str]) -> Path:
    """`path` made absolute: a relative one (`~` expanded) goes in `CHARBOT_DATA_DIR`."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    return (Path(env.get(DATA_DIR_ENV) or ".").expanduser() / p).absolute()


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
