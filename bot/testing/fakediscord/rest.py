"""The REST API under ``/api/v10``: one routing table, every request recorded.

Unknown routes answer 404 JSON and are kept in ``server.unknown_requests`` so a test can assert
the bot only used what the fake implements. Injected faults (``server.fail_next``) answer before
routing, with the headers discord.py needs to treat a 429 as retryable (``Via``).
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from .commands import SchemaError
from .interaction_routes import InteractionRoutes
from .messages import (
    SETTABLE_FLAGS,
    apply_edit,
    attachment_payloads,
    compute_pings,
    gate_content,
    gateway_view,
    message_payload,
    validate_body,
)
from .records import (
    EPHEMERAL,
    Fault,
    MessageVia,
    RecordedMessage,
    RecordedRequest,
)
from .surface import Server
from .wire import JSON, Body, Call, error_reply, form_error, json_reply, no_content, read_body
from .world import ChannelType, FakeChannel, FakeGuild, FakeUser, Intent, Perm, application_flags

log = logging.getLogger(__name__)

API_PREFIX = "/api/v10"


Handler = Callable[[Call], Awaitable[web.Response]]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    name: str
    auth: bool


def _compile(template: str) -> re.Pattern[str]:
    """'/channels/{channel_id}/messages' -> a regex with named groups; ``*_id`` are digits."""

    def group(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"(?P<{name}>{'[0-9]+' if name.endswith('_id') else '[^/]+'})"

    regex = re.sub(r"\{(\w+)\}", group, template)
    return re.compile(f"^{regex}$")


class RestApi:
    def __init__(self, server: Server) -> None:
        self.s = server
        self.routes: list[Route] = []
        r = self._route
        r("GET", "/users/@me", self.get_me)
        r("GET", "/users/{user_id}", self.get_user)
        r("GET", "/oauth2/applications/@me", self.get_application)
        r("GET", "/applications/@me", self.get_application)
        r("GET", "/gateway", self.get_gateway, auth=False)
        r("GET", "/gateway/bot", self.get_gateway_bot)
        r("GET", "/applications/{app_id}/emojis", self.list_app_emojis)
        for scope in ("/applications/{app_id}", "/applications/{app_id}/guilds/{guild_id}"):
            r("GET", scope + "/commands", self.list_commands)
            r("PUT", scope + "/commands", self.put_commands)
            r("POST", scope + "/commands", self.upsert_command)
            r("GET", scope + "/commands/permissions", self.list_command_permissions)
            r("GET", scope + "/commands/{command_id}", self.get_command)
            r("PATCH", scope + "/commands/{command_id}", self.edit_command)
            r("DELETE", scope + "/commands/{command_id}", self.delete_command)
        r("GET", "/guilds/{guild_id}", self.get_guild)
        r("GET", "/guilds/{guild_id}/channels", self.get_guild_channels)
        r("GET", "/guilds/{guild_id}/roles", self.get_guild_roles)
        r("GET", "/guilds/{guild_id}/members", self.list_members)
        r("GET", "/guilds/{guild_id}/members/{user_id}", self.get_member)
        r("GET", "/guilds/{guild_id}/threads/active", self.active_threads)
        r("GET", "/channels/{channel_id}/threads/archived/public", self.archived_public_threads)
        r("GET", "/channels/{channel_id}", self.get_channel)
        r("GET", "/channels/{channel_id}/messages", self.list_messages)
        r("POST", "/channels/{channel_id}/messages", self.create_message)
        r("GET", "/channels/{channel_id}/messages/{message_id}", self.get_message)
        r("PATCH", "/channels/{channel_id}/messages/{message_id}", self.edit_message)
        r("DELETE", "/channels/{channel_id}/messages/{message_id}", self.delete_message)
        r("POST", "/channels/{channel_id}/typing", self.typing)
        reaction = "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me"
        r("PUT", reaction, self.add_reaction)
        r("DELETE", reaction, self.remove_reaction)
        ia = InteractionRoutes(server, self)
        r("POST", "/interactions/{interaction_id}/{token}/callback", ia.callback, auth=False)
        hook = "/webhooks/{app_id}/{token}"
        r("POST", hook, ia.create_followup, auth=False)
        # {message} is a message id or "@original".
        r("GET", hook + "/messages/{message}", ia.get_message, auth=False)
        r("PATCH", hook + "/messages/{message}", ia.edit_message, auth=False)
        r("DELETE", hook + "/messages/{message}", ia.delete_message, auth=False)

    def _route(self, method: str, template: str, handler: Handler, *, auth: bool = True) -> None:
        self.routes.append(Route(method, _compile(template), handler, template, auth))

    # -- entry point ----------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path[len(API_PREFIX) :] or "/"
        try:
            body = await read_body(request)
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = Body(json=None)
            record = RecordedRequest(request.method, path, dict(request.query), None)
            return self._finish(
                record, error_reply(400, 50109, "The request body contains invalid JSON.")
            )
        record = RecordedRequest(
            request.method,
            path,
            dict(request.query),
            body.json,
            files=[f.filename for f in body.files],
        )
        fault = next((f for f in self.s.faults if f.matches(request.method, path)), None)
        if fault is not None and fault.skip > 0:
            fault.skip -= 1  # this one goes through: the fault is for a later request
            fault = None
        if fault is not None:
            fault.remaining -= 1
            fault.hits += 1
            record.route = "fault"
            log.info("injecting %s for %s %s", fault.status, request.method, path)
            return self._finish(record, self._fault_response(fault))

        route, params, allowed = self._match(request.method, path)
        if route is None:
            record.route = None
            status, text = (405, "405: Method Not Allowed") if allowed else (404, "404: Not Found")
            log.warning("fakediscord: unknown route %s %s", request.method, path)
            message = f"{text} (fakediscord has no route {request.method} {path})"
            return self._finish(record, error_reply(status, 0, message))
        record.route = route.name
        if route.auth and request.headers.get("Authorization") != f"Bot {self.s.token}":
            return self._finish(record, error_reply(401, 0, "401: Unauthorized"))
        call = Call(request, request.method, path, params, body)
        try:
            response = await route.handler(call)
        except Exception as exc:  # a bug in the fake: fail fast (a 5xx makes discord.py retry)
            log.exception("fakediscord: handler %s failed", route.name)
            self.s.internal_errors.append(f"{request.method} {path}: {exc!r}")
            response = error_reply(400, 0, f"fakediscord internal error: {exc!r}")
        return self._finish(record, response, bucket=route.name)

    def _match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        path_known = False
        for route in self.routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            path_known = True
            if route.method == method:
                return route, found.groupdict(), True
        return None, {}, path_known

    def _finish(
        self, record: RecordedRequest, response: web.Response, *, bucket: str | None = None
    ) -> web.Response:
        record.status = response.status
        self.s.requests.append(record)
        if bucket is not None and response.status != 429:
            # Plenty left: discord.py never pre-emptively sleeps on our buckets.
            response.headers.update(
                {
                    "X-RateLimit-Bucket": f"{zlib.crc32(bucket.encode()):08x}",
                    "X-RateLimit-Limit": "50",
                    "X-RateLimit-Remaining": "49",
                    "X-RateLimit-Reset-After": "1.000",
                    "X-RateLimit-Reset": f"{time.time() + 1:.3f}",
                }
            )
        log.debug("%s %s -> %s", record.method, record.path, record.status)
        self.s.signal.notify()
        return response

    @staticmethod
    def _fault_response(fault: Fault) -> web.Response:
        headers: dict[str, str] = {}
        if fault.status == 429:
            headers = {
                "Retry-After": str(max(1, round(fault.retry_after))),
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset-After": f"{fault.retry_after:.3f}",
                "X-RateLimit-Reset": f"{time.time() + fault.retry_after:.3f}",
                "X-RateLimit-Bucket": "fault",
                "X-RateLimit-Scope": "global" if fault.is_global else "user",
            }
            if fault.is_global:
                headers["X-RateLimit-Global"] = "true"
            if fault.via:
                # discord.py retries a 429 only when it came through Discord's proxy.
                headers["Via"] = "1.1 google"
            body: JSON = {
                "message": fault.message or "You are being rate limited.",
                "retry_after": fault.retry_after,
                "global": fault.is_global,
                "code": fault.code,
            }
            return json_reply(body, 429, headers)
        default = {401: "401: Unauthorized", 403: "Missing Permissions", 404: "404: Not Found"}
        message = fault.message or default.get(fault.status, f"{fault.status}: Server Error")
        return error_reply(fault.status, fault.code, message)

    # -- helpers --------------------------------------------------------------------------

    def _check_app(self, call: Call) -> web.Response | None:
        if call.params.get("app_id") != str(self.s.world.application_id):
            return error_reply(404, 10002, "Unknown Application")
        guild_id = call.params.get("guild_id")
        if guild_id is not None and self.s.world.guild_by_id(int(guild_id)) is None:
            return error_reply(403, 50001, "Missing Access")
        return None

    def _scope(self, call: Call) -> int | None:
        guild_id = call.params.get("guild_id")
        return int(guild_id) if guild_id is not None else None

    def channel_guild(self, channel_id: int) -> FakeGuild:
        guild = self.s.world.guild_of_channel(channel_id)
        assert guild is not None, f"channel {channel_id} is in no guild"
        return guild

    def _channel_or_error(self, call: Call) -> web.Response | None:
        guild = self.s.world.guild_of_channel(call.int("channel_id"))
        if guild is None:
            return error_reply(404, 10003, "Unknown Channel")
        perms = guild.channel_permissions(self.s.world.bot.id, call.int("channel_id"))
        if not perms & Perm.VIEW_CHANNEL:
            return error_reply(403, 50001, "Missing Access")
        return None

    def _message_in(self, call: Call) -> RecordedMessage | None:
        message = self.s.messages.get(int(call.params["message_id"]))
        if message is None or message.deleted or message.channel_id != call.int("channel_id"):
            return None
        if message.ephemeral:
            return None  # ephemeral messages are invisible to channel routes
        return message

    async def broadcast_message(self, event: str, message: RecordedMessage) -> None:
        """MESSAGE_CREATE/UPDATE to the guild's shard if it has GUILD_MESSAGES, content gated
        like Discord."""
        if message.ephemeral:
            return
        world = self.s.world
        guild = self.channel_guild(message.channel_id)
        data = gateway_view(message.payload, guild=guild)
        await self.s.gateway.dispatch(
            event,
            data,
            intent=Intent.GUILD_MESSAGES,
            guild_id=guild.id,
            transform=lambda session, d: gate_content(session.intents, d, bot_id=world.bot.id),
        )

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
    ) -> RecordedMessage:
        """Store a new message; ``body`` is the create request (bot) or the test's content.

        ``message_id`` and ``timestamp`` place a seeded message in the past (the id's time)."""
        world = self.s.world
        guild = self.channel_guild(channel_id)
        files = call_body.files if call_body else []
        replied = referenced.author_id if referenced else None
        pings, everyone = compute_pings(
            str(body.get("content") or ""),
            body.get("allowed_mentions"),
            guild=guild,
            replied_user=replied,
        )
        pings |= frozenset(extra_mentions)
        message_id = message_id or self.s.snowflakes.next()
        payload = message_payload(
            message_id=message_id,
            channel_id=channel_id,
            guild=guild,
            author=author,
            body=body,
            mentions=pings,
            mention_everyone=everyone,
            attachments=attachment_payloads(
                files, (self.s.snowflakes.next() for _ in files), channel_id
            ),
            referenced=referenced,
            flags=flags,
            type_=type_,
            timestamp=timestamp,
        )
        payload.update(extra or {})
        message = RecordedMessage(
            id=message_id,
            channel_id=channel_id,
            author_id=author.id,
            payload=payload,
            via=via,
            request=body if author.id == world.bot.id else None,
            pings=pings,
            pings_everyone=everyone,
            files=[f.filename for f in files],
            interaction_id=interaction_id,
        )
        self.s.messages[message_id] = message
        return message

    # -- users, application, gateway ------------------------------------------------------

    async def get_me(self, call: Call) -> web.Response:
        user = self.s.world.bot.payload() | {"verified": True, "mfa_enabled": False, "flags": 0}
        return json_reply(user)

    async def get_user(self, call: Call) -> web.Response:
        user = self.s.world.user(call.int("user_id"))
        if user is None:
            return error_reply(404, 10013, "Unknown User")
        return json_reply(user.payload())

    async def get_application(self, call: Call) -> web.Response:
        world = self.s.world
        return json_reply(
            {
                "id": str(world.application_id),
                "name": world.bot.username,
                "icon": None,
                "description": "fakediscord application",
                "summary": "",
                "type": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                # The privileged intents enabled "in the portal" (server.privileged_intents).
                "flags": application_flags(self.s.gateway.privileged_intents),
                "owner": world.owner.payload(),
                "team": None,
                "bot": world.bot.payload(),
                "redirect_uris": [],
                "interactions_endpoint_url": None,  # set: discord.py warns, gets no interactions
                "approximate_guild_count": len(world.guilds),
                "integration_types_config": {"0": {}},
            }
        )

    async def get_gateway(self, call: Call) -> web.Response:
        return json_reply({"url": self.s.gateway_url})

    async def get_gateway_bot(self, call: Call) -> web.Response:
        return json_reply(
            {
                "url": self.s.gateway_url,
                "shards": self.s.recommended_shards,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 1000 - self.s.gateway.identify_count,
                    "reset_after": 86_400_000,
                    "max_concurrency": self.s.gateway.max_concurrency,
                },
            }
        )

    async def list_app_emojis(self, call: Call) -> web.Response:
        return self._check_app(call) or json_reply({"items": []})

    # -- application commands -------------------------------------------------------------

    async def list_commands(self, call: Call) -> web.Response:
        return self._check_app(call) or json_reply(self.s.commands.commands_in(self._scope(call)))

    async def put_commands(self, call: Call) -> web.Response:
        if (error := self._check_app(call)) is not None:
            return error
        if not isinstance(call.body.json, list):
            return form_error("_", "LIST_TYPE_CONVERT", "Must be an array.")
        try:
            stored = self.s.commands.put(self._scope(call), call.body.json)
        except SchemaError as exc:
            log.warning("fakediscord: refused command sync: %s", exc)
            return form_error(exc.field or "_", "APPLICATION_COMMAND_INVALID", exc.message)
        log.info("synced %d command(s) for scope %s", len(stored), self._scope(call))
        return json_reply(stored)

    async def upsert_command(self, call: Call) -> web.Response:
        if (error := self._check_app(call)) is not None:
            return error
        try:
            return json_reply(self.s.commands.upsert(self._scope(call), call.json), 201)
        except SchemaError as exc:
            return form_error(exc.field or "_", "APPLICATION_COMMAND_INVALID", exc.message)

    async def list_command_permissions(self, call: Call) -> web.Response:
        return self._check_app(call) or json_reply([])

    async def get_command(self, call: Call) -> web.Response:
        if (error := self._check_app(call)) is not None:
            return error
        found = self.s.commands.get(self._scope(call), call.int("command_id"))
        return (
            json_reply(found) if found else error_reply(404, 10063, "Unknown application command")
        )

    async def edit_command(self, call: Call) -> web.Response:
        if (error := self._check_app(call)) is not None:
            return error
        try:
            found = self.s.commands.edit(self._scope(call), call.int("command_id"), call.json)
        except SchemaError as exc:
            return form_error(exc.field or "_", "APPLICATION_COMMAND_INVALID", exc.message)
        return (
            json_reply(found) if found else error_reply(404, 10063, "Unknown application command")
        )

    async def delete_command(self, call: Call) -> web.Response:
        if (error := self._check_app(call)) is not None:
            return error
        if self.s.commands.delete(self._scope(call), call.int("command_id")):
            return no_content()
        return error_reply(404, 10063, "Unknown application command")

    # -- guild ----------------------------------------------------------------------------

    def _guild(self, call: Call) -> FakeGuild:
        guild = self.s.world.guild_by_id(call.int("guild_id"))
        assert guild is not None, "call _guild_or_error first"
        return guild

    def _guild_or_error(self, call: Call) -> web.Response | None:
        if self.s.world.guild_by_id(call.int("guild_id")) is None:
            return error_reply(404, 10004, "Unknown Guild")
        return None

    async def get_guild(self, call: Call) -> web.Response:
        if (error := self._guild_or_error(call)) is not None:
            return error
        data = self._guild(call).payload(members=[])
        for key in ("members", "channels", "threads", "presences", "voice_states", "joined_at"):
            data.pop(key, None)
        return json_reply(data)

    async def get_guild_channels(self, call: Call) -> web.Response:
        if (error := self._guild_or_error(call)) is not None:
            return error
        guild = self._guild(call)
        return json_reply([guild.channel_payload(c) for c in guild.channels])

    async def get_guild_roles(self, call: Call) -> web.Response:
        if (error := self._guild_or_error(call)) is not None:
            return error
        return json_reply([r.payload() for r in self._guild(call).roles])

    async def list_members(self, call: Call) -> web.Response:
        if (error := self._guild_or_error(call)) is not None:
            return error
        if not self.s.gateway.privileged_intents & Intent.GUILD_MEMBERS:
            return error_reply(403, 50001, "Missing Access")  # needs the Server Members intent
        limit = int(call.query.get("limit", "1"))
        if not 1 <= limit <= 1000:
            return form_error("limit", "NUMBER_TYPE_MAX", "int value should be from 1 to 1000.")
        after = int(call.query.get("after", "0"))
        members = sorted(self._guild(call).members, key=lambda m: m.user.id)
        return json_reply([m.payload() for m in members if m.user.id > after][:limit])

    async def get_member(self, call: Call) -> web.Response:
        if (error := self._guild_or_error(call)) is not None:
            return error
        member = self._guild(call).member(call.int("user_id"))
        if member is None:
            return error_reply(404, 10007, "Unknown Member")
        return json_reply(member.payload())

    # -- channels and messages ------------------------------------------------------------

    async def get_channel(self, call: Call) -> web.Response:
        if (error := self._channel_or_error(call)) is not None:
            return error
        guild = self.channel_guild(call.int("channel_id"))
        channel = guild.channel(call.int("channel_id"))
        assert channel is not None
        return json_reply(guild.channel_payload(channel))

    def _readable(self, call: Call) -> web.Response | None:
        """Reading messages needs Read Message History; a forum or category has none."""
        if (error := self._channel_or_error(call)) is not None:
            return error
        channel_id = call.int("channel_id")
        guild = self.channel_guild(channel_id)
        if not guild.channel_permissions(self.s.world.bot.id, channel_id) & (
            Perm.READ_MESSAGE_HISTORY
        ):
            return error_reply(403, 50001, "Missing Access")
        channel = guild.channel(channel_id)
        if channel is not None and channel.type in (ChannelType.FORUM, ChannelType.CATEGORY):
            return error_reply(400, 50024, "Cannot execute action on this channel type")
        return None

    def rest_view(self, message: RecordedMessage) -> JSON:
        """A message as REST returns it: content blanked, as Discord does, unless the
        application has the Message Content intent (the bot's own messages and those mentioning
        it keep theirs)."""
        return gate_content(
            self.s.gateway.privileged_intents, message.payload, bot_id=self.s.world.bot.id
        )

    async def list_messages(self, call: Call) -> web.Response:
        """Discord's paging: newest first always; ``before`` (or nothing) gives the newest
        ``limit`` before the id, ``after`` the oldest ``limit`` after it (still newest first),
        ``around`` half each side."""
        if (error := self._readable(call)) is not None:
            return error
        try:
            limit = int(call.query.get("limit", "50"))
        except ValueError:
            return form_error("limit", "NUMBER_TYPE_COERCE", "Value is not int.")
        if not 1 <= limit <= 100:
            return form_error("limit", "NUMBER_TYPE_MAX", "int value should be from 1 to 100.")
        channel_id = call.int("channel_id")
        found = sorted(
            (
                m
                for m in self.s.messages.values()
                if m.channel_id == channel_id and not m.deleted and not m.ephemeral
            ),
            key=lambda m: m.id,
        )
        if "after" in call.query:
            after = int(call.query["after"])
            page = [m for m in found if m.id > after][:limit]
        elif "around" in call.query:
            around = int(call.query["around"])
            older = [m for m in found if m.id < around][-(limit // 2) :] if limit > 1 else []
            rest = [m for m in found if m.id >= around]
            page = older + rest[: limit - len(older)]
        else:
            before = int(call.query.get("before", str(1 << 63)))
            page = [m for m in found if m.id < before][-limit:]
        return json_reply([self.rest_view(m) for m in reversed(page)])

    async def get_message(self, call: Call) -> web.Response:
        if (error := self._readable(call)) is not None:
            return error
        message = self._message_in(call)
        if message is None:
            return error_reply(404, 10008, "Unknown Message")
        return json_reply(self.rest_view(message))

    # -- threads --------------------------------------------------------------------------

    def _visible_thread(self, guild: FakeGuild, thread: FakeChannel) -> bool:
        return bool(guild.channel_permissions(self.s.world.bot.id, thread.id) & Perm.VIEW_CHANNEL)

    async def active_threads(self, call: Call) -> web.Response:
        """Every unarchived thread of the guild the bot can see, a forum's posts included."""
        if (error := self._guild_or_error(call)) is not None:
            return error
        guild = self._guild(call)
        threads = [
            guild.channel_payload(t)
            for t in guild.threads
            if not t.archived and self._visible_thread(guild, t)
        ]
        return json_reply({"threads": threads, "members": []})

    async def archived_public_threads(self, call: Call) -> web.Response:
        """The channel's archived public threads, latest archived first, ``before`` an ISO8601
        archive timestamp; ``has_more`` says another page exists."""
        if (error := self._channel_or_error(call)) is not None:
            return error
        channel_id = call.int("channel_id")
        guild = self.channel_guild(channel_id)
        if not guild.channel_permissions(self.s.world.bot.id, channel_id) & (
            Perm.READ_MESSAGE_HISTORY
        ):
            return error_reply(403, 50001, "Missing Access")
        limit = int(call.query.get("limit", "50"))
        if not 2 <= limit <= 100:
            return form_error("limit", "NUMBER_TYPE_MAX", "int value should be from 2 to 100.")
        archived = sorted(
            (
                t
                for t in guild.threads
                if t.parent_id == channel_id and t.archived and t.type != ChannelType.PRIVATE_THREAD
            ),
            key=lambda t: (_iso_time(t.archive_timestamp), t.id),
            reverse=True,
        )
        if "before" in call.query:
            before = _iso_time(call.query["before"])
            archived = [t for t in archived if _iso_time(t.archive_timestamp) < before]
        page = archived[:limit]
        return json_reply(
            {
                "threads": [guild.channel_payload(t) for t in page],
                "members": [],
                "has_more": len(archived) > limit,
            }
        )

    async def create_message(self, call: Call) -> web.Response:
        if (error := self._channel_or_error(call)) is not None:
            return error
        world, channel_id = self.s.world, call.int("channel_id")
        perms = self.channel_guild(channel_id).channel_permissions(world.bot.id, channel_id)
        if not perms & Perm.SEND_MESSAGES or (call.body.files and not perms & Perm.ATTACH_FILES):
            return error_reply(403, 50013, "Missing Permissions")
        body = call.json
        if (error := validate_body(body, call.body.files, creating=True)) is not None:
            return error
        referenced = None
        reference = body.get("message_reference")
        if reference:
            referenced = self.s.messages.get(int(reference.get("message_id", 0)))
            if referenced is None or referenced.deleted:
                referenced = None
                if reference.get("fail_if_not_exists", True):
                    return form_error(
                        "message_reference",
                        "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
                        "Unknown message",
                    )
        flags = int(body.get("flags") or 0) & SETTABLE_FLAGS & ~EPHEMERAL
        message = self.new_message(
            channel_id=channel_id,
            author=world.bot,
            body=body,
            call_body=call.body,
            via="channel",
            flags=flags,
            referenced=referenced,
        )
        await self.broadcast_message("MESSAGE_CREATE", message)
        return json_reply(message.payload)

    async def edit_message(self, call: Call) -> web.Response:
        if (error := self._channel_or_error(call)) is not None:
            return error
        message = self._message_in(call)
        if message is None:
            return error_reply(404, 10008, "Unknown Message")
        if message.author_id != self.s.world.bot.id:
            return error_reply(403, 50005, "Cannot edit a message authored by another user")
        if (error := validate_body(call.json, call.body.files, creating=False)) is not None:
            return error
        apply_edit(message, call.json, guild=self.channel_guild(message.channel_id))
        await self.broadcast_message("MESSAGE_UPDATE", message)
        return json_reply(message.payload)

    async def delete_message(self, call: Call) -> web.Response:
        if (error := self._channel_or_error(call)) is not None:
            return error
        message = self._message_in(call)
        if message is None:
            return error_reply(404, 10008, "Unknown Message")
        world = self.s.world
        guild = self.channel_guild(message.channel_id)
        perms = guild.channel_permissions(world.bot.id, message.channel_id)
        if message.author_id != world.bot.id and not perms & Perm.MANAGE_MESSAGES:
            return error_reply(403, 50013, "Missing Permissions")
        await self.delete(message)
        return no_content()

    async def delete(self, message: RecordedMessage) -> None:
        message.deleted = True
        if not message.ephemeral:
            guild = self.channel_guild(message.channel_id)
            data = {
                "id": str(message.id),
                "channel_id": str(message.channel_id),
                "guild_id": str(guild.id),
            }
            await self.s.gateway.dispatch(
                "MESSAGE_DELETE", data, intent=Intent.GUILD_MESSAGES, guild_id=guild.id
            )

    async def typing(self, call: Call) -> web.Response:
        if (error := self._channel_or_error(call)) is not None:
            return error
        self.s.typing.append(call.int("channel_id"))
        return no_content()

    async def add_reaction(self, call: Call) -> web.Response:
        return await self._react(call, "add")

    async def remove_reaction(self, call: Call) -> web.Response:
        return await self._react(call, "remove")

    async def _react(self, call: Call, action: str) -> web.Response:
        if (error := self._channel_or_error(call)) is not None:
            return error
        message = self._message_in(call)
        if message is None:
            return error_reply(404, 10008, "Unknown Message")
        self.s.reactions.append((action, message.id, call.params["emoji"]))
        return no_content()


def _iso_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)
