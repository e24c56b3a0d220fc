"""The bot end to end: real discord.py client, FakeDiscord on 127.0.0.1, a tiny real model."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.testing import CommandNotRegistered, FakeDiscord, RecordedMessage, running_bot
from tests.bot.e2e.conftest import ParamSpy, RunBot, write_config

NO_PINGS: dict[str, list[str]] = {"parse": []}


async def test_channel_temperatures_reach_the_engine(
    fake_discord: FakeDiscord, run_bot: RunBot
) -> None:
    w = fake_discord.world
    async with run_bot() as bot:
        spy = ParamSpy()
        spy.attach(bot)
        for channel, value in ((w.general, 0.2), (w.random, 1.5)):
            ia = await fake_discord.invoke_command(
                "temperature set", {"value": value}, channel_id=channel.id, user=w.moderator
            )
            assert "set to" in ((await ia.wait_response()).content or "")
        for channel in (w.general, w.random):
            ia = await fake_discord.invoke_command(
                "complete", {"prompt": "To be"}, channel_id=channel.id, user=w.member
            )
            reply = await ia.wait_response(timeout=20)
            assert reply.content is not None and reply.content.startswith("**To be**")
            assert reply.allowed_mentions == NO_PINGS
        # A per-call temperature beats the channel's.
        ia = await fake_discord.invoke_command(
            "complete", {"prompt": "Or", "temperature": 0.0}, channel_id=w.random.id, user=w.member
        )
        await ia.wait_response(timeout=20)
    temperatures = [params.temperature for _, _, params in spy.calls]
    assert temperatures == [0.2, 1.5, 0.0]
    fake_discord.assert_no_unknown_requests()
    assert None not in fake_discord.synced_commands  # never synced globally


async def test_show_and_reset(fake_discord: FakeDiscord, run_bot: RunBot) -> None:
    w = fake_discord.world
    async with run_bot():

        async def say(command: str, options: dict[str, object] | None = None) -> str:
            ia = await fake_discord.invoke_command(
                command, options or {}, channel_id=w.general.id, user=w.moderator
            )
            return (await ia.wait_response()).content or ""

        assert "default temperature, 0.8" in await say("temperature show")
        await say("temperature set", {"value": 1.25})
        assert "temperature is 1.25" in await say("temperature show")
        assert "reset" in await say("temperature reset")
        assert "default temperature" in await say("temperature show")


async def test_member_without_manage_channels_is_refused(
    fake_discord: FakeDiscord, run_bot: RunBot
) -> None:
    w = fake_discord.world
    async with run_bot() as bot:
        ia = await fake_discord.invoke_command(
            "temperature set", {"value": 1.0}, channel_id=w.general.id, user=w.member
        )
        reply = await ia.wait_response()
        assert reply.ephemeral and "Manage Channels" in (reply.content or "")
        assert await bot.settings.get(w.general.id, "temperature") is None


async def test_settings_survive_a_restart(fake_discord: FakeDiscord, run_bot: RunBot) -> None:
    w = fake_discord.world
    async with run_bot():
        ia = await fake_discord.invoke_command(
            "temperature set", {"value": 0.3}, channel_id=w.random.id, user=w.moderator
        )
        await ia.wait_response()
    async with run_bot():
        ia = await fake_discord.invoke_command(
            "temperature show", {}, channel_id=w.random.id, user=w.member
        )
        assert "temperature is 0.3" in ((await ia.wait_response()).content or "")


async def test_mention_reply_and_never_itself_or_bots(
    fake_discord: FakeDiscord, run_bot: RunBot
) -> None:
    w = fake_discord.world
    async with run_bot():
        mid = await fake_discord.send_message(
            w.general.id, w.member, f"{w.bot.mention} Once upon", mentions=[w.bot]
        )
        sent = await fake_discord.wait_for_message(w.general.id, after=mid, timeout=20)
        assert sent.content.startswith("**Once upon**")
        assert sent.message_reference is not None
        assert sent.allowed_mentions == {"parse": [], "replied_user": False}
        assert not sent.pings
        ignored = {
            await fake_discord.send_message(
                w.general.id, author, f"{w.bot.mention} hi", mentions=[w.bot]
            )
            for author in (w.other_bot, w.bot)
        }

        def answers_ignored(message: RecordedMessage) -> bool:
            ref = message.message_reference or {}
            return int(ref.get("message_id", 0)) in ignored

        with pytest.raises(TimeoutError):
            await fake_discord.wait_for_message(w.general.id, answers_ignored, timeout=1.0)


async def test_commands_work_after_the_gateway_drops(
    fake_discord: FakeDiscord, run_bot: RunBot
) -> None:
    w = fake_discord.world
    async with run_bot():
        await fake_discord.drop_gateway()
        assert fake_discord.resume_count >= 1
        ia = await fake_discord.invoke_command(
            "complete", {"prompt": "The"}, channel_id=w.general.id, user=w.member
        )
        assert (await ia.wait_response(timeout=20)).content


async def test_markov_in_one_channel_rnn_in_another(
    fake_discord: FakeDiscord, run_bot: RunBot
) -> None:
    """The Markov plugin (an entry point) serves one channel; its text pings nobody."""
    w = fake_discord.world
    async with run_bot() as bot:
        spy = ParamSpy()
        spy.attach(bot)
        ia = await fake_discord.invoke_command(
            "model use", {"name": "markov"}, channel_id=w.random.id, user=w.moderator
        )
        assert "markov" in ((await ia.wait_response()).content or "")
        ia = await fake_discord.invoke_command(
            "model show", {}, channel_id=w.random.id, user=w.member
        )
        assert "markov" in ((await ia.wait_response()).content or "")
        replies = {}
        for channel in (w.general, w.random):
            ia = await fake_discord.invoke_command(
                "complete", {"prompt": "Hear ye,"}, channel_id=channel.id, user=w.member
            )
            replies[channel.id] = await ia.wait_response(timeout=20)
    assert [name for name, _, _ in spy.calls] == ["tiny", "markov"]
    markov = replies[w.random.id]
    assert "@everyone" in (markov.content or "")
    assert markov.allowed_mentions == NO_PINGS
    messages = [m for m in fake_discord.messages.values() if "@everyone" in (m.content or "")]
    assert messages and not any(m.pings_everyone for m in messages)


async def test_admin_is_owner_only(fake_discord: FakeDiscord, run_bot: RunBot) -> None:
    w = fake_discord.world
    async with run_bot() as bot:
        ia = await fake_discord.invoke_command(
            "admin unload", {"plugin": "temperature"}, channel_id=w.general.id, user=w.moderator
        )
        reply = await ia.wait_response()
        assert reply.ephemeral and "owner" in (reply.content or "")
        assert "temperature" in bot.loaded_plugins()
        ia = await fake_discord.invoke_command(
            "admin unload", {"plugin": "temperature"}, channel_id=w.general.id, user=w.owner
        )
        assert "unloaded" in ((await ia.wait_response()).content or "")
        # The owner's unload re-synced the guild's commands: /temperature is gone.
        with pytest.raises(CommandNotRegistered):
            await fake_discord.invoke_command(
                "temperature show", {}, channel_id=w.general.id, user=w.owner
            )
        ia = await fake_discord.invoke_command(
            "admin status", {}, channel_id=w.general.id, user=w.owner
        )
        status = (await ia.wait_response()).content or ""
        assert "served" in status
        # One process, one shard (Discord's recommendation), one guild.
        assert status.startswith("Shards 0: ") and status.split("\n")[0].endswith(
            "(of 1); guilds 1"
        )


async def test_a_per_user_cooldown_shared_by_complete_and_mentions(
    fake_discord: FakeDiscord, tmp_path: Path, tiny_onnx: Path
) -> None:
    w = fake_discord.world
    path = write_config(tmp_path, fake_discord, tiny_onnx)
    async with running_bot(fake_discord, path, {"discord.cooldown_seconds": 30.0}) as bot:
        spy = ParamSpy()
        spy.attach(bot)
        first = await fake_discord.invoke_command(
            "complete", {"prompt": "To be"}, channel_id=w.general.id, user=w.member
        )
        assert (await first.wait_response(timeout=20)).content
        again = await fake_discord.invoke_command(
            "complete", {"prompt": "Or not"}, channel_id=w.random.id, user=w.member
        )
        refused = await again.wait_response()
        assert refused.ephemeral and "Slow down" in (refused.content or "")
        # A mention from the same user within the cooldown is ignored (silently: no spam) ...
        mid = await fake_discord.send_message(
            w.general.id, w.member, f"{w.bot.mention} hi", mentions=[w.bot]
        )
        with pytest.raises(TimeoutError):
            await fake_discord.wait_for_message(w.general.id, after=mid, timeout=1.0)
        # ... while another user is served at once.
        other = await fake_discord.invoke_command(
            "complete", {"prompt": "The"}, channel_id=w.general.id, user=w.moderator
        )
        assert (await other.wait_response(timeout=20)).content
    assert [prompt for _, prompt, _ in spy.calls] == ["To be", "The"]


async def test_global_sync_only_when_asked(
    fake_discord: FakeDiscord, tmp_path: Path, tiny_onnx: Path
) -> None:
    path = write_config(tmp_path, fake_discord, tiny_onnx)
    async with running_bot(fake_discord, path):
        pass
    assert None not in fake_discord.synced_commands
    async with running_bot(fake_discord, path, {"discord.sync_global": True}):
        pass
    names = {command["name"] for command in fake_discord.synced_commands[None]}
    assert {"complete", "temperature", "model", "admin"} <= names
