"""A guild with history worth exporting, on the test Discord server: several members (one of
whom opts out), bots, system messages, mentions of the one who opts out, attachment-only
messages, unicode, a forum with posts, active and archived threads, and a channel nobody
allowed. Shared by the export tests and the end-to-end test."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from bot.testing import (
    HISTORY_START,
    ChannelType,
    FakeChannel,
    FakeDiscord,
    FakeMember,
    FakeUser,
    RecordedMessage,
    seed_history,
)

# Names and ids found nowhere else: the export must not hold a byte of them.
QUIET = FakeUser(1_000_000_000_000_000_277, "zedquist", global_name="Zed Quist")
QUIET_NICK = "Zeddy"
CHATTY = FakeUser(1_000_000_000_000_000_278, "ana_b", global_name="Ana Belle")
CHATTY_NICK = "Anita"


@dataclass
class SeededGuild:
    allowed: FakeChannel  # text channel, allowed
    forum: FakeChannel  # forum, allowed: its posts are threads
    secret: FakeChannel  # text channel nobody allowed
    threads: list[FakeChannel]  # of `allowed` and `forum`: one active, one archived, two posts
    history: list[RecordedMessage]  # everything seeded, every channel

    def in_channels(self, channel_ids: set[int]) -> list[RecordedMessage]:
        return [m for m in self.history if m.channel_id in channel_ids]

    @property
    def exportable(self) -> list[RecordedMessage]:
        ids = {self.allowed.id, *(t.id for t in self.threads)}
        return [m for m in self.in_channels(ids) if m.author_id != QUIET.id]


def seed_guild(server: FakeDiscord, count: int = 320) -> SeededGuild:
    """Before the bot connects: the people, channels and threads, and `count` messages of
    history in the allowed channel (a few more in the threads and the secret channel)."""
    w = server.world
    guild = w.guild
    guild.members.append(FakeMember(QUIET, nick=QUIET_NICK))
    guild.members.append(FakeMember(CHATTY, nick=CHATTY_NICK))
    allowed = w.general
    secret = w.random
    forum = guild.add_channel(1_000_000_000_000_000_405, "ideas", type_=ChannelType.FORUM)
    live = guild.add_thread(1_000_000_000_000_000_411, allowed, "weekend plans", owner=CHATTY)
    old = guild.add_thread(
        1_000_000_000_000_000_412, allowed, "old news", owner=w.owner, archived=True
    )
    post = guild.add_thread(1_000_000_000_000_000_413, forum, "bigger fonts", owner=w.moderator)
    theirs = guild.add_thread(1_000_000_000_000_000_414, forum, "zed's idea", owner=QUIET)
    people = [w.owner, w.moderator, w.member, CHATTY, QUIET]
    history = seed_history(
        server,
        allowed.id,
        count,
        authors=people,
        bots=[w.other_bot],
        mentioned=[QUIET, CHATTY],
    )
    start = HISTORY_START + datetime.timedelta(days=30)
    for n, thread in enumerate([live, old, post, theirs]):
        history += seed_history(
            server,
            thread.id,
            12,
            authors=people,
            mentioned=[QUIET],
            start=start + datetime.timedelta(days=n),
            seed=n + 1,
        )
    history += seed_history(server, secret.id, 30, authors=people, seed=9)
    return SeededGuild(allowed, forum, secret, [live, old, post, theirs], history)
