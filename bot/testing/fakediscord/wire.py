"""Wire-level helpers: snowflakes, timestamps, JSON replies and request bodies.

discord.py decodes a body as JSON only when ``Content-Type`` is exactly ``application/json``
(``http.json_or_text``); ``aiohttp.web.json_response`` appends ``; charset=utf-8``, so every reply
here is built by hand.
"""

from __future__ import annotations

import datetime
import itertools
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

JSON = dict[str, Any]

DISCORD_EPOCH_MS = 1_420_070_400_000


class Snowflakes:
    """Time-based ids like Discord's, so discord.py's ``snowflake_time`` gives today's date.

    (discord.py uses a message id's age to pick a rate-limit bucket when deleting it.)
    """

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._last = 0

    def next(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        candidate = (ms << 22) | (1 << 17) | (next(self._counter) & 0xFFF)
        # Strictly increasing, so "after this id" queries are exact even within one millisecond.
        self._last = max(candidate, self._last + 1)
        return self._last

    def at(self, when: datetime.datetime) -> int:
        """An id from the past (seeded history): worker 2, so it never equals a live id."""
        ms = int(when.timestamp() * 1000) - DISCORD_EPOCH_MS
        return (ms << 22) | (2 << 17) | (next(self._counter) & 0xFFF)


def snowflake_time(snowflake: int) -> datetime.datetime:
    """When an id was made, as Discord reads it."""
    ms = (snowflake >> 22) + DISCORD_EPOCH_MS
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)


def iso_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def json_reply(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A JSON response whose Content-Type is exactly ``application/json`` (no charset)."""
    response = web.Response(
        body=json.dumps(data).encode(), status=status, headers=dict(headers or {})
    )
    # Set after construction: aiohttp would otherwise derive a charset for us.
    response.headers["Content-Type"] = "application/json"
    return response


def no_content() -> web.Response:
    return web.Response(status=204)


def error_reply(
    status: int,
    code: int,
    message: str,
    *,
    errors: JSON | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """Discord's error body: ``{"message", "code"[, "errors"]}``."""
    body: JSON = {"message": message, "code": code}
    if errors is not None:
        body["errors"] = errors
    return json_reply(body, status, headers)


def form_error(field_path: str, error_code: str, message: str) -> web.Response:
    """400 Invalid Form Body, with Discord's nested ``_errors`` layout for one field."""
    errors: JSON = {"_errors": [{"code": error_code, "message": message}]}
    for part in reversed(field_path.split(".")):
        errors = {part: errors}
    return error_reply(400, 50035, "Invalid Form Body", errors=errors)


@dataclass
class Upload:
    """A file part of a multipart request (discord.py sends ``files[n]`` plus ``payload_json``)."""

    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class Body:
    json: Any = None
    files: list[Upload] = field(default_factory=list)


async def read_body(request: web.Request) -> Body:
    """Read a JSON or multipart (``payload_json`` + files) request body."""
    if not request.body_exists:
        return Body()
    if request.content_type == "multipart/form-data":
        body = Body()
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):  # nested multipart: never sent
                continue
            raw = await part.read()
            if part.name == "payload_json":
                body.json = json.loads(raw)
            else:
                body.files.append(
                    Upload(
                        field=part.name or "",
                        filename=part.filename or "",
                        content_type=part.headers.get("Content-Type", "application/octet-stream"),
                        data=bytes(raw),
                    )
                )
        return body
    text = await request.text()
    return Body(json=json.loads(text) if text else None)


@dataclass
class Call:
    """One routed REST request: path parameters and the decoded body."""

    request: web.Request
    method: str
    path: str
    params: dict[str, str]
    body: Body

    @property
    def json(self) -> JSON:
        return self.body.json if isinstance(self.body.json, dict) else {}

    def int(self, name: str) -> int:
        return int(self.params[name])

    @property
    def query(self) -> dict[str, str]:
        return dict(self.request.query)
