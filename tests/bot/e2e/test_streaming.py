"""`/complete` shows a slow completion as it arrives: edits at most once a second, the last one
whole; a fast completion stays one message."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path

from bot.config import ModelSpec
from bot.errors import GenerationError
from bot.generation.backend import BackendStats, Completion, ModelInfo, StreamChunk
from bot.generation.params import GenerationParams
from bot.plugins.live_reply import EDIT_INTERVAL_SECONDS, STREAM_AFTER_SECONDS
from bot.plugins.replies import format_completion
from bot.runtime import build_bot
from bot.testing import CLIENT_KWARGS, FakeDiscord, running_client
from tests.bot.e2e.conftest import bot_config, write_config

WORDS = ("Whether ", "'tis ", "nobler ", "in ", "the ", "mind ", "to ", "suffer")
CHUNK_SECONDS = 0.4


class SlowBackend:
    """Writes one word every 0.4 s, as a large or remote model looks from Discord."""

    def __init__(self, name: str) -> None:
        self._info = ModelInfo(name, "slow", "one word every 0.4 s", level="word", provider="test")

    @property
    def info(self) -> ModelInfo:
        return self._info

    async def complete(
        self, prompt: str, params: GenerationParams | None = None, *, timeout: float | None = None
    ) -> Completion:
        async for chunk in self.stream(prompt, params, timeout=timeout):
            if chunk.completion is not None:
                return chunk.completion
        raise GenerationError("unreachable")

    async def stream(
        self, prompt: str, params: GenerationParams | None = None, *, timeout: float | None = None
    ) -> AsyncIterator[StreamChunk]:
        started = time.monotonic()
        for word in WORDS:
            await asyncio.sleep(CHUNK_SECONDS)
            yield StreamChunk(word)
        text, seconds = "".join(WORDS), time.monotonic() - started
        completion = Completion(text, prompt, len(WORDS), "length", (), self.name, seconds)
        yield StreamChunk("", completion)

    @property
    def name(self) -> str:
        return self._info.name

    async def reload(self, path: Path | str) -> ModelInfo:
        raise GenerationError("The slow test model cannot be reloaded.")

    def stats(self) -> BackendStats:
        return BackendStats(0, 0, 0, 0, 0.0)

    async def close(self) -> None:
        return None


async def start_slow(spec: ModelSpec) -> SlowBackend:
    return SlowBackend(spec.name)


async def test_a_slow_completion_is_edited_in_as_it_arrives(
    fake_discord: FakeDiscord, tmp_path: Path, tiny_onnx: Path
) -> None:
    w = fake_discord.world
    slow = 'backend = "slow"\npath = "unused"'
    path = write_config(tmp_path, fake_discord, tiny_onnx, **{"models.slow": slow})
    bot = await build_bot(bot_config(path, fake_discord), **CLIENT_KWARGS)
    bot.models.register_kind("slow", start_slow)
    async with running_client(bot, fake_discord):
        # The tiny model answers at once: one message, never edited.
        fast = await fake_discord.invoke_command("complete", {"prompt": "To be"}, user=w.member)
        await fake_discord.wait_until(
            lambda: fast.replies and not bot.completions.inflight, what="the fast answer"
        )
        assert [r.kind for r in fast.replies] == ["followup"]

        ia = await fake_discord.invoke_command(
            "model use", {"name": "slow"}, channel_id=w.random.id, user=w.moderator
        )
        await ia.wait_response()
        ia = await fake_discord.invoke_command(
            "complete", {"prompt": "To be"}, channel_id=w.random.id, user=w.member
        )
        await fake_discord.wait_until(
            lambda: ia.replies and not bot.completions.inflight, timeout=15, what="the answer"
        )
    replies = ia.replies
    # The first message after a second, then edits of that message.
    assert len(replies) >= 3, replies
    assert [r.kind for r in replies] == ["followup"] + ["edit"] * (len(replies) - 1)
    assert len({r.message_id for r in replies}) == 1
    assert replies[0].at - ia.created_at >= STREAM_AFTER_SECONDS
    gaps = [b.at - a.at for a, b in itertools.pairwise(replies)]
    assert min(gaps) >= EDIT_INTERVAL_SECONDS, gaps
    # Each partial is a growing beginning of the answer; the last edit is the whole of it.
    final = Completion("".join(WORDS), "To be", len(WORDS), "length", (), "slow", 0.0)
    assert replies[-1].content == format_completion(final)
    shown = [(r.content or "").removesuffix(" …") for r in replies[:-1]]
    assert all(final.text.startswith(s.removeprefix("**To be**")) for s in shown), shown
    assert all(len(a) < len(b) for a, b in itertools.pairwise(shown)), shown
