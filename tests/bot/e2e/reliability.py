"""Helpers shared by the reliability tests: a bot process, and a gate on a model."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bot.discord.app import CharBot
from bot.testing import FakeDiscord, discord_env

REPO = Path(__file__).resolve().parents[3]


@contextlib.asynccontextmanager
async def bot_process(
    server: FakeDiscord, log_path: Path, *argv: str, cpus: set[int] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python -m bot ARGV` as its own process against `server`, its output in `log_path`,
    yielded once it has connected and synced its commands; killed on exit if still running.
    `cpus`: the cores it may run on (its CPU affinity, as `taskset` sets it)."""
    env = {**os.environ, **discord_env(server), "PYTHONPATH": str(REPO)}
    guild_id = server.world.guild.id

    def pin() -> None:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)

    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", *argv,
            cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=pin,
        )  # fmt: skip
    try:
        await server.wait_until(
            lambda: server.gateway.connected() and server.synced_commands.get(guild_id),
            timeout=30,
            what=f"the bot process to connect; its log: {log_path}",
        )
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


class Gate:
    """Holds every completion and stream of a backend until `open()`: a generation that is "in
    progress" for as long as the test needs, without depending on how fast the machine is."""

    def __init__(self, bot: CharBot, model: str = "tiny") -> None:
        self.opened = asyncio.Event()
        self.entered = 0
        self.finished = 0
        backend = bot.models.get(model)
        original = backend.complete

        async def gated(prompt: str, params: Any = None, **kwargs: Any) -> Any:
            self.entered += 1
            await self.opened.wait()
            try:
                return await original(prompt, params, **kwargs)
            finally:
                self.finished += 1

        original_stream = backend.stream

        async def gated_stream(prompt: str, params: Any = None, **kwargs: Any) -> Any:
            self.entered += 1
            await self.opened.wait()
            try:
                async for chunk in original_stream(prompt, params, **kwargs):
                    yield chunk
            finally:
                self.finished += 1

        backend.complete = gated  # type: ignore[method-assign]
        backend.stream = gated_stream  # type: ignore[method-assign]

    def open(self) -> None:
        self.opened.set()
