"""Testing tools for charbot and its plugins: a Discord-compatible server, and the helpers that
run the real discord.py client or the whole charbot app against it.

A plugin author tests a slash command as the built-ins are tested (see ``docs/testing.md``)::

    # conftest.py
    from bot.testing.fixtures import *  # noqa: F403

    # test_plugin.py
    from bot.testing import FakeDiscord, running_bot

    async def test_stats(fake_discord: FakeDiscord, tmp_path: Path) -> None:
        config = write_my_config(tmp_path)  # a charbot.toml naming the plugin and its model
        async with running_bot(fake_discord, config):
            reply = await (await fake_discord.invoke_command("markov stats")).wait_response()
            assert "words" in reply.content

The server (``bot.testing.fakediscord``) speaks Discord's REST and gateway protocols over aiohttp
(which discord.py brings); only ``bot.testing.fixtures`` imports pytest, and nothing in ``bot``
outside this package imports it.
"""

from bot.testing.client import (
    CLIENT_KWARGS,
    ClientTimeouts,
    discord_env,
    discord_pointed_at,
    running_bot,
    running_client,
)
from bot.testing.fakediscord import (
    EPHEMERAL,
    HISTORY_START,
    INVALID_SHARD,
    SHARDING_REQUIRED,
    AppFlag,
    ChannelType,
    CommandNotPermitted,
    CommandNotRegistered,
    FakeChannel,
    FakeDiscord,
    FakeGuild,
    FakeMember,
    FakeRole,
    FakeUser,
    Fault,
    Heartbeat,
    Identify,
    Intent,
    InteractionAction,
    InteractionHandle,
    InvalidOption,
    InvocationError,
    Perm,
    RecordedMessage,
    RecordedRequest,
    Reply,
    SchemaError,
    World,
    buttons_of,
    default_world,
    seed_history,
    shard_of,
)

__all__ = [
    "CLIENT_KWARGS",
    "EPHEMERAL",
    "HISTORY_START",
    "INVALID_SHARD",
    "SHARDING_REQUIRED",
    "AppFlag",
    "ChannelType",
    "ClientTimeouts",
    "CommandNotPermitted",
    "CommandNotRegistered",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeMember",
    "FakeRole",
    "FakeUser",
    "Fault",
    "Heartbeat",
    "Identify",
    "Intent",
    "InteractionAction",
    "InteractionHandle",
    "InvalidOption",
    "InvocationError",
    "Perm",
    "RecordedMessage",
    "RecordedRequest",
    "Reply",
    "SchemaError",
    "World",
    "buttons_of",
    "default_world",
    "discord_env",
    "discord_pointed_at",
    "running_bot",
    "running_client",
    "seed_history",
    "shard_of",
]
