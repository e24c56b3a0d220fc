"""The load: simulated members of the test Discord server using the bot, at a seeded random rate.

Each request goes into the ledger as it is sent (`ledger.Request`); its outcome is read later from
what the server recorded, so sending never waits for an answer. A channel has at most one
settings write in flight, so the value each setting must read back at the end is known.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass

from bench.soaking import ledger
from bench.soaking.ledger import Judge, Request
from bench.soaking.topology import LOCAL_MODEL, SERVED_MODEL, Deployment
from bot.testing import (
    FakeGuild,
    FakeUser,
    InteractionHandle,
    InvocationError,
    buttons_of,
    shard_of,
)

#: How often each kind of request comes, relative to the others.
WEIGHTS = {
    ledger.COMPLETE: 30,
    ledger.COMPLETE_LONG: 4,
    ledger.MENTION: 20,
    ledger.TEMPERATURE: 8,
    ledger.SETTINGS: 8,
    ledger.CONTINUE: 8,
    ledger.REGENERATE: 8,
    ledger.DOUBLE: 6,
    ledger.MENU: 6,
}
SHORT, LONG = (20, 80), (800, 1000)  # characters asked of a completion: answered at once, streamed
SETTING_VALUES: dict[str, Callable[[random.Random], float]] = {
    "length": lambda rng: float(rng.randint(20, 120)),
    "top_k": lambda rng: float(rng.randint(0, 40)),
    "top_p": lambda rng: round(rng.uniform(0.5, 1.0), 2),
}
LINES = (  # in the model's vocabulary (no digits): no "the model does not know" notes
    "To be, or not to be",
    "Now is the winter of our discontent",
    "Friends, Romans, countrymen",
    "All the world's a stage",
    "What light through yonder window breaks",
    "Once more unto the breach",
)
RECENT = 150  # how far back a member looks for a message to press or continue
PENDING_WRITE = 60.0  # seconds after which a settings write with no outcome no longer blocks
NO_SESSION = "no bot session holds the shard"  # FakeDiscord's refusal when no session has it
MENU_NAME = "Continue with charbot"


@dataclass(frozen=True)
class Channel:
    id: int
    guild: FakeGuild
    shard: int
    model: str


class Load:
    def __init__(
        self, deployment: Deployment, judge: Judge, rng: random.Random, clock: Callable[[], float]
    ) -> None:
        self.deployment = deployment
        self.server = deployment.server
        self.judge = judge
        self.rng = rng
        self.clock = clock
        shards = deployment.topology.shards
        served = deployment.model_server is not None
        self.channels = [
            Channel(
                c.id,
                g,
                shard_of(g.id, shards),
                SERVED_MODEL if served and i % 4 == 1 else LOCAL_MODEL,
            )
            for g in deployment.world.guilds
            for i, c in enumerate(g.channels)
        ]
        self.by_id = {c.id: c for c in self.channels}
        self.requests: list[Request] = []
        self.pending_write: dict[int, Request] = {}
        self.unsendable = 0  # arrivals with nothing to act on (no message with that button yet)

    # -- who and where ------------------------------------------------------------------------

    def people(self, guild: FakeGuild, moderators: bool = False) -> list[FakeUser]:
        world = self.deployment.world
        found = [
            m.user
            for m in guild.members
            if not m.user.bot
            and m.user.id != world.owner.id
            and (not moderators or guild.roles[2].id in m.role_ids)
        ]
        return found

    def free_for_writes(self, channel: Channel) -> bool:
        pending = self.pending_write.get(channel.id)
        if pending is None:
            return True
        if self.clock() - pending.sent > PENDING_WRITE or pending.undelivered:
            return True
        self.judge.forget()
        self.judge.judge(pending)
        return pending.status != "unanswered"

    def prompt(self) -> str:
        return self.rng.choice(LINES)

    def _request(self, kind: str, channel: Channel, user: FakeUser, **extra: object) -> Request:
        request = Request(
            len(self.requests), kind, channel.id, channel.shard, user.id, self.clock(),
            channel.model, **extra,  # type: ignore[arg-type]
        )  # fmt: skip
        self.requests.append(request)
        return request

    async def _dispatch(self, request: Request, send: Callable[[], object]) -> None:
        """Send; a shard with no session is recorded (Discord would tell the member the
        application did not respond), any other refusal by the server is a bug of the run."""
        try:
            result = send()
            if asyncio.iscoroutine(result):
                result = await result
        except InvocationError as exc:
            if NO_SESSION not in str(exc):
                raise
            request.undelivered = True
            return
        if isinstance(result, InteractionHandle):
            request.handles.append(result)
        elif isinstance(result, int):
            request.message_id = result

    # -- the requests -------------------------------------------------------------------------

    async def send(self, kind: str) -> Request | None:
        channel = self.rng.choice(self.channels)
        if kind in (ledger.COMPLETE, ledger.COMPLETE_LONG):
            return await self.complete(channel, long=kind == ledger.COMPLETE_LONG)
        if kind == ledger.MENTION:
            return await self.mention(channel)
        if kind in (ledger.TEMPERATURE, ledger.SETTINGS):
            return await self.write(kind, channel)
        if kind == ledger.MENU:
            return await self.menu(channel)
        return await self.press(kind)

    async def complete(self, channel: Channel, *, long: bool = False) -> Request:
        user = self.rng.choice(self.people(channel.guild))
        low, high = LONG if long else SHORT
        prompt = self.prompt()
        options = {"prompt": prompt, "length": self.rng.randint(low, high)}
        kind = ledger.COMPLETE_LONG if long else ledger.COMPLETE
        request = self._request(kind, channel, user, prompt=prompt)
        await self._dispatch(
            request,
            lambda: self.server.invoke_command(
                "complete", options, channel_id=channel.id, user=user
            ),
        )
        return request

    async def mention(self, channel: Channel) -> Request:
        user = self.rng.choice(self.people(channel.guild))
        prompt = self.prompt()
        bot = self.deployment.world.bot
        request = self._request(ledger.MENTION, channel, user, prompt=prompt)
        await self._dispatch(
            request,
            lambda: self.server.send_message(
                channel.id, user, f"{bot.mention} {prompt}", mentions=[bot]
            ),
        )
        if request.undelivered:
            return request
        # Sent to a shard with a session that may be gone (a killed process's): the message
        # went out all the same, as Discord's would.
        return request

    async def write(self, kind: str, channel: Channel) -> Request | None:
        free = [c for c in self.channels if self.free_for_writes(c)]
        if not free:
            self.unsendable += 1
            return None
        channel = self.rng.choice(free)
        user = self.rng.choice(self.people(channel.guild, moderators=True))
        options: dict[str, object]
        if kind == ledger.TEMPERATURE:
            value = round(self.rng.uniform(0.1, 1.5), 2)
            name, options, setting = "temperature set", {"value": value}, ("temperature", value)
        else:
            key = self.rng.choice(sorted(SETTING_VALUES))
            number = SETTING_VALUES[key](self.rng)
            name, options, setting = "settings set", {"key": key, "value": number}, (key, number)
        request = self._request(kind, channel, user, setting=setting)
        self.pending_write[channel.id] = request
        await self._dispatch(
            request,
            lambda: self.server.invoke_command(name, options, channel_id=channel.id, user=user),
        )
        return request

    async def use_model(self, channel: Channel, model: str) -> Request:
        user = self.people(channel.guild, moderators=True)[0]
        request = self._request(ledger.MODEL, channel, user, setting=("model", model))
        self.pending_write[channel.id] = request
        await self._dispatch(
            request,
            lambda: self.server.invoke_command(
                "model use", {"name": model}, channel_id=channel.id, user=user
            ),
        )
        return request

    def recent_with(self, label: str) -> list[int]:
        """Recent bot messages showing an enabled `label` button, newest first."""
        found: list[int] = []
        for looked, message in enumerate(reversed(self.server.messages.values())):
            if looked >= 4 * RECENT or len(found) >= RECENT // 3:
                break
            if message.deleted or message.author_id != self.deployment.world.bot.id:
                continue
            if any(b.get("label") == label and not b.get("disabled") for b in buttons_of(message)):
                found.append(message.id)
        return found

    async def press(self, kind: str) -> Request | None:
        label = "Continue" if kind == ledger.CONTINUE else "Regenerate"
        if kind == ledger.DOUBLE:
            label = self.rng.choice(("Continue", "Regenerate"))
        candidates = self.recent_with(label)
        if not candidates:
            self.unsendable += 1
            return None
        message_id = self.rng.choice(candidates)
        channel = self.by_id[self.server.messages[message_id].channel_id]
        # Regenerate is for who asked or Manage Messages: the owner (an admin) presses it.
        world = self.deployment.world
        user = world.owner if label == "Regenerate" else self.rng.choice(self.people(channel.guild))
        presses = 2 if kind == ledger.DOUBLE else 1
        # Built from the message as the member's client shows it, all before the first is sent.
        handles = [self.server.prepare_press(message_id, label, user=user) for _ in range(presses)]
        request = self._request(kind, channel, user, message_id=message_id, press=label)
        for handle in handles:
            await self._dispatch(request, lambda h=handle: self.server.dispatch_interaction(h))  # type: ignore[misc]
        return request

    async def menu(self, channel: Channel) -> Request | None:
        """The context menu on a recent message: a member's, or one of the bot's completions
        (one showing its buttons: the bot continues its own messages only while they work)."""
        targets: list[int] = []
        bot = self.deployment.world.bot.id
        for looked, message in enumerate(reversed(self.server.messages.values())):
            if looked >= RECENT or len(targets) >= 20:
                break
            if message.deleted or message.ephemeral or not message.content:
                continue
            if message.author_id != bot or buttons_of(message):
                targets.append(message.id)
        if not targets:
            self.unsendable += 1
            return None
        target = self.server.messages[self.rng.choice(targets)]
        channel = self.by_id[target.channel_id]
        user = self.rng.choice(self.people(channel.guild))
        request = self._request(ledger.MENU, channel, user)
        await self._dispatch(
            request,
            lambda: self.server.invoke_message_command(MENU_NAME, target.id, user=user),
        )
        return request

    async def run(self, until: Callable[[], bool], rate: float, limit: int) -> None:
        """Poisson arrivals at `rate` a second until `until()` or `limit` requests."""
        kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
        due = self.clock()
        for _ in range(limit):
            if until():
                return
            due += self.rng.expovariate(rate)
            await asyncio.sleep(max(0.0, due - self.clock()))
            await self.send(self.rng.choices(kinds, weights)[0])
