"""Sharding across processes: which shards this process runs, and IDENTIFY spacing per bucket.

Discord sends guild `g`'s events to shard `(g >> 22) % shard_count`; a process runs some shards
(`discord.shard_ids`, all of them when empty). Discord also allows one IDENTIFY per rate-limit
bucket (`shard_id % max_concurrency`) every 5 s, across every process of the bot. `IdentifyGate`
keeps that rule: before a shard identifies it takes its bucket's lock and holds it for the
spacing. The lock comes from the settings store, so processes sharing a PostgreSQL store share
it (an advisory lock); a SQLite store's lock covers one process only, which is why the README
says to start such processes 5 s apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import discord

from bot.errors import CharbotError

log = logging.getLogger(__name__)


def runs_shard_zero(shard_ids: Sequence[int]) -> bool:
    """Whether a process configured with `shard_ids` (empty: all) runs shard 0."""
    return not shard_ids or 0 in shard_ids


def bucket_of(shard_id: int, max_concurrency: int) -> int:
    return shard_id % max(1, max_concurrency)


class SharedLocks(Protocol):
    """Named locks shared by every process using the same store (see the stores)."""

    def exclusive(self, name: str) -> AbstractAsyncContextManager[None]: ...


class LocalLocks:
    """Named locks within this process: what a store that other processes cannot see offers."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            yield


class IdentifyGate:
    """One IDENTIFY per bucket every `spacing` seconds, for everyone sharing `locks`.

    `wait_turn` returns once this shard may identify; its bucket's lock stays held for `spacing`
    seconds after that, in a task of its own, so the next shard of the bucket (here or in another
    process) waits for the rest of the spacing. When the shared lock cannot be had (the database
    is unreachable), this process's own locks keep at least its shards apart.
    """

    def __init__(self, locks: SharedLocks, spacing: float, max_concurrency: int = 1) -> None:
        self.locks = locks
        self.spacing = spacing
        self.max_concurrency = max_concurrency
        self._local = LocalLocks()
        self._holds: set[asyncio.Task[None]] = set()

    async def wait_turn(self, shard_id: int) -> None:
        bucket = bucket_of(shard_id, self.max_concurrency)
        name = f"charbot.identify.{bucket}"
        try:
            await self._hold(self.locks.exclusive(name))
        except CharbotError as exc:
            log.warning(
                "shard %d: the shared IDENTIFY lock is unavailable (%s); spacing this process's "
                "shards only",
                shard_id,
                exc,
            )
            await self._hold(self._local.exclusive(name))
        log.debug("shard %d: IDENTIFY turn in bucket %d", shard_id, bucket)

    async def _hold(self, lock: AbstractAsyncContextManager[None]) -> None:
        acquired: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def hold() -> None:
            try:
                async with lock:
                    acquired.set_result(None)
                    await asyncio.sleep(self.spacing)
            except asyncio.CancelledError:
                if not acquired.done():
                    acquired.cancel()
                raise
            except CharbotError as exc:
                if not acquired.done():
                    acquired.set_exception(exc)
                else:  # releasing failed: a lost connection has released it already
                    log.warning("the IDENTIFY lock was released with an error: %s", exc)

        task = asyncio.create_task(hold())
        self._holds.add(task)
        task.add_done_callback(self._holds.discard)
        await acquired

    async def close(self) -> None:
        """Release every lock still held (shutdown)."""
        for task in list(self._holds):
            task.cancel()
        await asyncio.gather(*self._holds, return_exceptions=True)


def latency_text(seconds: float) -> str:
    """A shard's heartbeat latency for people; discord.py reports inf/nan before the first ACK."""
    return f"{seconds * 1000:.0f} ms" if math.isfinite(seconds) else "no heartbeat yet"


def shards_text(client: discord.AutoShardedClient) -> str:
    """This process's shards out of the total, each one's latency, and its guild count."""
    latencies = ", ".join(f"{sid}: {latency_text(lat)}" for sid, lat in sorted(client.latencies))
    return (
        f"Shards {latencies or 'none connected'} (of {client.shard_count or '?'}); "
        f"guilds {len(client.guilds)}"
    )
