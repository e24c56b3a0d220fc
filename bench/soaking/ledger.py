"""The accounting: every request a soak run sends, and the one outcome each gets.

An outcome is read from what the test Discord server recorded, as a member would see it:

- **answered**: the answer came (a completion, a setting's confirmation, a continuation);
- **refused**: the bot told the member why not, in a sentence (grouped by `sentence_kind`);
- **unanswered**: nothing came. Each is explained, or counted as unexplained (which must be 0):
  *killed in flight* (its process was killed while it was being answered), *shard down* (sent
  while its shard had no session: Discord tells the member "the application did not respond"),
  *too late* (the bot's first response missed Discord's 3 s and was refused, as Discord does),
  *gave up on 429s* (its answer met a 429 on each of discord.py's tries, in a 429 storm).

An answer given twice (two messages for one request, both presses of a double click answered,
one message continued twice) is counted apart: it must be 0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from bot.api import ELLIPSIS
from bot.testing import FakeDiscord, InteractionHandle, RecordedMessage, Reply
from bot.testing.fakediscord.wire import snowflake_time

Status = Literal["answered", "refused", "unanswered"]
KILLED, SHARD_DOWN, TOO_LATE = "killed in flight", "shard down", "too late"
GAVE_UP, UNEXPLAINED = "gave up on 429s", "unexplained"
REASONS = (KILLED, SHARD_DOWN, TOO_LATE, GAVE_UP, UNEXPLAINED)
#: discord.py tries a request this many times, waiting out each 429, then gives up.
DISCORD_PY_TRIES = 5

COMPLETE, COMPLETE_LONG, MENTION = "complete", "complete long", "mention"
TEMPERATURE, SETTINGS, MODEL = "temperature set", "settings set", "model use"
CONTINUE, REGENERATE, DOUBLE, MENU = "continue", "regenerate", "double press", "context menu"
KINDS: tuple[str, ...] = (COMPLETE, COMPLETE_LONG, MENTION, TEMPERATURE, SETTINGS, MODEL)
KINDS += (CONTINUE, REGENERATE, DOUBLE, MENU)
SETTING_KINDS = (TEMPERATURE, SETTINGS, MODEL)
#: How each settings command confirms, by the start of its sentence.
CONFIRMS = {TEMPERATURE: "Temperature set to ", MODEL: "This channel now uses "}
CONTINUING = "-# Continuing "
PARTIAL = f" {ELLIPSIS}"  # the end of a streamed answer's edits before the last


@dataclass
class Request:
    id: int
    kind: str
    channel_id: int
    shard: int
    user_id: int
    sent: float  # run seconds
    model: str  # the channel's model: "local" or "served"
    prompt: str = ""
    handles: list[InteractionHandle] = field(default_factory=list)
    message_id: int | None = None  # a mention: the member's message; a press: the bot's
    setting: tuple[str, object] | None = None  # a settings write: (key, value)
    press: str = ""  # a press: "Continue" or "Regenerate"
    undelivered: bool = False  # Discord had no session for its shard: it was never sent on
    killed_by: int | None = None  # the fault (index) that killed its process in flight
    # The outcome, once judged:
    status: Status = "unanswered"
    sentence: str = ""  # a refusal's sentence
    reason: str = ""  # why an unanswered request went unanswered
    done_at: float | None = None  # run seconds of the outcome
    twice: bool = False

    @property
    def latency(self) -> float | None:
        return None if self.done_at is None else self.done_at - self.sent


def partial(reply: Reply) -> bool:
    """A streamed answer's edit before the last (bot/plugins/replies.py: `format_partial`)."""
    return (reply.content or "").endswith(PARTIAL)


def sentence_kind(text: str) -> str:
    """A refusal's sentence with its particulars (numbers, links, names in quotes) blanked, so
    that the same refusal groups together."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    line = re.sub(r"https?://\S+", "<link>", line)
    line = re.sub(r"'[\w.:/-]*'|\"[^\"]*\"", "'…'", line)
    line = re.sub(r"\d+(\.\d+)?", "N", line)
    return line[:100]


class Judge:
    """Reads outcomes from the server's records; times are run seconds (`loop_start` is the
    event loop's time, `wall_start` the wall clock's, at the run's start)."""

    def __init__(self, server: FakeDiscord, loop_start: float, wall_start: float) -> None:
        self.server = server
        self.loop_start = loop_start
        self.wall_start = wall_start
        self._replies: dict[int, list[RecordedMessage]] | None = None
        self._limited: dict[str, int] | None = None

    def replies_to(self, message_id: int) -> list[RecordedMessage]:
        """The bot's messages that reply to `message_id` (indexed once per judging pass)."""
        if self._replies is None:
            index: dict[int, list[RecordedMessage]] = {}
            for message in self.server.sent_messages:
                ref = message.message_reference
                if ref and not message.deleted and message.via == "channel":
                    index.setdefault(int(ref["message_id"]), []).append(message)
            self._replies = index
        return self._replies.get(message_id, [])

    def forget(self) -> None:
        """Drop the indexes: new messages and requests came since."""
        self._replies = None
        self._limited = None

    def gave_up(self, request: Request) -> bool:
        """Whether the bot's answer to one of its interactions met a 429 on every try."""
        if self._limited is None:
            limited: dict[str, int] = {}
            for sent in self.server.requests:
                parts = sent.path.split("/")  # /webhooks/{application}/{token}/...
                if sent.status == 429 and len(parts) > 3 and parts[1] == "webhooks":
                    limited[parts[3]] = limited.get(parts[3], 0) + 1
            self._limited = limited
        return any(self._limited.get(h.token, 0) >= DISCORD_PY_TRIES for h in request.handles)

    def message_time(self, message: RecordedMessage) -> float:
        return snowflake_time(message.id).timestamp() - self.wall_start

    def reply_time(self, reply: Reply) -> float:
        return reply.at - self.loop_start

    def judge_open(self, requests: Sequence[Request]) -> None:
        """Judge again the requests still unanswered (an outcome, once there, stays)."""
        self.forget()
        for request in requests:
            if request.status == "unanswered":
                self.judge(request)

    def judge(self, request: Request) -> None:
        """Set the request's outcome from what is recorded now."""
        request.status, request.sentence, request.done_at, request.twice = (
            "unanswered",
            "",
            None,
            False,
        )
        if request.kind == MENTION:
            self._mention(request)
        elif request.kind == DOUBLE:
            self._double(request)
        elif request.kind == CONTINUE:
            self._continue(request, request.handles[0] if request.handles else None)
        else:
            for handle in request.handles[:1]:
                self._interaction(request, handle)

    def _refused(self, request: Request, handle: InteractionHandle) -> bool:
        told = [r for r in handle.replies if r.ephemeral and r.content]
        if told:
            request.status, request.sentence = "refused", told[0].content or ""
            request.done_at = self.reply_time(told[0])
        return bool(told)

    def _interaction(self, request: Request, handle: InteractionHandle) -> None:
        if self._refused(request, handle):
            return
        public = [r for r in handle.replies if not r.ephemeral and r.content]
        if request.kind == REGENERATE:
            answers = [r for r in public if r.kind == "edit"]  # the "update" shows the old text
        elif request.kind in SETTING_KINDS:
            start = (
                CONFIRMS.get(request.kind) or f"{request.setting and request.setting[0]} set to "
            )
            answers = [r for r in public if (r.content or "").startswith(start)]
        elif request.kind == MENU:
            answers = [r for r in public if (r.content or "").startswith(CONTINUING)]
        else:  # a completion; one still streaming ends with the mark that more follows
            answers = [r for r in public if (r.content or "").startswith("**") and not partial(r)]
        if answers:
            request.status, request.done_at = "answered", self.reply_time(answers[-1])
            created = {r.message_id for r in answers if r.kind in ("message", "followup")}
            request.twice = len(created) > 1
        elif public and request.kind in SETTING_KINDS:  # said in public, not the confirmation
            request.status, request.sentence = "refused", public[0].content or ""
            request.done_at = self.reply_time(public[0])

    def _mention(self, request: Request) -> None:
        assert request.message_id is not None
        replies = self.replies_to(request.message_id)
        if not replies:
            return
        first = replies[0]
        if first.content.startswith("**"):
            request.status = "answered"
        else:
            request.status, request.sentence = "refused", first.content
        request.done_at = self.message_time(first)
        request.twice = len(replies) > 1

    def _continuations(self, request: Request) -> list[RecordedMessage]:
        assert request.message_id is not None
        return self.replies_to(request.message_id)

    def _continue(self, request: Request, handle: InteractionHandle | None) -> None:
        if handle is None or self._refused(request, handle):
            return
        replies = [
            m for m in self._continuations(request) if self.message_time(m) >= request.sent - 1
        ]
        if replies:
            request.status, request.done_at = "answered", self.message_time(replies[0])
            request.twice = len(self._continuations(request)) > 1

    def _double(self, request: Request) -> None:
        """Two presses of one button: answered when one of them was, twice when both were (or
        the message was continued twice); refused when both were refused."""
        outcomes = []
        for handle in request.handles:
            single = Request(0, request.press.lower(), request.channel_id, 0, 0, request.sent, "")
            single.message_id, single.handles = request.message_id, [handle]
            if request.press == "Continue":
                self._continue(single, handle)
            else:
                single.kind = REGENERATE
                self._interaction(single, handle)
            outcomes.append(single)
        answered = [o for o in outcomes if o.status == "answered"]
        refused = [o for o in outcomes if o.status == "refused"]
        if answered:
            request.status, request.done_at = "answered", min(o.done_at or 0.0 for o in answered)
            request.twice = len(answered) > 1 or any(o.twice for o in answered)
        elif len(refused) == len(outcomes) and refused:
            request.status, request.sentence = "refused", refused[0].sentence
            request.done_at = refused[0].done_at

    def acknowledged(self, request: Request) -> bool:
        """Whether the bot had begun to answer (any response to its interactions, any reply)."""
        if request.kind == MENTION:
            return request.status != "unanswered"
        return any(h.responded or h.replies for h in request.handles)

    def too_late(self, request: Request) -> bool:
        return any(h.error is not None and not h.responded for h in request.handles)
