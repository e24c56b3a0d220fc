"""Seeded channel history: a few hundred (or thousand) past messages of the kinds a real
server has, for tests and benchmarks of what reads history through REST.

``seed_history`` writes, in time order and reproducibly for a ``seed``, a mix of

- plain text from the ``authors`` (with accents, CJK and emoji in some lines),
- replies to an earlier message (every 9th message),
- mentions of the people in ``mentioned``, as ``<@id>`` (every 7th),
- attachment-only messages (every 23rd),
- messages from the ``bots`` (every 13th, when there are any),
- system messages: a member joining (type 7, no content; every 31st).
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Sequence

from .records import RecordedMessage
from .surface import Server
from .world import FakeUser

GUILD_MEMBER_JOIN = 7

#: When seeded history starts unless told otherwise; one message a minute from there.
HISTORY_START = datetime.datetime(2024, 3, 1, 12, 0, tzinfo=datetime.UTC)

_WORDS = (
    "the", "river", "runs", "past", "our", "old", "house", "and", "we", "talk", "about",
    "music", "late", "into", "night", "coffee", "again", "tomorrow", "maybe", "never", "why",
    "not", "look", "at", "this", "game", "tonight", "who", "is", "in",
)  # fmt: skip
_FLAVOUR = ("", "", "", " café", " 日本語", " 🎉", " naïve", " ça va?", " ¿qué?", " ✨")


def seed_history(
    server: Server,
    channel_id: int,
    count: int,
    *,
    authors: Sequence[FakeUser],
    bots: Sequence[FakeUser] = (),
    mentioned: Sequence[FakeUser] = (),
    start: datetime.datetime = HISTORY_START,
    seed: int = 0,
) -> list[RecordedMessage]:
    """``count`` messages in ``channel_id``, one a minute from ``start`` (see the module doc)."""
    if not authors:
        raise ValueError("seed_history needs at least one author")
    rng = random.Random(seed)
    seeded: list[RecordedMessage] = []
    for i in range(count):
        at = start + datetime.timedelta(minutes=i)
        author = rng.choice(authors)
        if i % 31 == 30:
            message = server.seed_message(channel_id, author, at=at, type_=GUILD_MEMBER_JOIN)
        elif i % 13 == 12 and bots:
            message = server.seed_message(channel_id, rng.choice(bots), f"beep {i} 🤖", at=at)
        elif i % 23 == 22:
            message = server.seed_message(channel_id, author, at=at, attachments=[f"p{i}.png"])
        elif i % 7 == 3 and mentioned:
            person = rng.choice(mentioned)
            text = f"{_line(rng)} {person.mention} {_line(rng)}"
            message = server.seed_message(channel_id, author, text, at=at, mentions=[person])
        elif i % 9 == 5 and seeded:
            earlier = rng.choice(seeded[-10:]).id
            message = server.seed_message(channel_id, author, _line(rng), at=at, reply_to=earlier)
        else:
            message = server.seed_message(channel_id, author, _line(rng), at=at)
        seeded.append(message)
    return seeded


def _line(rng: random.Random) -> str:
    words = rng.sample(_WORDS, rng.randint(3, 9))
    return " ".join(words) + rng.choice(_FLAVOUR)
