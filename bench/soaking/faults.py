"""The faults, one every interval from a seeded schedule, each recorded with what it hit and, for
those that take shards down, the window each shard had no session (`Fault.down`).

A fault is done when what it broke was put back (a killed process restarted and its shards
identified again, the database reachable again, ...); the next one waits for that, so windows
never overlap and a restart may take its time.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.soaking.ledger import Judge, Request
from bench.soaking.topology import Deployment

SIGKILL, SIGTERM, DATABASE, REPLICA = "sigkill", "sigterm", "database", "replica"
RESUME, REIDENTIFY, RATE_LIMIT = "resume", "reidentify", "429-storm"
KINDS = (SIGKILL, SIGTERM, DATABASE, REPLICA, RESUME, REIDENTIFY, RATE_LIMIT)
DATABASE_OUTAGE = 5.0  # seconds the database is unreachable
STORM = 25  # requests answered 429 in a storm
STORM_ROUTE = "/webhooks/*"  # interaction followups and edits: every deferred answer's route
STORM_RETRY_AFTER = 0.5
RESTART_TIMEOUT = 180.0  # seconds for a restarted process's shards to identify again
EXIT_TIMEOUT = 60.0  # seconds a SIGTERM'd process has to drain and exit
PRESS_TAIL = 2.0  # seconds a press goes on after its answer shows (releasing its record)


@dataclass
class Fault:
    index: int
    kind: str
    at: float  # run seconds
    target: str = ""
    shards: tuple[int, ...] = ()  # the shards it took down (or whose connection it touched)
    done_at: float | None = None
    down: dict[int, tuple[float, float | None]] = field(default_factory=dict)  # shard: window
    note: str = ""
    #: Messages a press was working on when the fault killed its process (its buttons may stay
    #: disabled, its record held: the press was cut between its steps).
    presses: set[int] = field(default_factory=set)
    recovery: float | None = None  # seconds to the first answer on its path (set by the report)


def schedule(kinds: Sequence[str], count: int, rng: random.Random) -> list[str]:
    """`count` fault kinds: every kind once in a shuffled round, round after round."""
    planned: list[str] = []
    while len(planned) < count:
        round_ = list(kinds)
        rng.shuffle(round_)
        planned += round_
    return planned[:count]


class Faults:
    def __init__(
        self,
        deployment: Deployment,
        judge: Judge,
        requests: list[Request],
        rng: random.Random,
        clock: Callable[[], float],
        loop_start: float,
    ) -> None:
        self.deployment = deployment
        self.server = deployment.server
        self.judge = judge
        self.requests = requests
        self.rng = rng
        self.clock = clock
        self.loop_start = loop_start
        self.faults: list[Fault] = []
        self.unexpected_exits: list[str] = []
        self.failed: list[str] = []  # faults that could not be injected as planned

    async def run(
        self, kinds: Sequence[str], interval: float, start: float, duration: float
    ) -> None:
        """One fault every `interval` seconds from `start` (the first at `start + interval`),
        for `duration` seconds; each waits for the one before it to be done."""
        if interval <= 0 or not kinds:
            return
        planned = schedule(kinds, max(0, int(duration // interval)), self.rng)
        for n, kind in enumerate(planned, start=1):
            await asyncio.sleep(max(0.0, start + n * interval - self.clock()))
            if self.clock() >= start + duration:
                return
            await self.check_processes()
            await self.inject(kind)

    async def check_processes(self) -> None:
        """A bot process that exited by itself is a failure of the run: noted, and restarted."""
        for bot in self.deployment.bots:
            if not bot.running:
                self.unexpected_exits.append(f"{bot.name} at {self.clock():.1f} s")
                await bot.start()

    async def inject(self, kind: str) -> Fault:
        fault = Fault(len(self.faults), kind, self.clock())
        self.faults.append(fault)
        try:
            if kind in (SIGKILL, SIGTERM):
                await self.stop_process(fault, kill=kind == SIGKILL)
            elif kind == DATABASE:
                await self.database(fault)
            elif kind == REPLICA:
                await self.replica(fault)
            elif kind in (RESUME, REIDENTIFY):
                await self.gateway(fault, resume=kind == RESUME)
            elif kind == RATE_LIMIT:
                await self.storm(fault)
        except Exception as exc:  # the run goes on; the report shows the fault failed
            fault.note += f"the fault itself failed: {exc!r}; "
            self.failed.append(f"{kind} at {fault.at:.1f} s: {exc!r}")
        fault.done_at = self.clock()
        return fault

    # -- the kinds ----------------------------------------------------------------------------

    def in_flight(self, fault: Fault, shards: Sequence[int], drains: bool) -> None:
        """Mark the requests on `shards` still unanswered now as in flight on the process the
        fault stops (one that `drains`, SIGTERM'd, must finish what it began: there, only those
        not begun)."""
        self.judge.forget()
        for request in self.requests:
            if request.shard not in shards or request.killed_by is not None or request.undelivered:
                continue
            self.judge.judge(request)
            # A Continue's reply comes before its record is released: cut just after it.
            recent = request.done_at is None or request.done_at >= fault.at - PRESS_TAIL
            if request.press and request.message_id is not None and recent and not drains:
                fault.presses.add(request.message_id)
            if request.status != "unanswered":
                continue
            if drains and self.judge.acknowledged(request):
                continue
            request.killed_by = fault.index

    def identified_since(self, shard: int, since: float) -> float | None:
        """Run seconds of the shard's first IDENTIFY at or after `since`, if any yet."""
        for identify in self.server.identifies:
            at = identify.at - self.loop_start
            if identify.shard_id == shard and at >= since:
                return at
        return None

    async def wait_identified(self, fault: Fault, shards: Sequence[int]) -> None:
        """Until each shard identified again: its down window closes there."""

        def all_back() -> bool:
            for shard in shards:
                back = self.identified_since(shard, fault.at)
                if back is not None:
                    fault.down[shard] = (fault.at, back)
            connected = self.deployment.shards_connected()
            return all(fault.down[s][1] is not None for s in shards) and set(shards) <= connected

        try:
            await self.server.wait_until(all_back, RESTART_TIMEOUT, "the shards to identify")
        except TimeoutError:
            fault.note += f"shards not back after {RESTART_TIMEOUT:g} s; "

    async def stop_process(self, fault: Fault, *, kill: bool) -> None:
        index = self.rng.randrange(len(self.deployment.bots))
        bot = self.deployment.bots[index]
        shards = tuple(self.deployment.topology.shard_ids(index))
        fault.target, fault.shards = bot.name, shards
        fault.down = {s: (fault.at, None) for s in shards}
        self.in_flight(fault, shards, drains=not kill)
        if kill:
            await bot.kill()
        else:
            bot.signal(signal.SIGTERM)
            status = await bot.wait(EXIT_TIMEOUT)
            if status is None:
                fault.note += f"did not exit {EXIT_TIMEOUT:g} s after SIGTERM (killed); "
                await bot.kill()
            elif status != 0:
                fault.note += f"exited {status} after SIGTERM; "
        await bot.start()
        await self.wait_identified(fault, shards)

    async def database(self, fault: Fault) -> None:
        database = self.deployment.database
        fault.target = "every connection, then the database unreachable"
        killed = await database.terminate_connections()
        await database.cut()
        await asyncio.sleep(DATABASE_OUTAGE)
        await database.restore()
        fault.note += f"{killed} connection(s) terminated; "

    async def replica(self, fault: Fault) -> None:
        server = self.deployment.model_server
        if server is None:
            fault.note += "no model server; "
            return
        from bot.serving.openai_backend import OpenAIBackend

        backend = await OpenAIBackend.start("served", server.v1, timeout=30.0)
        try:
            described = await backend.describe()
        finally:
            await backend.close()
        name = str(described["charbot"]["replica"])
        fault.target = name
        await asyncio.to_thread(server.kill_replica, name)

    async def gateway(self, fault: Fault, *, resume: bool) -> None:
        shard = self.rng.randrange(self.deployment.topology.shards)
        fault.target, fault.shards = f"shard {shard}", (shard,)
        if resume:
            # Resumable: the session stays, the events meanwhile are replayed; no window.
            try:
                await self.server.drop_gateway(shard_id=shard, timeout=30.0)
            except (RuntimeError, TimeoutError) as exc:
                fault.note += f"{exc}; "
            return
        fault.down = {shard: (fault.at, None)}
        await self.server.invalidate_session(resumable=False, shard_id=shard)
        await self.wait_identified(fault, (shard,))

    async def storm(self, fault: Fault) -> None:
        fault.target = f"{STORM} requests to {STORM_ROUTE}"
        injected = self.server.fail_next(
            "*", STORM_ROUTE, 429, retry_after=STORM_RETRY_AFTER, count=STORM
        )
        try:
            await self.server.wait_until(lambda: injected.remaining <= 0, 60.0, "the storm")
        except TimeoutError:
            fault.note += f"{injected.remaining} of the storm's 429s unused after 60 s; "
