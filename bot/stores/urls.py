"""Store URLs as they may be shown: the password replaced, whatever the scheme."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"


def mask_url(url: str) -> str:
    """`url` with its password (in the authority or a `password=` query parameter) replaced by
    ``***``: the only form of a store URL that may be logged, printed or put in a message."""
    try:
        parts = urlsplit(url)
        password, port = parts.password, parts.port
    except ValueError:  # not parseable as a URL: show nothing of what may be secret
        return f"<a store URL that cannot be parsed ({len(url)} characters)>"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    in_query = any(k.lower() == "password" for k, _ in pairs)
    if password is None and not in_query:
        return url
    netloc = parts.netloc
    if password is not None:
        host = parts.hostname or ""
        if ":" in host:  # an IPv6 literal
            host = f"[{host}]"
        netloc = f"{parts.username or ''}:{MASK}@{host}" + (f":{port}" if port else "")
    query = parts.query
    if in_query:
        masked = [(k, MASK if k.lower() == "password" else v) for k, v in pairs]
        query = urlencode(masked, safe="*/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
