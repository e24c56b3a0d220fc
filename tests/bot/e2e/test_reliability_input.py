"""Bad input reaches the bot: empty, huge and odd prompts, out-of-range options sent past the
client's checks, unknown commands, broken config files. Each gets a clear answer, never a crash."""

from __future__ import annotations

import copy
from pathlib import Path

import discord.utils
import pytest

from bot.cli import main
from bot.errors import InvalidParamsError
from bot.testing import CommandNotRegistered, FakeDiscord, InvalidOption, running_bot
from tests.bot.e2e.conftest import ParamSpy, write_config


async def test_empty_and_one_character_prompts(
    fake_discord: FakeDiscord, tmp_path: Path, tiny_onnx: Path
) -> None:
    w = fake_discord.world
    path = write_config(tmp_path, fake_discord, tiny_onnx)
    async with running_bot(fake_discord, path) as bot:
        spy = ParamSpy()
        spy.attach(bot)
        # 0 characters: a mention with nothing after it.
        mid = await fake_discord.send_message(
            w.general.id, w.member, w.bot.mention, mentions=[w.bot]
        )
        sent = await fake_discord.wait_for_message(w.general.id, after=mid, timeout=20)
        assert sent.content.strip()
        ia = await fake_discord.invoke_command("complete", {"prompt": "T"})
        assert ((await ia.wait_response(timeout=20)).content or "").startswith("**T**")
    assert [prompt for _, prompt, _ in spy.calls] == ["", "T"]


async def test_a_100000_character_prompt_is_refused_in_one_sentence(
    fake_discord: FakeDiscord, tmp_path: Path, tiny_onnx: Path
) -> None:
    path = write_config(tmp_path, fake_discord, tiny_onnx)
    async with running_bot(fake_discord, path) as bot:
        with pytest.raises(InvalidParamsError, match="100000 characters long; the limit is 2000"):
            await bot.completions.complete(
                fake_discord.world.general.id, ("To be " * 20_000)[:100_000]
            )
        # And the engine still serves.
        done = await bot.completions.complete(fake_discord.world.general.id, "To be", length=5)
        assert done.tokens >= 5  # the length, then perhaps the end of a word (clean_end)


ODD_PROMPTS = {
    "emoji": "To be 🙂👍🏽",
    "rtl": "To be שלום مرحبا",
    "control": "To\x00be\x07,\x1b[31m or",
    "zwj": "To be 👨\u200d👩\u200d👧 or\u200b not",
}


async def test_odd_characters_are_answered_and_reported(
    fake_discord: FakeDiscord, tmp_path: Path, tiny_onnx: Path
) -> None:
    w = fake_discord.world
    path = write_config(tmp_path, fake_discord, tiny_onnx)
    async with running_bot(fake_discord, path):
        for name, prompt in ODD_PROMPTS.items():
            ia = await fake_discord.invoke_command("complete", {"prompt": prompt})
            content = (await ia.wait_response(timeout=20)).content or ""
            assert content.startswith("**To"), (name, content)
            assert "does not know" in content, (name, content)
            mid = await fake_discord.send_message(
                w.random.id, w.member, f"{w.bot.mention} {prompt}", mentions=[w.bot]
            )
            sent = await fake_discord.wait_for_message(w.random.id, after=mid, timeout=20)
            assert "does not know" in sent.content, (name, sent.content)


# JSON has no NaN or infinity: discord.py's stdlib parser accepts them (as Python writes them), but
# where orjson is installed discord.py parses with it, which drops the connection on such a frame
# before the bot sees it, so there only the finite values can reach the bot.
NON_FINITE = [] if discord.utils.HAS_ORJSON else [float("nan"), float("inf")]
BAD_TEMPERATURES = [*NON_FINITE, -1.0, 2.0001]


async def test_out_of_range_options_sent_past_the_client_are_refused_ephemerally(
    fake_discord: FakeDiscord, tmp_path: Path, tiny_onnx: Path
) -> None:
    """discord.py does not check `Range` bounds itself (Discord does); a modified client or a
    forged interaction can send anything, so the bot checks again before doing any work."""
    w = fake_discord.world
    path = write_config(tmp_path, fake_discord, tiny_onnx)
    async with running_bot(fake_discord, path) as bot:
        spy = ParamSpy()
        spy.attach(bot)
        for value in BAD_TEMPERATURES:
            ia = await fake_discord.invoke_command(
                "complete", {"prompt": "To be", "temperature": value}, validate=False
            )
            reply = await ia.wait_response(timeout=20)
            assert reply.ephemeral and "temperature" in (reply.content or ""), (value, reply)
            assert not ia.deferred  # refused before any work started
            ia = await fake_discord.invoke_command(
                "temperature set", {"value": value}, user=w.moderator, validate=False
            )
            reply = await ia.wait_response()
            assert reply.ephemeral and "from 0.0 to 2.0" in (reply.content or ""), (value, reply)
        for length in (0, 10**9):
            ia = await fake_discord.invoke_command(
                "complete", {"prompt": "To be", "length": length}, validate=False
            )
            reply = await ia.wait_response(timeout=20)
            assert reply.ephemeral and "length" in (reply.content or ""), (length, reply)
        assert spy.calls == []
        assert await bot.settings.get(w.general.id, "temperature") is None


async def test_unknown_commands_subcommands_and_options(
    fake_discord: FakeDiscord, tmp_path: Path, tiny_onnx: Path
) -> None:
    path = write_config(tmp_path, fake_discord, tiny_onnx)
    async with running_bot(fake_discord, path) as bot:
        # What Discord's client refuses to send at all:
        with pytest.raises(CommandNotRegistered):
            await fake_discord.invoke_command("temperature frobnicate")
        with pytest.raises(InvalidOption):
            await fake_discord.invoke_command("complete", {"prompt": "x", "colour": "red"})
        # What a forged or stale interaction could carry: the bot survives it.
        ia = await fake_discord.invoke_command("temperature show")
        await ia.wait_response()
        for data in (
            {"id": "4242", "name": "no-such-command", "type": 1, "options": []},
            {
                "id": ia.payload["data"]["id"],
                "name": "temperature",
                "type": 1,
                "options": [{"name": "frobnicate", "type": 1, "options": []}],
            },
            {
                "id": ia.payload["data"]["id"],
                "name": "temperature",
                "type": 1,
                "options": [
                    {
                        "name": "set",
                        "type": 1,
                        "options": [{"name": "colour", "type": 3, "value": "red"}],
                    }
                ],
            },
        ):
            raw = copy.deepcopy(ia.payload)
            raw["id"] = str(fake_discord.snowflakes.next())
            raw["data"] = data
            await fake_discord.gateway.dispatch("INTERACTION_CREATE", raw)
        ia = await fake_discord.invoke_command("temperature show")
        assert "default temperature" in ((await ia.wait_response()).content or "")
        assert not bot.is_closed()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('[engine]\nworkers = "two"\n', ["engine.workers", "whole number"]),
        ("[generation]\ntemperature = -3\n", ["generation.temperature"]),
        ("[discord]\nowner_ids = 5\n", ["discord.owner_ids", "array"]),
        ("[engine]\nwokers = 2\n", ["wokers"]),
        ("[nonsense]\nx = 1\n", ["nonsense"]),
    ],
    ids=["str-for-int", "out-of-range", "int-for-list", "unknown-key", "unknown-section"],
)
def test_a_bad_config_file_is_one_sentence_and_a_nonzero_exit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, words: list[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    assert main(["--config", str(path), "chat"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert "bad.toml" in err and all(word in err for word in words), err
