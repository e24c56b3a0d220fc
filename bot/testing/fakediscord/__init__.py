"""A Discord-compatible server for end-to-end tests of the bot with the real discord.py client.

The default world (``server.world``), fixed ids:

| who / what          | attribute          | notes                                           |
| ------------------- | ------------------ | ----------------------------------------------- |
| application + bot   | ``bot``            | bot user id == application id                   |
| owner               | ``owner``          | app owner (``Bot.is_owner``), guild owner, Admin |
| moderator           | ``moderator``      | role with Manage Channels (1 << 4)              |
| member              | ``member``         | @everyone only: no Manage Channels              |
| another bot         | ``other_bot``      |                                                 |
| text channels       | ``general``, ``random`` | the bot can read and send in both          |
| every guild         | ``guilds``         | ``default_world(guilds=N)``: N guilds, each with |
|                     |                    | its own roles and two channels, same people     |

A guild belongs to shard ``shard_of(guild_id, shard_count)``; ``FakeDiscord(max_concurrency=...,
recommended_shards=...)`` sets what ``GET /gateway/bot`` says, and ``server.identifies`` records
every IDENTIFY with its bucket (see ``gateway.py`` for the sharding rules and close codes).

Components and context menus (see ``components.py``): ``press_button(message_id, "Label")``
sends a button press (interaction type 3) carrying the message as the user's client shows it;
``prepare_press`` builds one without sending it (two of them, then ``dispatch_interaction`` each,
make a double click); ``invoke_message_command(name, message_id)`` runs a message context-menu
command. The bot's components are validated as Discord does, and it may answer a press with
UPDATE_MESSAGE or a deferred update (``Reply.kind == "update"``, then ``"edit"``).

History (see ``history.py``): ``seed_message(channel_id, author, text, at=...)`` stores a past
message without any event, and ``seed_history(server, channel_id, count, authors=...)`` a few
hundred of them of every kind; ``GET /channels/{id}/messages`` pages as Discord does (newest
first; ``after`` gives the oldest ``limit`` after the id, ``before`` the newest before it).
``server.privileged_intents`` are those enabled in the portal: ``GET /applications/@me`` reports
them in ``flags`` (``AppFlag``), and without MESSAGE_CONTENT REST blanks other people's message
content. ``guild.add_channel`` and ``guild.add_thread`` make forums, announcement channels and
threads (``GET /guilds/{id}/threads/active``, ``GET /channels/{id}/threads/archived/public``).
``fail_next(..., skip=2)`` makes the third matching request fail (a 429 on a page).

Typical use (``bot.testing`` re-exports all of this, with the client helpers)::

    async def test_temperature(fake_discord: FakeDiscord) -> None:
        bot = make_bot()  # commands.Bot(..., **CLIENT_KWARGS)
        async with running_client(bot, fake_discord):
            w = fake_discord.world
            ia = await fake_discord.invoke_command("temperature set", {"value": 0.5})
            reply = await ia.wait_response()
            assert reply.content == "Temperature is now 0.5" and reply.ephemeral
        fake_discord.assert_no_unknown_requests()
"""

from .commands import (
    CommandNotPermitted,
    CommandNotRegistered,
    InvalidOption,
    InvocationError,
    SchemaError,
)
from .components import buttons_of
from .gateway import INVALID_SHARD, SHARDING_REQUIRED, Identify
from .history import HISTORY_START, seed_history
from .records import (
    EPHEMERAL,
    Fault,
    Heartbeat,
    InteractionAction,
    InteractionHandle,
    RecordedMessage,
    RecordedRequest,
    Reply,
)
from .server import FakeDiscord
from .world import (
    AppFlag,
    ChannelType,
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeRole,
    FakeUser,
    Intent,
    Perm,
    World,
    default_world,
    shard_of,
)

__all__ = [
    "EPHEMERAL",
    "HISTORY_START",
    "INVALID_SHARD",
    "SHARDING_REQUIRED",
    "AppFlag",
    "ChannelType",
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
    "seed_history",
    "shard_of",
]
