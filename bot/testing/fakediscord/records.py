"""What the fake server saw, and awaitable views of it for tests."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from .wire import JSON
from .world import FakeUser

T = TypeVar("T")
MessageVia = Literal["user", "channel", "interaction", "followup"]
ReplyKind = Literal["message", "edit", "followup", "update"]
ActionKind = Literal["callback", "edit_original", "delete_original", "followup", "edit_followup"]

EPHEMERAL = 1 << 6
LOADING = 1 << 7


class Signal:
    """Wakes waiters whenever the server records something; they re-check their predicate."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_for(
        self, predicate: Callable[[], T | None], timeout: float, describe: Callable[[], str]
    ) -> T:
        """Return the first truthy ``predicate()``; on timeout say what was waited for."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    result = predicate()
                    if result:
                        return result
                    # Also re-check now and then, for predicates on the bot's own state.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.05):
                            await self._event.wait()
        except TimeoutError:
            raise TimeoutError(f"after {timeout:g}s: {describe()}") from None


@dataclass
class RecordedRequest:
    method: str
    path: str  # relative to the API base, e.g. "/channels/1/messages"
    query: dict[str, str]
    json: Any
    status: int = 0
    route: str | None = None  # the handler's name; None for unknown routes
    files: list[str] = field(default_factory=list)


@dataclass
class Fault:
    """One injected failure; ``remaining`` counts down, ``hits`` counts matches; the first
    ``skip`` matching requests go through untouched (a 429 on the third page: ``skip=2``)."""

    method: str
    pattern: str | re.Pattern[str]
    status: int
    remaining: int
    retry_after: float = 0.1
    via: bool = True
    is_global: bool = False
    code: int = 0
    message: str | None = None
    hits: int = 0
    skip: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.remaining <= 0 or self.method not in ("*", method):
            return False
        if isinstance(self.pattern, re.Pattern):
            return self.pattern.search(path) is not None
        return fnmatch.fnmatchcase(path, self.pattern)


@dataclass
class Heartbeat:
    session_id: str | None
    sequence: int | None
    at: float  # loop time


@dataclass
class RecordedMessage:
    """A message in the fake's store; ``payload`` is what REST/gateway return for it."""

    id: int
    channel_id: int
    author_id: int
    payload: JSON
    via: MessageVia
    request: JSON | None = None  # the bot's create request body, as sent
    edits: list[JSON] = field(default_factory=list)  # the bot's edit request bodies
    pings: frozenset[int] = frozenset()  # user ids Discord would notify, per allowed_mentions
    pings_everyone: bool = False
    files: list[str] = field(default_factory=list)
    deleted: bool = False
    interaction_id: int | None = None

    @property
    def content(self) -> str:
        return str(self.payload.get("content", ""))

    @property
    def flags(self) -> int:
        return int(self.payload.get("flags", 0))

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def allowed_mentions(self) -> JSON | None:
        """From the latest request (create or edit) that set it; None if never sent."""
        for body in [*reversed(self.edits), self.request or {}]:
            if "allowed_mentions" in body:
                value: JSON | None = body["allowed_mentions"]
                return value
        return None

    @property
    def message_reference(self) -> JSON | None:
        return (self.request or {}).get("message_reference")

    @property
    def embeds(self) -> list[JSON]:
        return list(self.payload.get("embeds", []))


@dataclass(frozen=True)
class Reply:
    """One visible answer to an interaction: its first message, an edit, a followup, or the
    update of a component's message (UPDATE_MESSAGE)."""

    kind: ReplyKind
    content: str | None
    flags: int
    allowed_mentions: JSON | None
    embeds: list[JSON]
    message_id: int
    request: JSON
    at: float = 0.0  # loop time when the server recorded it

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)


@dataclass
class InteractionAction:
    """One request the bot made about an interaction (``server.interaction_responses``)."""

    interaction_id: int
    action: ActionKind
    type: int | None  # the callback type (4 message, 5 deferred, 9 modal...) for callbacks
    data: JSON | None


@dataclass
class InteractionHandle:
    """An interaction the test sent; await its replies."""

    id: int
    token: str
    command: str  # "/name sub" as typed
    options: dict[str, object]
    user: FakeUser
    channel_id: int
    payload: JSON  # the INTERACTION_CREATE ``d``
    created_at: float  # loop time
    _signal: Signal
    callback_type: int | None = None
    callback_data: JSON | None = None
    original_message_id: int | None = None
    replies: list[Reply] = field(default_factory=list)
    actions: list[InteractionAction] = field(default_factory=list)
    expired: bool = False
    error: str | None = None  # set when the fake refused a response (e.g. too late)
    type: int = 2  # 2 application command (slash or context menu), 3 message component
    message_id: int | None = None  # a component interaction's message (the one pressed on)

    @property
    def responded(self) -> bool:
        return self.callback_type is not None

    @property
    def deferred(self) -> bool:
        return self.callback_type == 5

    def _describe(self) -> str:
        actions = [(a.action, a.type) for a in self.actions]
        note = f"; refused: {self.error}" if self.error else ""
        return f"no reply to {self.command} (interaction {self.id}); actions: {actions}{note}"

    async def wait_response(self, timeout: float = 5.0) -> Reply:
        """The first visible answer: a type-4 callback, or the edit/followup after a defer."""
        return await self._signal.wait_for(
            lambda: self.replies[0] if self.replies else None, timeout, self._describe
        )

    async def wait_replies(self, count: int, timeout: float = 5.0) -> list[Reply]:
        return await self._signal.wait_for(
            lambda: list(self.replies[:count]) if len(self.replies) >= count else None,
            timeout,
            self._describe,
        )

    async def wait_idle(self, quiet: float = 0.2, timeout: float = 5.0) -> Reply:
        """The latest reply once none arrived for ``quiet`` seconds (for streamed edits)."""
        async with asyncio.timeout(timeout):
            await self.wait_response(timeout)
            while True:
                seen = len(self.replies)
                await asyncio.sleep(quiet)
                if len(self.replies) == seen:
                    return self.replies[-1]
