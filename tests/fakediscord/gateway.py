"""The gateway websocket: HELLO, IDENTIFY/READY, heartbeats, dispatch, RESUME with replay.

Frames are plain JSON text even though discord.py asks for ``compress=zlib-stream``: it only
inflates binary frames. Sessions outlive their connection so a dropped client can RESUME and
receive what it missed, with the sequence numbers it would have seen.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from .records import Heartbeat, Signal
from .wire import JSON
from .world import Intent, World

log = logging.getLogger(__name__)

DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE, VOICE_STATE = 0, 1, 2, 3, 4
RESUME, RECONNECT, REQUEST_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 6, 7, 8, 9, 10, 11

# Close codes the client treats as resumable vs. fatal (discord.py gateway._can_handle_close).
UNKNOWN_ERROR, UNKNOWN_OPCODE, NOT_AUTHENTICATED, AUTHENTICATION_FAILED = 4000, 4001, 4003, 4004
ALREADY_AUTHENTICATED, DISALLOWED_INTENTS = 4005, 4014


@dataclass
class Session:
    id: str
    intents: int
    shard: list[int] | None
    seq: int = 0
    log: list[tuple[int, str]] = field(default_factory=list)  # (seq, frame) for replay
    ws: web.WebSocketResponse | None = None
    transport: asyncio.Transport | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ended: bool = False  # closed by the client with 1000/1001: no resume

    def has(self, intent: int) -> bool:
        return bool(self.intents & intent)


class Gateway:
    def __init__(
        self,
        world: World,
        *,
        token: Callable[[], str],
        resume_url: Callable[[], str],
        heartbeat_interval: float,
        privileged_intents: int,
        signal: Signal,
        errors: list[str],
    ) -> None:
        self._world = world
        self._token = token
        self._resume_url = resume_url
        self.heartbeat_interval = heartbeat_interval
        self.privileged_intents = privileged_intents
        self.ack_heartbeats = True  # False simulates a zombie connection
        self._signal = signal
        self.sessions: dict[str, Session] = {}
        self.heartbeats: list[Heartbeat] = []
        self.received: list[JSON] = []  # client payloads, tokens redacted
        self.presences: list[JSON] = []
        self.connection_count = 0
        self.identify_count = 0
        self.resume_count = 0
        self.invalid_resumes = 0
        self.internal_errors = errors
        self._sockets: set[web.WebSocketResponse] = set()
        self._tasks: set[asyncio.Task[bool]] = set()

    # -- connection -----------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        # timeout: how long close() waits for the client's close frame.
        ws = web.WebSocketResponse(max_msg_size=0, timeout=2.0)
        await ws.prepare(request)
        self.connection_count += 1
        self._sockets.add(ws)
        log.debug("gateway connection %d from %s", self.connection_count, request.path_qs)
        session: Session | None = None
        await self._send(
            ws, {"op": HELLO, "d": {"heartbeat_interval": int(self.heartbeat_interval * 1000)}}
        )
        self._signal.notify()
        client_code: int | None = None  # set when the client started the close
        try:
            while True:
                msg = await ws.receive()
                if msg.type == WSMsgType.CLOSE:
                    client_code = int(msg.data)
                    break
                if msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
                if msg.type == WSMsgType.TEXT:
                    session = await self._on_payload(ws, request, session, json.loads(msg.data))
        except Exception as exc:
            log.exception("fakediscord: gateway handler failed")
            self.internal_errors.append(f"gateway: {exc!r}")
            raise
        finally:
            self._sockets.discard(ws)
            if session is not None and session.ws is ws:
                session.ws = None
                session.transport = None
                # A client's clean close (client.close() sends 1000) ends the session: Discord
                # would refuse to RESUME it. A reconnecting discord.py closes with 4000.
                if client_code in (1000, 1001):
                    session.ended = True
            log.debug("gateway connection closed (client code %s)", client_code)
            self._signal.notify()
        return ws

    async def _on_payload(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        session: Session | None,
        payload: JSON,
    ) -> Session | None:
        op = payload.get("op")
        data: Any = payload.get("d")
        redacted = copy.deepcopy(payload)
        if isinstance(redacted.get("d"), dict) and "token" in redacted["d"]:
            redacted["d"]["token"] = "<redacted>"
        self.received.append(redacted)
        if op == HEARTBEAT:
            loop_time = asyncio.get_running_loop().time()
            self.heartbeats.append(Heartbeat(session.id if session else None, data, loop_time))
            if self.ack_heartbeats:
                await self._send(ws, {"op": HEARTBEAT_ACK})
            self._signal.notify()
            return session
        if op == IDENTIFY:
            if session is not None:
                await ws.close(code=ALREADY_AUTHENTICATED, message=b"Already authenticated.")
                return session
            return await self._identify(ws, request, data)
        if op == RESUME:
            return await self._resume(ws, request, data)
        if session is None:
            await ws.close(code=NOT_AUTHENTICATED, message=b"Not authenticated.")
            return None
        if op == PRESENCE:
            self.presences.append(data)
        elif op == REQUEST_MEMBERS:
            await self._members_chunk(session, data)
        elif op != VOICE_STATE:
            await ws.close(code=UNKNOWN_OPCODE, message=b"Unknown opcode.")
        return session

    async def _identify(
        self, ws: web.WebSocketResponse, request: web.Request, data: JSON
    ) -> Session | None:
        if data.get("token") != self._token():
            await ws.close(code=AUTHENTICATION_FAILED, message=b"Authentication failed.")
            return None
        intents = int(data.get("intents", 0))
        if intents & Intent.PRIVILEGED & ~self.privileged_intents:
            await ws.close(code=DISALLOWED_INTENTS, message=b"Disallowed intent(s).")
            return None
        self.identify_count += 1
        session = Session(id=secrets.token_hex(16), intents=intents, shard=data.get("shard"))
        session.ws, session.transport = ws, request.transport
        self.sessions[session.id] = session
        world = self._world
        bot_user = world.bot.payload() | {"verified": True, "mfa_enabled": False, "flags": 0}
        ready: JSON = {
            "v": 10,
            "user": bot_user,
            "guilds": [{"id": str(world.guild.id), "unavailable": True}],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self._resume_url(),
            "application": {"id": str(world.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "user_settings": {},
            "geo_ordered_rtc_regions": [],
            "_trace": ["fakediscord"],
        }
        if session.shard is not None:
            ready["shard"] = session.shard
        await self._dispatch_to(session, "READY", ready)
        await self._dispatch_to(session, "GUILD_CREATE", self._guild_create(session))
        self._signal.notify()
        return session

    def _guild_create(self, session: Session) -> JSON:
        guild = self._world.guild
        # Without GUILD_PRESENCES Discord sends only the bot's own member; discord.py then
        # asks for the rest (op 8) if it has the members intent.
        members = (
            guild.members
            if session.has(Intent.GUILD_PRESENCES)
            else [m for m in guild.members if m.user.id == self._world.bot.id]
        )
        return guild.payload(members=members)

    async def _resume(
        self, ws: web.WebSocketResponse, request: web.Request, data: JSON
    ) -> Session | None:
        session = self.sessions.get(str(data.get("session_id")))
        seq = data.get("seq")
        if (
            data.get("token") != self._token()
            or session is None
            or session.ended
            or not isinstance(seq, int)
            or seq > session.seq
        ):
            self.invalid_resumes += 1
            await self._send(ws, {"op": INVALID_SESSION, "d": False})
            self._signal.notify()
            return None
        old = session.ws
        if old is not None and old is not ws:
            await old.close(code=UNKNOWN_ERROR)
        async with session.lock:
            session.ws, session.transport = ws, request.transport
            for event_seq, frame in session.log:
                if event_seq > seq:
                    await ws.send_str(frame)
        self.resume_count += 1
        await self._dispatch_to(session, "RESUMED", {"_trace": ["fakediscord"]})
        self._signal.notify()
        return session

    async def _members_chunk(self, session: Session, data: JSON) -> None:
        guild = self._world.guild
        payload: JSON = {
            "guild_id": str(guild.id),
            "members": [m.payload() for m in guild.members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce") is not None:
            payload["nonce"] = data["nonce"]
        await self._dispatch_to(session, "GUILD_MEMBERS_CHUNK", payload)

    # -- dispatch -------------------------------------------------------------------------

    @staticmethod
    async def _send(ws: web.WebSocketResponse, payload: JSON) -> None:
        await ws.send_str(json.dumps(payload))

    async def _dispatch_to(self, session: Session, event: str, data: JSON) -> None:
        async with session.lock:  # seq order == send order
            session.seq += 1
            frame = json.dumps({"op": DISPATCH, "s": session.seq, "t": event, "d": data})
            session.log.append((session.seq, frame))
            ws = session.ws
            if ws is None or ws.closed:
                return  # kept in the log; replayed on RESUME
            try:
                await ws.send_str(frame)
            except ConnectionError:
                log.debug("dispatch of %s hit a closing socket; it will be replayed", event)

    def live_sessions(self) -> list[Session]:
        return [s for s in self.sessions.values() if not s.ended]

    async def dispatch(
        self,
        event: str,
        data: JSON,
        *,
        intent: int | None = None,
        transform: Callable[[Session, JSON], JSON] | None = None,
    ) -> int:
        """Send ``event`` to every live session that has ``intent``; returns how many got it."""
        sent = 0
        for session in self.live_sessions():
            if intent is not None and not session.has(intent):
                continue
            await self._dispatch_to(session, event, transform(session, data) if transform else data)
            sent += 1
        return sent

    # -- faults ---------------------------------------------------------------------------

    def connected(self) -> list[Session]:
        return [s for s in self.live_sessions() if s.ws is not None and not s.ws.closed]

    async def drop(self, code: int | None) -> int:
        """Close every session's socket (``code``) or cut its TCP connection (``None``)."""
        dropped = 0
        for session in self.connected():
            ws, transport = session.ws, session.transport
            if code is None:
                if transport is not None:
                    transport.abort()
            elif ws is not None:
                # close() waits for the client's close frame; don't block the test on it.
                task = asyncio.get_running_loop().create_task(
                    ws.close(code=code, message=b"dropped")
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            dropped += 1
        return dropped

    async def send_op(self, op: int, data: Any) -> None:
        """Send a non-dispatch op (e.g. RECONNECT, INVALID_SESSION) to connected sessions."""
        for session in self.connected():
            assert session.ws is not None
            await self._send(session.ws, {"op": op, "d": data})

    async def close_all(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
