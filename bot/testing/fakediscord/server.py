"""FakeDiscord: a Discord-compatible REST + gateway server on 127.0.0.1 for end-to-end tests.

The real discord.py client talks to it over real HTTP and a real websocket; tests drive it with
:meth:`FakeDiscord.invoke_command` / :meth:`FakeDiscord.send_message` and read what the bot did
from the records (``sent_messages``, ``interaction_responses``, ``requests``...).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Self, TypeVar

from aiohttp import web

from . import components
from .commands import (
    CommandNotPermitted,
    CommandRegistry,
    InvocationError,
    build_command_data,
)
from .envelope import interaction_payload
from .gateway import INVALID_SESSION, RECONNECT, UNKNOWN_ERROR, Gateway, Identify
from .records import (
    LOADING,
    Fault,
    Heartbeat,
    InteractionAction,
    InteractionHandle,
    RecordedMessage,
    RecordedRequest,
    Signal,
)
from .rest import API_PREFIX, RestApi
from .wire import JSON, Snowflakes, error_reply
from .world import FakeUser, Intent, Perm, World, application_flags, default_world

log = logging.getLogger(__name__)

T = TypeVar("T")


class FakeDiscord:
    """One fake application, bot user and guild (see :func:`~.world.default_world`).

    ``heartbeat_interval`` (seconds) is what HELLO announces: keep it well under the client's
    ``heartbeat_timeout``, which discord.py also uses as its receive timeout. ``callback_deadline``
    is Discord's 3 s limit for the first interaction response (None disables it).
    ``privileged_intents`` are those "enabled in the developer portal"; asking for others closes
    the gateway with 4014.

    Sharding: ``GET /gateway/bot`` recommends ``recommended_shards`` and advertises
    ``max_concurrency`` IDENTIFY buckets; ``max_guilds_per_session`` (None: no limit) closes an
    IDENTIFY that would hold more guilds with 4011. Build a world of several guilds with
    ``default_world(guilds=6)``.
    """

    def __init__(
        self,
        *,
        token: str = "fake-bot-token",
        world: World | None = None,
        heartbeat_interval: float = 1.0,
        callback_deadline: float | None = 3.0,
        privileged_intents: int = Intent.PRIVILEGED,
        host: str = "127.0.0.1",
        recommended_shards: int = 1,
        max_concurrency: int = 1,
        max_guilds_per_session: int | None = None,
    ) -> None:
        self.token = token
        self.world = world or default_world()
        self.host = host
        self.port = 0
        self.callback_deadline = callback_deadline
        self.snowflakes = Snowflakes()
        self.signal = Signal()
        self.commands = CommandRegistry(self.world.application_id, self.snowflakes)
        self.internal_errors: list[str] = []  # bugs in the fake itself; fixtures fail on them
        self.gateway = Gateway(
            self.world,
            token=lambda: self.token,
            resume_url=lambda: self.resume_gateway_url,
            heartbeat_interval=heartbeat_interval,
            privileged_intents=privileged_intents,
            signal=self.signal,
            errors=self.internal_errors,
        )
        self.gateway.max_concurrency = max_concurrency
        self.gateway.max_guilds_per_session = max_guilds_per_session
        self.recommended_shards = recommended_shards
        self.rest = RestApi(self)
        self.messages: dict[int, RecordedMessage] = {}
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.interaction_responses: list[InteractionAction] = []
        self.typing: list[int] = []  # channel ids, one per typing request
        self.reactions: list[tuple[str, int, str]] = []  # (add|remove, message id, emoji)
        self._interactions: dict[int, InteractionHandle] = {}
        self._runner: web.AppRunner | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/gateway/resume", self.gateway.handle)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self.rest.handle)
        app.router.add_route("*", "/{tail:.*}", self._outside_api)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        log.info("fakediscord listening on %s", self.api_base)

    async def stop(self) -> None:
        if self._runner is None:
            return
        await self.gateway.close_all()
        await self._runner.cleanup()
        self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _outside_api(self, request: web.Request) -> web.Response:
        self.requests.append(
            RecordedRequest(request.method, request.path, dict(request.query), None, 404)
        )
        log.warning(
            "fakediscord: request outside %s: %s %s", API_PREFIX, request.method, request.path
        )
        return error_reply(404, 0, f"404: Not Found (fakediscord serves only {API_PREFIX})")

    @property
    def api_base(self) -> str:
        """For ``discord.http.Route.BASE``."""
        return f"http://{self.host}:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        """For ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`` (as a ``yarl.URL``)."""
        return f"ws://{self.host}:{self.port}/gateway"

    @property
    def resume_gateway_url(self) -> str:
        """Sent in READY; a separate path so tests can see the client resumed there."""
        return f"ws://{self.host}:{self.port}/gateway/resume"

    @property
    def privileged_intents(self) -> int:
        """The privileged intents "enabled in the developer portal": what the gateway lets a
        bot ask for, what ``GET /applications/@me`` reports in ``flags``, and whether REST
        blanks other people's message content (no MESSAGE_CONTENT) or refuses to list members
        (no GUILD_MEMBERS). Set it between tests' steps to switch an intent off or on."""
        return self.gateway.privileged_intents

    @privileged_intents.setter
    def privileged_intents(self, value: int) -> None:
        self.gateway.privileged_intents = value

    @property
    def application_flags(self) -> int:
        return application_flags(self.gateway.privileged_intents)

    # -- records --------------------------------------------------------------------------

    @property
    def sent_messages(self) -> list[RecordedMessage]:
        """Every message the bot created (channel posts, interaction replies, followups)."""
        return [m for m in self.messages.values() if m.author_id == self.world.bot.id]

    @property
    def unknown_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.route is None]

    @property
    def synced_commands(self) -> dict[int | None, list[JSON]]:
        """Scope (guild id, or None for global) -> the commands as Discord stored them."""
        return self.commands.synced

    @property
    def interactions(self) -> list[InteractionHandle]:
        return list(self._interactions.values())

    @property
    def heartbeats(self) -> list[Heartbeat]:
        return self.gateway.heartbeats

    @property
    def connection_count(self) -> int:
        return self.gateway.connection_count

    @property
    def identify_count(self) -> int:
        return self.gateway.identify_count

    @property
    def resume_count(self) -> int:
        return self.gateway.resume_count

    @property
    def identifies(self) -> list[Identify]:
        """Every accepted IDENTIFY: shard, bucket and loop time."""
        return self.gateway.identifies

    def identify_times(self) -> dict[int, list[float]]:
        """Bucket (``shard_id % max_concurrency``) -> loop times of its IDENTIFYs, in order."""
        return self.gateway.identify_times()

    def sessions_by_shard(self) -> dict[int, int]:
        """Shard id -> how many connected sessions hold it (at most 1 unless the fake is buggy)."""
        counts: dict[int, int] = {}
        for session in self.gateway.connected():
            counts[session.shard_id] = counts.get(session.shard_id, 0) + 1
        return counts

    def interaction_by_id(self, interaction_id: int) -> InteractionHandle | None:
        return self._interactions.get(interaction_id)

    def interaction_by_token(self, token: str) -> InteractionHandle | None:
        return next((h for h in self._interactions.values() if h.token == token), None)

    def assert_no_unknown_requests(self) -> None:
        unknown = [f"{r.method} {r.path}" for r in self.unknown_requests]
        assert not unknown, f"the bot called routes fakediscord does not implement: {unknown}"

    async def wait_until(
        self, predicate: Callable[[], T | None], timeout: float = 5.0, what: str = "condition"
    ) -> T:
        """Wait until ``predicate()`` is truthy; it is re-checked after every recorded event."""
        return await self.signal.wait_for(
            predicate, timeout, lambda: f"timed out waiting for {what}"
        )

    async def wait_connected(self, timeout: float = 5.0) -> None:
        """Until a bot has identified (or resumed) and holds an open gateway connection."""
        await self.wait_until(self.gateway.connected, timeout, "a connected gateway session")

    # -- fault injection ------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path_pattern: str | re.Pattern[str],
        status: int = 429,
        *,
        retry_after: float = 0.1,
        via: bool = True,
        count: int = 1,
        code: int = 0,
        message: str | None = None,
        is_global: bool = False,
        skip: int = 0,
    ) -> Fault:
        """Answer the next ``count`` matching requests with ``status`` instead of routing them.

        ``path_pattern`` is a glob over the path after the API base (``"/channels/*/messages"``,
        ``"/webhooks/*/messages/@original"``) or a compiled regex (``re.search``). For an expired
        interaction token use ``status=404, code=10015, message="Unknown Webhook"``; note that
        discord.py retries 5xx answers itself (after 1 s, 3 s, ...). ``skip`` lets that many
        matching requests through first (``skip=2``: the third page of a history fails).
        """
        fault = Fault(
            method=method.upper(),
            pattern=path_pattern,
            status=status,
            remaining=count,
            retry_after=retry_after,
            via=via,
            is_global=is_global,
            code=code,
            message=message,
            skip=skip,
        )
        self.faults.append(fault)
        return fault

    def expire_interaction(self, handle: InteractionHandle) -> None:
        """From now on its token is refused like Discord's after 15 minutes (404 10015/10062)."""
        handle.expired = True

    async def drop_gateway(
        self,
        *,
        code: int | None = UNKNOWN_ERROR,
        wait_resume: bool = True,
        timeout: float = 5.0,
        shard_id: int | None = None,
    ) -> None:
        """Close the bot's gateway socket (``code``) or cut TCP (``None``); wait for RESUME.
        ``shard_id``: only that shard's connection (default: every connection).

        4000 (default) and a cut connection are resumable; 4004 and 4010-4014 are fatal to
        discord.py, so pass ``wait_resume=False`` for those.
        """
        before = self.gateway.resume_count
        if not await self.gateway.drop(code, shard_id):
            raise RuntimeError("drop_gateway: no bot is connected to the gateway")
        if wait_resume:
            await self.wait_until(
                lambda: self.gateway.resume_count > before and self.gateway.connected(),
                timeout,
                "the bot to RESUME after drop_gateway",
            )

    def hold_gateway(self) -> None:
        """From now on a new gateway connection waits before its handshake, until
        ``release_gateway()``: the bot stays disconnected (drop it with ``wait_resume=False``)."""
        self.gateway.accepting.clear()

    def release_gateway(self) -> None:
        self.gateway.accepting.set()

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT, as Discord does before moving a session."""
        await self.gateway.send_op(RECONNECT, None)

    async def invalidate_session(
        self, *, resumable: bool = False, shard_id: int | None = None
    ) -> None:
        """Send op 9 (to ``shard_id``'s session only, when given); with ``resumable=False`` the
        client must IDENTIFY again (discord.py sleeps 5 s in ``before_identify_hook`` first)."""
        sessions = self.gateway.connected_shard(shard_id)
        if not resumable:
            for session in sessions:
                session.ended = True
        await self.gateway.send_op(INVALID_SESSION, resumable, sessions)

    # -- driving the bot ------------------------------------------------------------------

    def seed_commands(self, commands: Sequence[JSON], *, guild_id: int | None = None) -> None:
        """Pretend these commands were synced earlier (for bots that don't sync on start)."""
        self.commands.put(guild_id, commands)

    def check_visible(self, command: JSON, user: FakeUser, channel_id: int) -> int:
        """Discord hides commands a user may not use; return the user's channel permissions."""
        guild = self.world.guild_of_channel(channel_id)
        assert guild is not None
        perms = guild.channel_permissions(user.id, channel_id)
        name = command["name"]
        if not perms & Perm.USE_APPLICATION_COMMANDS:
            raise CommandNotPermitted(f"{user.username} lacks Use Application Commands here")
        contexts = command.get("contexts")
        if contexts is not None and 0 not in contexts:
            raise CommandNotPermitted(f"/{name} is not enabled in guilds (contexts={contexts})")
        required = command.get("default_member_permissions")
        if required is not None:
            needed = int(required)
            allowed = perms == Perm.ALL if needed == 0 else perms & needed == needed
            if not allowed:
                raise CommandNotPermitted(
                    f"{user.username} cannot see /{name}: default_member_permissions={needed}"
                )
        return perms

    async def invoke_command(
        self,
        name: str,
        options: Mapping[str, object] | None = None,
        *,
        channel_id: int | None = None,
        user: FakeUser | None = None,
        subcommand: str | Sequence[str] | None = None,
        locale: str = "en-US",
        validate: bool = True,
    ) -> InteractionHandle:
        """Send INTERACTION_CREATE for ``/name [group] [subcommand] options...``.

        ``name`` may contain the path ("temperature set"). The interaction is built from the
        schema the bot synced; anything Discord's client would not send raises
        :class:`~.commands.InvocationError`. Defaults: ``world.member`` in ``world.general``.
        ``validate=False`` sends option values unchecked (NaN, out of bounds, wrong type), as a
        modified client could; option and command names are still checked.
        """
        world = self.world
        parts = name.lstrip("/").split()
        if not parts:
            raise InvocationError("empty command name")
        if isinstance(subcommand, str):
            parts += subcommand.split()
        elif subcommand is not None:
            parts += list(subcommand)
        user = user or world.member
        channel_id = channel_id or world.general.id
        guild = world.guild_of_channel(channel_id) or world.guild
        member = guild.member(user.id)
        channel = guild.channel(channel_id)
        if member is None or channel is None:
            raise InvocationError(f"{user.username} / channel {channel_id} is not in the guild")
        command, scope = self.commands.find(parts[0], guild.id)
        self.check_visible(command, user, channel_id)
        data = build_command_data(
            command,
            parts[1:],
            dict(options or {}),
            guild=guild,
            scope=scope,
            invoker_id=user.id,
            validate=validate,
        )
        payload = interaction_payload(
            self, kind=2, data=data, user=user, channel_id=channel_id, locale=locale
        )
        handle = InteractionHandle(
            id=int(payload["id"]),
            token=payload["token"],
            command="/" + " ".join(parts),
            options=dict(options or {}),
            user=user,
            channel_id=channel_id,
            payload=payload,
            created_at=0.0,  # set when dispatched
            _signal=self.signal,
        )
        return await self.dispatch_interaction(handle)

    # -- components and message context menus (see components.py) -------------------------

    def prepare_press(
        self,
        message_id: int,
        label: str | None = None,
        *,
        custom_id: str | None = None,
        user: FakeUser | None = None,
    ) -> InteractionHandle:
        """A press on a bot message's button (by ``label`` or ``custom_id``), built from the
        message as it is now but not sent: build two, then send both, for a double click."""
        return components.press_interaction(
            self, message_id, label=label, custom_id=custom_id, user=user or self.world.member
        )

    async def press_button(
        self,
        message_id: int,
        label: str | None = None,
        *,
        custom_id: str | None = None,
        user: FakeUser | None = None,
    ) -> InteractionHandle:
        """Send MESSAGE_COMPONENT (type 3) for the button; default user ``world.member``."""
        handle = self.prepare_press(message_id, label, custom_id=custom_id, user=user)
        return await self.dispatch_interaction(handle)

    async def invoke_message_command(
        self, name: str, message_id: int, *, user: FakeUser | None = None
    ) -> InteractionHandle:
        """Send the message context-menu command ``name`` (Apps > name) on a message."""
        handle = components.message_command_interaction(
            self, name, message_id, user=user or self.world.member
        )
        return await self.dispatch_interaction(handle)

    async def dispatch_interaction(self, handle: InteractionHandle) -> InteractionHandle:
        """Send INTERACTION_CREATE for an interaction built but not yet sent."""
        guild_id = int(handle.payload["guild_id"])
        if not any(s.owns(guild_id) for s in self.gateway.live_sessions()):
            raise InvocationError(f"no bot session holds the shard of guild {guild_id}")
        handle.created_at = _loop_time()
        self._interactions[handle.id] = handle
        await self.gateway.dispatch("INTERACTION_CREATE", handle.payload, guild_id=guild_id)
        self.signal.notify()
        return handle

    async def send_message(
        self,
        channel_id: int,
        author: FakeUser,
        content: str,
        *,
        mentions: Iterable[FakeUser] = (),
        reply_to: int | None = None,
    ) -> int:
        """A user posts ``content``; dispatches MESSAGE_CREATE and returns the message id.

        ``mentions`` adds to the ``<@id>`` mentions found in the content; without the
        MESSAGE_CONTENT intent the bot sees the content only if it is mentioned.
        """
        guild = self.world.guild_of_channel(channel_id) or self.world.guild
        if guild.member(author.id) is None or guild.channel(channel_id) is None:
            raise InvocationError(f"{author.username} / channel {channel_id} is not in the guild")
        referenced = self.messages.get(reply_to) if reply_to is not None else None
        if reply_to is not None and referenced is None:
            raise InvocationError(f"no message {reply_to} to reply to")
        body: JSON = {"content": content}
        if reply_to is not None:
            body["message_reference"] = {"message_id": str(reply_to)}
        message = self.rest.new_message(
            channel_id=channel_id,
            author=author,
            body=body,
            call_body=None,
            via="user",
            referenced=referenced,
            extra_mentions=[u.id for u in mentions],
        )
        await self.rest.broadcast_message("MESSAGE_CREATE", message)
        self.signal.notify()
        return message.id

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
    ) -> RecordedMessage:
        """A message from the channel's past (sent ``at``), stored without any event: history
        the bot finds only through REST. Seed in time order; ``attachments`` are file names."""
        referenced = self.messages.get(reply_to) if reply_to is not None else None
        if reply_to is not None and referenced is None:
            raise InvocationError(f"no message {reply_to} to reply to")
        message_id = self.snowflakes.at(at)
        files = [
            {
                "id": str(self.snowflakes.at(at)),
                "filename": name,
                "size": 1024,
                "url": f"https://cdn.invalid/attachments/{channel_id}/{message_id}/{name}",
                "proxy_url": f"https://media.invalid/attachments/{channel_id}/{message_id}/{name}",
            }
            for name in attachments
        ]
        body: JSON = {"content": content, "embeds": list(embeds)}
        return self.rest.new_message(
            channel_id=channel_id,
            author=author,
            body=body,
            call_body=None,
            via="user",
            type_=type_,
            referenced=referenced,
            extra={"attachments": files},
            extra_mentions=[u.id for u in mentions],
            message_id=message_id,
            timestamp=at.isoformat(),
        )

    async def wait_for_message(
        self,
        channel_id: int | None = None,
        predicate: Callable[[RecordedMessage], bool] | None = None,
        *,
        after: int | None = None,
        timeout: float = 5.0,
    ) -> RecordedMessage:
        """The first message the bot posted (channel post, interaction reply or followup)
        in ``channel_id``, newer than message id ``after``, matching ``predicate``.

        Deferred "thinking..." messages match only once edited.
        """

        def find() -> RecordedMessage | None:
            for message in self.sent_messages:
                if (
                    (channel_id is None or message.channel_id == channel_id)
                    and (after is None or message.id > after)
                    and not message.deleted
                    and not message.flags & LOADING
                    and (predicate is None or predicate(message))
                ):
                    return message
            return None

        def describe() -> str:
            seen = [(m.channel_id, m.content[:60]) for m in self.sent_messages]
            return (
                f"no matching bot message in channel {channel_id}; bot messages: {seen}; "
                f"unknown routes: {[f'{r.method} {r.path}' for r in self.unknown_requests]}"
            )

        return await self.signal.wait_for(find, timeout, describe)


def _loop_time() -> float:
    return asyncio.get_running_loop().time()
