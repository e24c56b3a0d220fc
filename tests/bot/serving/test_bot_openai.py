"""The bot on a model of `python -m bot serve` (backend "openai"), through the fake Discord: it
answers; the model server goes away and comes back; the bot answers one sentence meanwhile,
stays up, and recovers by itself."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from bot.discord.app import CharBot
from bot.errors import CharbotError
from bot.generation.model import load_model
from bot.generation.params import GenerationParams
from bot.serving.openai_backend import OpenAIBackend
from bot.testing import FakeDiscord, running_bot
from tests.bot.e2e.conftest import write_config
from tests.bot.serving.conftest import Relay, Served


def available(bot: CharBot, name: str) -> bool:
    try:
        bot.models.get(name)
    except CharbotError:
        return False
    return True


KEY_ENV = "CHARBOT_TEST_SERVE_KEY"


async def test_the_bot_rides_out_a_stopped_model_server(
    served: Served,
    fake_discord: FakeDiscord,
    tmp_path: Path,
    tiny_onnx: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    relay = Relay(served.port)
    await relay.start()
    url = f"http://127.0.0.1:{relay.port}/v1"
    far = f'backend = "openai"\nurl = "{url}"\nmodel = "tiny"\napi_key_env = "{KEY_ENV}"'
    path = write_config(tmp_path, fake_discord, tiny_onnx, **{"models.far": far})
    monkeypatch.setenv(KEY_ENV, served.key)
    w = fake_discord.world
    channel = w.random.id

    async def say(command: str, options: Mapping[str, object] | None = None) -> str:
        ia = await fake_discord.invoke_command(
            command, dict(options or {}), channel_id=channel, user=w.moderator
        )
        await fake_discord.wait_until(
            lambda: ia.replies and not bot.completions.inflight, timeout=20, what=command
        )
        assert len(ia.replies) >= 1
        return ia.replies[-1].content or ""

    async with running_bot(fake_discord, path) as bot:
        await say("model use", {"name": "far"})
        assert (await say("complete", {"prompt": "To be"})).startswith("**To be**")
        shown = await say("model show")
        assert f"CPUExecutionProvider, 1 replica(s), model 'tiny' at {url}" in shown
        assert f"{load_model(tiny_onnx).info.parameters:,} parameters" in shown

        await relay.stop()
        for command, options in (("complete", {"prompt": "To be"}), ("model show", {})):
            answer = await say(command, options)
            # One sentence naming the server, not a traceback.
            assert url in answer and "cannot be reached" in answer, answer
            assert "\n" not in answer and "Traceback" not in answer, answer
        assert not bot.is_closed()

        await relay.start()  # the server is back: the bot notices by itself
        await fake_discord.wait_until(lambda: available(bot, "far"), timeout=15, what="recovery")
        assert (await say("complete", {"prompt": "Or not"})).startswith("**Or not**")
        await relay.stop()


async def test_the_console_chat_answers_from_the_model_server(
    served: Served, tmp_path: Path
) -> None:
    config = tmp_path / "charbot.toml"
    far = f'backend = "openai"\nurl = "{served.v1}"\nmodel = "tiny"\napi_key_env = "{KEY_ENV}"'
    config.write_text(f"[models.far]\n{far}\n\n[generation]\nlength = 20\ntemperature = 0\n")
    env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
    env |= {"CHARBOT_DATA_DIR": str(tmp_path), KEY_ENV: served.key}
    chat = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "--config", str(config), "chat",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(chat.communicate(b"To be\n/model\n"), 120)
    assert chat.returncode == 0, err.decode()
    answer, *shown = out.decode().splitlines()
    # Greedy: the text the server gives for the same request.
    backend = await OpenAIBackend.start("tiny", served.v1, timeout=30.0, api_key=served.key)
    try:
        expected = await backend.complete("To be", GenerationParams(max_length=20, temperature=0))
    finally:
        await backend.close()
    # The prompt, then the text (compared word by word: where the text starts with a space or a
    # letter depends on the model).
    assert answer.split()[:3] == ("To be" + expected.text).split()[:3], (answer, expected.text)
    assert f"1 replica(s), model 'tiny' at {served.v1}" in "\n".join(shown)
