"""Readiness: every owned shard connected, every configured model loaded and answering (a model
server out of reach is not), the store reachable.

Shards are read generically, so this holds for a plain `commands.Bot` (one connection, shard 0
or its `shard_id`) and an `AutoShardedBot` (each of `shard_ids`, or all `shard_count` shards).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import discord

from bot.ops.metrics import ShardState

if TYPE_CHECKING:
    from bot.core.services import Services

#: Seconds the store may take to answer a ping before the probe calls it unreachable.
STORE_PING_TIMEOUT: Final = 2.0

OK = "ok"


@dataclass(frozen=True)
class Readiness:
    """Each check's verdict: "ok", or a short sentence saying what is wrong."""

    checks: Mapping[str, str]

    @property
    def ready(self) -> bool:
        return all(verdict == OK for verdict in self.checks.values())


def shard_states(client: discord.Client) -> dict[int, ShardState]:
    """The shards this process owns, by id: connected (socket open) and heartbeat latency."""
    if isinstance(client, discord.AutoShardedClient):
        owned: list[int] = (
            list(client.shard_ids)
            if client.shard_ids is not None
            else list(range(client.shard_count or 0))  # unknown until Discord recommends one
        )
        infos = client.shards
        states = {}
        for shard_id in owned:
            info = infos.get(shard_id)
            states[shard_id] = (
                ShardState(False, math.nan)
                if info is None
                else ShardState(not info.is_closed(), info.latency)
            )
        return states
    # A plain client: `ws` is None before its first connection, and stays the old, closed
    # socket while it reconnects.
    ws: discord.gateway.DiscordWebSocket | None = client.ws
    return {client.shard_id or 0: ShardState(ws is not None and ws.open, client.latency)}


def gateway_verdict(client: discord.Client) -> str:
    states = shard_states(client)
    if not states:
        return "not connected to the gateway yet"
    down = sorted(shard for shard, state in states.items() if not state.connected)
    if down:
        return f"shard {', '.join(map(str, down))} not connected"
    if not client.is_ready():
        return "connected, waiting for READY"
    return OK


def models_verdict(services: Services) -> str:
    """Ready only when every configured model answers, as users' requests would find it."""
    models = services.models
    loaded = set(models.names)
    missing = [name for name in services.config.models.models if name not in loaded]
    if missing:
        return f"model {', '.join(missing)} not loaded"
    down = [(name, why) for name in sorted(loaded) if (why := models.unavailable(name))]
    return "; ".join(f"model {name} unavailable: {why}" for name, why in down) or OK


async def store_verdict(services: Services) -> str:
    try:
        await asyncio.wait_for(services.settings.ping(), STORE_PING_TIMEOUT)
    except TimeoutError:
        return f"the settings store did not answer within {STORE_PING_TIMEOUT:g} s"
    except Exception as exc:  # any driver's failure is a verdict here, not a crash of the probe
        return f"the settings store is unreachable: {exc}"
    return OK


async def readiness(client: discord.Client, services: Services) -> Readiness:
    return Readiness(
        {
            "gateway": gateway_verdict(client),
            "models": models_verdict(services),
            "settings_store": await store_verdict(services),
        }
    )
