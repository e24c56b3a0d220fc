"""What the route modules see of the server.

`server.FakeDiscord` builds the REST routes (`rest`, `interaction_routes`), the components and
the seeded history, and hands itself to them. They are typed against these protocols, not the
class, so that `server` is the only module that knows the whole server and imports the others:
no import cycle, not even a type-only one (tests/test_imports.py).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Protocol

from .commands import CommandRegistry
from .gateway import Gateway
from .records import (
    Fault,
    InteractionAction,
    InteractionHandle,
    MessageVia,
    RecordedMessage,
    RecordedRequest,
    Signal,
)
from .wire import JSON, Body, Snowflakes
from .world import FakeGuild, FakeUser, World


class MessageRoutes(Protocol):
    """The message side of the REST API, as the interaction routes and components use it."""

    def channel_guild(self, channel_id: int) -> FakeGuild: ...

    def new_message(
        self,
        *,
        channel_id: int,
        author: FakeUser,
        body: JSON,
        call_body: Body | None,
        via: MessageVia,
        flags: int = 0,
        type_: int | None = None,
        referenced: RecordedMessage | None = None,
        extra: JSON | None = None,
        interaction_id: int | None = None,
        extra_mentions: Iterable[int] = (),
        message_id: int | None = None,
        timestamp: str | None = None,
    ) -> RecordedMessage: ...

    async def broadcast_message(self, event: str, message: RecordedMessage) -> None: ...

    async def delete(self, message: RecordedMessage) -> None: ...


class Server(Protocol):
    """The server's state and the few helpers the routes share with it."""

    @property
    def token(self) -> str: ...
    @property
    def world(self) -> World: ...
    @property
    def snowflakes(self) -> Snowflakes: ...
    @property
    def signal(self) -> Signal: ...
    @property
    def commands(self) -> CommandRegistry: ...
    @property
    def gateway(self) -> Gateway: ...
    @property
    def gateway_url(self) -> str: ...
    @property
    def callback_deadline(self) -> float | None: ...
    @property
    def recommended_shards(self) -> int: ...
    @property
    def rest(self) -> MessageRoutes: ...
    @property
    def messages(self) -> dict[int, RecordedMessage]: ...
    @property
    def requests(self) -> list[RecordedRequest]: ...
    @property
    def faults(self) -> list[Fault]: ...
    @property
    def interaction_responses(self) -> list[InteractionAction]: ...
    @property
    def typing(self) -> list[int]: ...
    @property
    def reactions(self) -> list[tuple[str, int, str]]: ...
    @property
    def internal_errors(self) -> list[str]: ...

    def interaction_by_id(self, interaction_id: int) -> InteractionHandle | None: ...

    def interaction_by_token(self, token: str) -> InteractionHandle | None: ...

    def check_visible(self, command: JSON, user: FakeUser, channel_id: int) -> int: ...

    def seed_message(
        self,
        channel_id: int,
        author: FakeUser,
        content: str = "",
        *,
        at: datetime.datetime,
        type_: int | None = None,
        mentions: Iterable[FakeUser] = (),
        reply_to: int | None = None,
        attachments: Iterable[str] = (),
        embeds: Iterable[JSON] = (),
    ) -> RecordedMessage: ...
