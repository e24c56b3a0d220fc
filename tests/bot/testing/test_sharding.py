"""FakeDiscord's sharding: guilds per shard, events to the owning shard, 4010/4011, buckets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands

from bot.testing import (
    CLIENT_KWARGS,
    INVALID_SHARD,
    SHARDING_REQUIRED,
    FakeDiscord,
    default_world,
    discord_pointed_at,
    running_client,
    shard_of,
)
from tests.bot.testing.test_server import RawGateway

GUILDS, SHARDS = 6, 4


class ShardedEcho(discord.AutoShardedClient):
    """Answers /where with the shard that received it; identifies without discord.py's 5 s."""

    def __init__(self, shard_ids: list[int]) -> None:
        super().__init__(
            intents=discord.Intents.default(),
            shard_ids=shard_ids,
            shard_count=SHARDS,
            **CLIENT_KWARGS,
        )
        self.tree = app_commands.CommandTree(self)
        self.answered: list[int] = []

        @self.tree.command(name="where")
        async def where(interaction: discord.Interaction) -> None:
            """Which shard am I on?"""
            assert interaction.guild_id is not None
            self.answered.append(interaction.guild_id)
            await interaction.response.send_message(f"shard {interaction.guild.shard_id}")  # type: ignore[union-attr]

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None


@pytest.fixture
async def sharded_discord() -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord(
        world=default_world(guilds=GUILDS),
        heartbeat_interval=0.5,
        recommended_shards=SHARDS,
        max_concurrency=2,
        max_guilds_per_session=3,
    )
    async with server:
        with discord_pointed_at(server):
            yield server
    assert not server.internal_errors, f"fakediscord bugs: {server.internal_errors}"


def test_guild_ids_spread_over_the_shards() -> None:
    world = default_world(guilds=GUILDS)
    assert world.guild is world.guilds[0] and world.guild.id == 1_000_000_000_000_000_001
    owners = [shard_of(g.id, SHARDS) for g in world.guilds]
    assert sorted(owners) == [0, 1, 1, 2, 2, 3]  # guild 0 is on shard 1
    channels = [c.id for g in world.guilds for c in g.channels]
    assert len(set(channels)) == 2 * GUILDS
    assert all(world.guild_of_channel(c.id) is g for g in world.guilds for c in g.channels)


async def test_raw_identify_gets_only_its_shards_guilds(sharded_discord: FakeDiscord) -> None:
    server = sharded_discord
    async with aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bot {server.token}"}
        async with http.get(f"{server.api_base}/gateway/bot", headers=auth) as resp:
            body: dict[str, Any] = await resp.json()
        assert body["shards"] == SHARDS
        assert body["session_start_limit"]["max_concurrency"] == 2

        async def identify(shard: object) -> tuple[RawGateway, aiohttp.ClientWebSocketResponse]:
            ws = await http.ws_connect(server.gateway_url)
            gw = RawGateway(ws)
            await gw.recv()  # HELLO
            payload = {"token": server.token, "intents": 513, "shard": shard}
            await ws.send_json({"op": 2, "d": payload})
            return gw, ws

        gw, ws1 = await identify([1, SHARDS])
        ready = await gw.recv()
        expected = {str(g.id) for g in server.world.guilds_of_shard(1, SHARDS)}
        assert {g["id"] for g in ready["d"]["guilds"]} == expected and ready["d"]["shard"] == [1, 4]
        creates = [await gw.recv() for _ in expected]
        assert {c["d"]["id"] for c in creates} == expected and {c["t"] for c in creates} == {
            "GUILD_CREATE"
        }

        refused = [
            ([1, SHARDS], "already connected"),
            ([0, 3], "disagrees"),
            ([4, SHARDS], "not below"),
            ("zero", "Invalid shard"),
        ]
        for shard, reason in refused:
            _, ws = await identify(shard)
            closed = await ws.receive(timeout=2)
            assert (closed.data, reason in str(closed.extra)) == (INVALID_SHARD, True), closed
            await ws.close()
        _, ws = await identify(None)  # 6 guilds in one session: more than 3
        closed = await ws.receive(timeout=2)
        assert closed.data == SHARDING_REQUIRED and "Sharding required" in str(closed.extra)
        await ws.close()

        # A user's message in a guild of shard 1 reaches that session; one of shard 0 does not.
        shard0 = server.world.guilds_of_shard(0, SHARDS)[0]
        shard1 = server.world.guilds_of_shard(1, SHARDS)[0]
        await server.send_message(shard0.channels[0].id, server.world.member, "elsewhere")
        await server.send_message(shard1.channels[1].id, server.world.member, "here")
        event = await gw.recv()
        assert (event["t"], event["d"]["channel_id"]) == (
            "MESSAGE_CREATE",
            str(shard1.channels[1].id),
        )
        await ws1.close(code=1000)

    assert [(i.shard_id, i.shard_count, i.bucket) for i in server.identifies] == [(1, 4, 1)]
    assert list(server.identify_times()) == [1]


async def test_two_sharded_clients_each_answer_only_their_guilds(
    sharded_discord: FakeDiscord,
) -> None:
    server = sharded_discord
    first, second = ShardedEcho([0, 1]), ShardedEcho([2, 3])
    async with running_client(first, server), running_client(second, server):
        await first.tree.sync()
        assert {g.id for g in first.guilds} == {
            g.id for s in (0, 1) for g in server.world.guilds_of_shard(s, SHARDS)
        }
        assert {g.id for g in second.guilds} == {
            g.id for s in (2, 3) for g in server.world.guilds_of_shard(s, SHARDS)
        }
        assert server.sessions_by_shard() == {0: 1, 1: 1, 2: 1, 3: 1}
        for guild in server.world.guilds:
            ia = await server.invoke_command("where", channel_id=guild.channels[0].id)
            reply = await ia.wait_response()
            assert reply.content == f"shard {shard_of(guild.id, SHARDS)}"
        assert sorted(first.answered + second.answered) == sorted(g.id for g in server.world.guilds)
        assert not set(first.answered) & set(second.answered)
        assert len(first.latencies) == 2
    buckets = [(i.shard_id, i.bucket) for i in server.identifies]
    assert sorted(buckets) == [(0, 0), (1, 1), (2, 0), (3, 1)]
    assert sorted(len(t) for t in server.identify_times().values()) == [2, 2]
    server.assert_no_unknown_requests()


async def test_one_shard_dropped_resumes_and_one_invalidated_identifies_alone(
    sharded_discord: FakeDiscord,
) -> None:
    """`drop_gateway(shard_id=...)` and `invalidate_session(shard_id=...)` touch that shard's
    session only: the others keep theirs, and every guild is answered afterwards."""
    server = sharded_discord
    client = ShardedEcho([0, 1, 2, 3])
    async with running_client(client, server):
        await client.tree.sync()
        sessions = {s.shard_id: s.id for s in server.gateway.connected()}
        await server.drop_gateway(shard_id=2)  # waits for the RESUME
        assert server.resume_count == 1
        assert {s.shard_id: s.id for s in server.gateway.connected()} == sessions

        before = len(server.identifies)
        await server.invalidate_session(shard_id=3)
        await server.wait_until(
            lambda: len(server.identifies) > before and len(server.gateway.connected()) == SHARDS,
            timeout=10,
            what="shard 3 to identify again",
        )
        assert [i.shard_id for i in server.identifies[before:]] == [3]
        now = {s.shard_id: s.id for s in server.gateway.connected()}
        assert {k: v for k, v in now.items() if k != 3} == {
            k: v for k, v in sessions.items() if k != 3
        }
        assert now[3] != sessions[3]
        for guild in server.world.guilds:
            ia = await server.invoke_command("where", channel_id=guild.channels[0].id)
            assert (await ia.wait_response()).content == f"shard {shard_of(guild.id, SHARDS)}"
