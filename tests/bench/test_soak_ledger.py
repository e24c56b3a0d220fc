"""The soak run's accounting (`bench/soaking/ledger.py`) read against a real bot: each kind of
request the load sends gets the outcome a member saw, in seconds and in one process (the soak
itself runs minutes and processes: test_soak.py)."""

from __future__ import annotations

import random
import time
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from bench.soaking import ledger
from bench.soaking.ledger import Judge
from bench.soaking.load import Load
from bench.soaking.topology import Deployment, Topology, bot_config, soak_world
from bot.testing import FakeDiscord, discord_pointed_at, running_bot

pytestmark = pytest.mark.e2e  # a bot and the test Discord server, in this process

KINDS = [ledger.COMPLETE, ledger.COMPLETE_LONG, ledger.MENTION, ledger.TEMPERATURE, ledger.SETTINGS]
KINDS += [ledger.CONTINUE, ledger.REGENERATE, ledger.DOUBLE, ledger.MENU]
TOPOLOGY = Topology(guilds=2, channels_per_guild=3, members=16, processes=1, shards=1, replicas=0)


async def test_every_kind_of_request_is_judged_as_the_member_saw_it(
    tmp_path: Path, tiny_onnx: Path
) -> None:
    world = soak_world(TOPOLOGY)
    assert len([c for g in world.guilds for c in g.channels]) == 6
    assert sum(len(g.members) for g in world.guilds) == 2 * 5 + 16
    server = FakeDiscord(world=world, heartbeat_interval=0.5)
    async with server:
        config = bot_config(tmp_path / "charbot.toml", world, tiny_onnx, None)
        store = {"store.url": f"sqlite:///{tmp_path / 'settings.sqlite3'}"}
        with discord_pointed_at(server):
            async with running_bot(server, config, store):
                await server.wait_until(lambda: server.synced_commands, 10, "the commands")
                loop_start, wall_start = server_clock(), time.time()
                judge = Judge(server, loop_start, wall_start)
                deployment = SimpleNamespace(
                    server=server, world=world, topology=TOPOLOGY, model_server=None
                )
                load = Load(
                    cast(Deployment, deployment),
                    judge,
                    random.Random(1),
                    lambda: server_clock() - loop_start,
                )
                for kind in (ledger.COMPLETE, ledger.COMPLETE_LONG, ledger.MENTION):
                    assert await load.send(kind) is not None, kind
                await wait_answered(server, judge, load)
                # One at a time: a press on a message another press is answering is refused.
                for kind in KINDS[3:]:
                    assert await load.send(kind) is not None, kind
                    await wait_answered(server, judge, load)
    # A double press: one press answered, the other told the first is being answered.
    assert {r.kind: (r.status, r.twice) for r in load.requests} == dict.fromkeys(
        KINDS, ("answered", False)
    )
    double = next(r for r in load.requests if r.kind == ledger.DOUBLE)
    told = [x.content for h in double.handles for x in h.replies if x.ephemeral]
    assert len(told) == 1, told
    assert all(r.latency is not None and r.latency >= 0 for r in load.requests)
    assert not server.internal_errors


def server_clock() -> float:
    import asyncio

    return asyncio.get_running_loop().time()


async def wait_answered(server: FakeDiscord, judge: Judge, load: Load) -> None:
    def done() -> bool:
        judge.judge_open(load.requests)
        return all(r.status != "unanswered" for r in load.requests)

    await server.wait_until(done, 30, "every request's outcome")
