"""Chat templates: how a conversation becomes a prompt for a model trained on plain text, and where
the answering speaker's turn ends.

A Hugging Face model carries a `chat_template` (Jinja code); a charbot model carries the name of
one of a small fixed set instead (the contract's `charbot.chat_template`), chosen by the exporter
from the corpus it was trained on:

    lines   a Discord export: one line per message, `name: content`; a turn ends at the newline
    play    a play-like text (tinyshakespeare): `NAME:` on a line of its own, the speech on the
            next lines, then a blank line; a turn ends at that blank line

A model without one uses `lines`. The bot's model server renders chat requests with these; the
exporter picks one with `detect_chat_template`. No torch here: `bot` imports this module.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, TypeGuard

ChatTemplate = Literal["lines", "play"]
CHAT_TEMPLATES: Final[tuple[ChatTemplate, ...]] = ("lines", "play")
DEFAULT_CHAT_TEMPLATE: Final[ChatTemplate] = "lines"

#: A line that is a speaker's heading in a play: a capitalised name, then a colon, alone.
_HEADING = re.compile(r"^[A-Z][A-Za-z' .-]{0,39}:$", re.MULTILINE)
#: How many headings, and what share of the text's paragraphs they open, make a text a play.
PLAY_MIN_HEADINGS: Final = 3
PLAY_MIN_SHARE: Final = 0.5

_BLANK_LINES = re.compile(r"\n[ \t]*(?:\n[ \t]*)+")
_LINE_BREAKS = re.compile(r"[ \t]*(?:\r\n|\r|\n)+[ \t]*")
_SPACES = re.compile(r"[ \t]{2,}")


@dataclass(frozen=True)
class ChatMessage:
    """One message of a conversation: who says it (None for plain text, as a system message
    is) and what."""

    speaker: str | None
    content: str


@dataclass(frozen=True)
class ChatPrompt:
    """A conversation rendered for a model: the prompt, and the stop sequences that end the
    answering speaker's turn."""

    prompt: str
    stop: tuple[str, ...]


def is_chat_template(value: object) -> TypeGuard[ChatTemplate]:
    return value in CHAT_TEMPLATES


def render_chat(
    template: ChatTemplate, messages: Sequence[ChatMessage], answerer: str
) -> ChatPrompt:
    """The prompt that makes the model write `answerer`'s next turn after `messages`."""
    if template == "lines":
        lines = [
            _one_line(m.content) if m.speaker is None else f"{m.speaker}: {_one_line(m.content)}"
            for m in messages
        ]
        return ChatPrompt("".join(line + "\n" for line in lines) + f"{answerer}: ", ("\n",))
    blocks = [
        _speech(m.content) if m.speaker is None else f"{m.speaker}:\n{_speech(m.content)}"
        for m in messages
    ]
    return ChatPrompt("".join(block + "\n\n" for block in blocks) + f"{answerer}:\n", ("\n\n",))


def detect_chat_template(text: str) -> ChatTemplate:
    """`play` when the text's paragraphs mostly open with a speaker's heading, else `lines`."""
    headings = len(_HEADING.findall(text))
    paragraphs = max(1, len([p for p in _BLANK_LINES.split(text) if p.strip()]))
    if headings >= PLAY_MIN_HEADINGS and headings / paragraphs >= PLAY_MIN_SHARE:
        return "play"
    return "lines"


def _one_line(text: str) -> str:
    """A message as one line, as the exporter writes a Discord message (exporter/discord_export.py):
    line breaks and runs of spaces become one space."""
    return _SPACES.sub(" ", _LINE_BREAKS.sub(" ", text)).strip()


def _speech(text: str) -> str:
    """A speech without blank lines, which would end the turn early."""
    return _BLANK_LINES.sub("\n", text.replace("\r\n", "\n").replace("\r", "\n")).strip()
