"""Who may change what, what outgoing messages may ping, and the token never leaking.

Covered elsewhere, cited in the reliability report: plugins load only from the config's list and
the entry-point group (tests/bot/test_plugins.py::
test_plugins_load_only_from_the_config_and_entry_points); checkpoints load with
`weights_only=True` (exporter/checkpoint.py, tests/exporter/test_train.py); admin commands are
owner-only (tests/bot/e2e/test_discord.py::test_admin_is_owner_only).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from bot.testing import FakeDiscord, running_bot
from tests.bot.e2e.conftest import write_config

SECRET = "MTIzNDU2Nzg5.secret-bot-token.never-log-me_x9Q"


@pytest.mark.parametrize("required", [True, False])
async def test_manage_channels_rule_for_temperature_and_model(
    fake_discord: FakeDiscord, tmp_path: Path, tiny_onnx: Path, required: bool
) -> None:
    w = fake_discord.world
    path = write_config(tmp_path, fake_discord, tiny_onnx)
    overrides = {"discord.manage_channels_required": required}
    async with running_bot(fake_discord, path, overrides) as bot:
        for command, options, key in (
            ("temperature set", {"value": 1.1}, "temperature"),
            ("temperature reset", {}, "temperature"),
            ("model use", {"name": "markov"}, "model"),
        ):
            ia = await fake_discord.invoke_command(command, options, user=w.member)
            reply = await ia.wait_response()
            if required:
                assert reply.ephemeral and "Manage Channels" in (reply.content or "")
                assert await bot.settings.get(w.general.id, key) is None
            else:
                assert not reply.ephemeral, reply.content
        if not required:
            assert await bot.settings.get(w.general.id, "model") == "markov"
        # Moderators (Manage Channels) may always.
        ia = await fake_discord.invoke_command("temperature set", {"value": 0.5}, user=w.moderator)
        assert "set to 0.5" in ((await ia.wait_response()).content or "")
        # Admin commands and plugin loading stay owner-only whatever the rule.
        for command, options in (
            ("admin load", {"plugin": "markov"}),
            ("admin reload-model", {"name": "tiny"}),
        ):
            ia = await fake_discord.invoke_command(command, options, user=w.moderator)
            reply = await ia.wait_response()
            assert reply.ephemeral and "owner" in (reply.content or "")


PINGS = "@everyone @here <@&1000000000000000302> <@1000000000000000203>"


async def test_no_outgoing_message_can_ping(
    fake_discord: FakeDiscord, tmp_path: Path, tiny_onnx: Path
) -> None:
    """Generated text full of @everyone (the Markov corpus) and echoed prompts full of pings:
    every message and every interaction response goes out with mentions disabled."""
    w = fake_discord.world
    path = write_config(tmp_path, fake_discord, tiny_onnx)
    async with running_bot(fake_discord, path):
        ia = await fake_discord.invoke_command(
            "model use", {"name": "markov"}, channel_id=w.random.id, user=w.moderator
        )
        await ia.wait_response()
        for channel in (w.general, w.random):
            ia = await fake_discord.invoke_command(
                "complete", {"prompt": f"Hear ye, {PINGS}"}, channel_id=channel.id
            )
            await ia.wait_response(timeout=20)
            mid = await fake_discord.send_message(
                channel.id, w.member, f"{w.bot.mention} Hear ye, {PINGS}", mentions=[w.bot]
            )
            await fake_discord.wait_for_message(channel.id, after=mid, timeout=20)
        # An error reply too (ephemeral) and a plain command answer.
        ia = await fake_discord.invoke_command(
            "temperature set", {"value": 1.0}, channel_id=w.general.id, user=w.member
        )
        await ia.wait_response()
        ia = await fake_discord.invoke_command("model show", channel_id=w.random.id)
        await ia.wait_response()
    sent = fake_discord.sent_messages
    assert any("@everyone" in m.content for m in sent)
    assert len(sent) >= 7
    for message in sent:
        assert not message.pings and not message.pings_everyone, message
        mentions = message.allowed_mentions
        assert mentions is not None and mentions.get("parse") == [], message
        assert not mentions.get("users") and not mentions.get("roles"), message
        assert not mentions.get("replied_user"), message
    for action in fake_discord.interaction_responses:
        data = action.data or {}
        inner = data.get("data", data) if action.action == "callback" else data
        if isinstance(inner, dict) and inner.get("content"):
            assert inner.get("allowed_mentions", {}).get("parse") == [], action


async def test_the_token_never_appears_in_logs_or_messages(
    fake_discord: FakeDiscord,
    tmp_path: Path,
    tiny_onnx: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    w = fake_discord.world
    fake_discord.token = SECRET
    caplog.set_level(logging.DEBUG)  # every logger, discord.py's included
    path = write_config(tmp_path, fake_discord, tiny_onnx)
    async with running_bot(fake_discord, path, {"logging.level": "DEBUG"}) as bot:
        for command, options, user in (
            ("model show", {}, w.member),
            ("admin status", {}, w.owner),
            ("admin load", {"plugin": "no-such-plugin"}, w.owner),  # an error path
            ("complete", {"prompt": "To be", "temperature": -1.0}, w.member),  # refused
            ("admin reload-model", {"name": "tiny"}, w.owner),
        ):
            ia = await fake_discord.invoke_command(command, options, user=user, validate=False)
            await ia.wait_response(timeout=20)
        await fake_discord.drop_gateway()  # a RESUME sends the token again
        shown = f"{bot.config!r} {bot.config.discord!r} {bot.config}"
    # The fake server's own log lines are Discord's side, not the bot's.
    records = [r for r in caplog.records if not r.name.startswith("bot.testing.")]
    assert any(r.name.startswith("discord.") and r.levelno == logging.DEBUG for r in records)
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in records)
    said = json.dumps([m.payload for m in fake_discord.messages.values()])
    said += json.dumps([a.data for a in fake_discord.interaction_responses], default=str)
    for where, text in (("logs", logged), ("messages", said), ("config repr", shown)):
        assert SECRET not in text, where
        assert SECRET.split(".")[1] not in text, where
