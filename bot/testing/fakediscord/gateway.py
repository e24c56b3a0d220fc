"""The gateway websocket: HELLO, IDENTIFY/READY, heartbeats, dispatch, RESUME with replay.

Frames are plain JSON text even though discord.py asks for ``compress=zlib-stream``: it only
inflates binary frames. Sessions outlive their connection so a dropped client can RESUME and
receive what it missed, with the sequence numbers it would have seen.

Sharding as Discord does it: an IDENTIFY's ``shard: [shard_id, shard_count]`` receives only the
guilds with ``(guild_id >> 22) % shard_count == shard_id``, and a guild's events go to the
session of its shard alone. A shard outside its count, a shard already connected, or a count
that disagrees with the connected sessions is closed with 4010 (Invalid shard); a session that
would hold more than ``max_guilds_per_session`` guilds with 4011 (Sharding required). Every
IDENTIFY is recorded with its rate-limit bucket (``shard_id % max_concurrency``).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import secrets
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from .records import Heartbeat, Signal
from .wire import JSON
from .world import FakeGuild, Intent, World, shard_of

log = logging.getLogger(__name__)

DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE, VOICE_STATE = 0, 1, 2, 3, 4
RESUME, RECONNECT, REQUEST_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 6, 7, 8, 9, 10, 11

# Close codes the client treats as resumable vs. fatal (discord.py gateway._can_handle_close).
UNKNOWN_ERROR, UNKNOWN_OPCODE, NOT_AUTHENTICATED, AUTHENTICATION_FAILED = 4000, 4001, 4003, 4004
ALREADY_AUTHENTICATED, DISALLOWED_INTENTS = 4005, 4014
INVALID_SHARD, SHARDING_REQUIRED = 4010, 4011


@dataclass(frozen=True)
class Identify:
    """One accepted IDENTIFY: which shard, its rate-limit bucket, and when (loop time)."""

    shard_id: int
    shard_count: int
    bucket: int
    at: float


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

    @property
    def shard_id(self) -> int:
        return self.shard[0] if self.shard else 0

    @property
    def shard_count(self) -> int:
        return self.shard[1] if self.shard else 1

    def owns(self, guild_id: int) -> bool:
        return shard_of(guild_id, self.shard_count) == self.shard_id


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
        self.max_concurrency = 1  # IDENTIFY buckets, as GET /gateway/bot advertises
        self.max_guilds_per_session: int | None = None  # more: close 4011 (sharding required)
        self.identifies: list[Identify] = []
        # Cleared: new connections wait before their handshake (Discord unreachable for a while).
        self.accepting = asyncio.Event()
        self.accepting.set()
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
        await self.accepting.wait()
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
        shard = data.get("shard")
        refusal = self._refuse_shard(shard)
        if refusal is not None:
            code, reason = refusal
            log.info("fakediscord: IDENTIFY with shard %s refused: %s", shard, reason)
            await ws.close(code=code, message=reason.encode())
            self._signal.notify()
            return None
        self.identify_count += 1
        session = Session(id=secrets.token_hex(16), intents=intents, shard=shard)
        session.ws, session.transport = ws, request.transport
        self.sessions[session.id] = session
        self.identifies.append(
            Identify(
                session.shard_id,
                session.shard_count,
                session.shard_id % self.max_concurrency,
                asyncio.get_running_loop().time(),
            )
        )
        world = self._world
        guilds = self.guilds_of(session)
        bot_user = world.bot.payload() | {"verified": True, "mfa_enabled": False, "flags": 0}
        ready: JSON = {
            "v": 10,
            "user": bot_user,
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
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
        for guild in guilds:
            await self._dispatch_to(session, "GUILD_CREATE", self._guild_create(session, guild))
        self._signal.notify()
        return session

    def _refuse_shard(self, shard: Any) -> tuple[int, str] | None:
        """(close code, reason) when Discord would refuse this IDENTIFY's shard, else None."""
        if shard is None:
            count = len(self._world.guilds)
            limit = self.max_guilds_per_session
            if limit is not None and count > limit:
                return SHARDING_REQUIRED, f"Sharding required: {count} guilds in one session."
            return None
        if (
            not isinstance(shard, list)
            or len(shard) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in shard)
        ):
            return INVALID_SHARD, f"Invalid shard {shard!r}."
        shard_id, count = shard
        if count < 1 or not 0 <= shard_id < count:
            return INVALID_SHARD, f"Invalid shard: {shard_id} is not below {count}."
        for other in self.connected():
            if other.shard_count != count:
                return INVALID_SHARD, (
                    f"Invalid shard: count {count} disagrees with a connected session's "
                    f"{other.shard_count}."
                )
            if other.shard_id == shard_id:
                return INVALID_SHARD, f"Invalid shard: shard {shard_id} is already connected."
        owned = len(self._world.guilds_of_shard(shard_id, count))
        limit = self.max_guilds_per_session
        if limit is not None and owned > limit:
            return SHARDING_REQUIRED, f"Sharding required: {owned} guilds on shard {shard_id}."
        return None

    def guilds_of(self, session: Session) -> list[FakeGuild]:
        return self._world.guilds_of_shard(session.shard_id, session.shard_count)

    def identify_times(self) -> dict[int, list[float]]:
        """Bucket -> the loop times of its accepted IDENTIFYs, in order."""
        times: dict[int, list[float]] = defaultdict(list)
        for record in self.identifies:
            times[record.bucket].append(record.at)
        return dict(times)

    def _guild_create(self, session: Session, guild: FakeGuild) -> JSON:
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
        guild = self._world.guild_by_id(int(data.get("guild_id") or 0))
        if guild is None or not session.owns(guild.id):
            return  # Discord answers nothing for a guild the session does not hold
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
        guild_id: int | None = None,
        transform: Callable[[Session, JSON], JSON] | None = None,
    ) -> int:
        """Send ``event`` to every live session that has ``intent`` and, for a guild's event,
        holds ``guild_id``'s shard; returns how many got it."""
        sent = 0
        for session in self.live_sessions():
            if intent is not None and not session.has(intent):
                continue
            if guild_id is not None and not session.owns(guild_id):
                continue
            await self._dispatch_to(session, event, transform(session, data) if transform else data)
            sent += 1
        return sent

    # -- faults ---------------------------------------------------------------------------

    def connected(self) -> list[Session]:
        return [s for s in self.live_sessions() if s.ws is not None and not s.ws.closed]

    def connected_shard(self, shard_id: int | None) -> list[Session]:
        """The connected sessions, or only the one holding ``shard_id``."""
        return [s for s in self.connected() if shard_id is None or s.shard_id == shard_id]

    async def drop(self, code: int | None, shard_id: int | None = None) -> int:
        """Close every session's socket (``code``) or cut its TCP connection (``None``); only
        the session of ``shard_id`` when given."""
        dropped = 0
        for session in self.connected_shard(shard_id):
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

    async def send_op(self, op: int, data: Any, sessions: list[Session] | None = None) -> None:
        """Send a non-dispatch op (e.g. RECONNECT, INVALID_SESSION) to connected sessions (to
        ``sessions`` when given: an invalidated session is no longer live, yet must hear it)."""
        for session in self.connected() if sessions is None else sessions:
            if session.ws is not None and not session.ws.closed:
                await self._send(session.ws, {"op": op, "d": data})

    async def close_all(self) -> None:
        self.accepting.set()  # held connections go on, to be closed below
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
