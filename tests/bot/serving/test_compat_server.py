"""The bot's `openai` backend against a server that is not charbot's (`compatserver.py`): no
usage, a usage-only last chunk, [DONE] alone, 429 with Retry-After, a tagged model id, basic auth
in the URL; and a bot on it, on Discord and in the console chat."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.errors import EngineBusyError
from bot.generation.params import GenerationParams
from bot.serving.openai_backend import OpenAIBackend
from bot.testing import FakeDiscord, running_bot
from tests.bot.e2e.conftest import write_config
from tests.bot.serving.compatserver import MODEL_ID, TEXT, CompatServer, Quirks

PARAMS = GenerationParams(max_length=30, temperature=0.5, top_k=5, seed=3, stop=("players",))


@pytest.fixture
async def compat() -> AsyncIterator[CompatServer]:
    server = CompatServer()
    await server.start()
    yield server
    await server.stop()


async def backend_on(server: CompatServer, url: str | None = None) -> OpenAIBackend:
    # The config's model id without Ollama's tag: the listed "llama3.2:latest" is that model.
    backend = await OpenAIBackend.start("far", url or server.v1, timeout=10.0, model="llama3.2")
    assert backend.unavailable is None, backend.unavailable
    return backend


async def test_answers_without_usage_count_characters(compat: CompatServer) -> None:
    backend = await backend_on(compat)
    try:
        done = await backend.complete("To be", GenerationParams(max_length=30))
        assert (done.text, done.tokens, done.finish_reason) == (TEXT[:30], 30, "length")
        assert done.prompt_tokens == 0  # not said: not guessed
        compat.quirks.usage = True
        assert (await backend.complete("To be", PARAMS)).prompt_tokens == 5
        # What it sent: the standard fields, top_k as an extra (only when on), the model id as
        # the config gives it.
        sent = compat.bodies()[-1]
        assert sent == {
            "model": "llama3.2", "prompt": "To be", "max_tokens": 30, "temperature": 0.5,
            "top_p": 1.0, "top_k": 5, "seed": 3, "stop": ["players"],
        }  # fmt: skip
        assert "top_k" not in compat.bodies()[0]
    finally:
        await backend.close()


@pytest.mark.parametrize("done_only", [False, True])
async def test_streams_end_either_way(compat: CompatServer, done_only: bool) -> None:
    """A usage-only last chunk (OpenAI, vLLM), or [DONE] alone with no finish reason."""
    compat.quirks = Quirks(done_only=done_only)
    backend = await backend_on(compat)
    try:
        length = GenerationParams(max_length=40)
        chunks = [chunk async for chunk in backend.stream("To be", length)]
        assert "".join(c.text for c in chunks) == TEXT[:40]
        last = chunks[-1].completion
        assert last is not None and last.text == TEXT[:40]
        assert (last.tokens, last.finish_reason) == (40, "length")
        assert all(c.completion is None for c in chunks[:-1])
        # Without a reason, a text shorter than its length ended at a stop string.
        stop = GenerationParams(max_length=80, stop=("players",))
        stopped = [chunk async for chunk in backend.stream("To be", stop)]
        done = stopped[-1].completion
        assert done is not None and done.text == TEXT[: TEXT.index("players")]
        assert done.finish_reason == "stop"
    finally:
        await backend.close()


async def test_a_429_is_tried_once_more_after_its_retry_after(compat: CompatServer) -> None:
    backend = await backend_on(compat)
    try:
        compat.quirks.busy = 1
        assert (await backend.complete("To be", GenerationParams(max_length=5))).text == TEXT[:5]
        compat.quirks.busy = 1
        chunks = [c async for c in backend.stream("To be", GenerationParams(max_length=5))]
        assert chunks[-1].completion is not None
        compat.quirks.busy = 2  # busy twice: the server's own sentence
        with pytest.raises(EngineBusyError, match="server busy, please retry"):
            await backend.complete("To be")
        compat.quirks.busy, compat.quirks.retry_after = 1, "3600"  # too long to wait
        with pytest.raises(EngineBusyError):
            await backend.complete("To be")
        assert compat.quirks.busy == 0
    finally:
        await backend.close()


async def test_basic_auth_in_the_url_is_sent_and_never_shown(
    compat: CompatServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"http://admin:hunter2@127.0.0.1:{compat.port}/v1"
    backend = await backend_on(compat, url)
    try:
        await backend.complete("To be", GenerationParams(max_length=5))
        assert compat.received[-1].headers["Authorization"].startswith("Basic ")
        shown = backend.info.provider
        assert shown == f"model 'llama3.2' at http://admin:***@127.0.0.1:{compat.port}/v1"
    finally:
        await backend.close()
    assert "hunter2" not in "\n".join(r.getMessage() for r in caplog.records)


def openai_table(server: CompatServer) -> str:
    return f'backend = "openai"\nurl = "{server.v1}"\nmodel = "llama3.2"'


async def test_a_bot_answers_on_discord_from_it(
    compat: CompatServer, fake_discord: FakeDiscord, tmp_path: Path, tiny_onnx: Path
) -> None:
    path = write_config(tmp_path, fake_discord, tiny_onnx, **{"models.far": openai_table(compat)})
    w = fake_discord.world
    async with running_bot(fake_discord, path) as bot:
        use = await fake_discord.invoke_command(
            "model use", {"name": "far"}, channel_id=w.random.id, user=w.moderator
        )
        await use.wait_response()
        ia = await fake_discord.invoke_command(
            "complete", {"prompt": "To be"}, channel_id=w.random.id, user=w.moderator
        )
        await fake_discord.wait_until(
            lambda: ia.replies and not bot.completions.inflight, timeout=20, what="/complete"
        )
        # Streamed (SSE) into the reply's edits; the bot's clean ending applies to the text the
        # server sent (it ignores clean_end), so it ends at a whole word.
        assert (ia.replies[-1].content or "").startswith("**To be**All the world's a stage")
        assert any(b.get("stream") for b in compat.bodies())
        show = await fake_discord.invoke_command(
            "model show", {}, channel_id=w.random.id, user=w.moderator
        )
        shown = (await show.wait_response()).content or ""
        assert f"model 'llama3.2' at {compat.v1}" in shown, shown


async def test_the_console_chat_answers_from_it(compat: CompatServer, tmp_path: Path) -> None:
    config = tmp_path / "charbot.toml"
    config.write_text(f"[models.far]\n{openai_table(compat)}\n\n[generation]\nlength = 20\n")
    env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
    env["CHARBOT_DATA_DIR"] = str(tmp_path)
    # The server runs on this test's event loop: the chat runs beside it, not blocking it.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "--config", str(config), "chat",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(b"To be\n/model\n"), 120)
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0].startswith("To be" + TEXT[:10]), lines
    assert f"model 'llama3.2' at {compat.v1}" in out.decode()
    assert MODEL_ID == "llama3.2:latest"  # found by its id without the tag
