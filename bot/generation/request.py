"""One generation request as the worker sees it (`Request`) and as the event loop sees it
(`Handle`), and the `Update` a worker sends from one to the other.

Threads: a `Request` is written by the one worker that holds it, except `cancelled`, which the
event loop sets and the worker reads at its next step. A `Handle` is touched on the loop only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from bot.generation.backend import Completion, FinishReason
from bot.generation.model import LoadedModel
from bot.generation.params import WORD_END_SLACK, GenerationParams


class Handle:
    """The event loop's side of a request: the future of its result, and streamed text."""

    __slots__ = ("deadline", "future", "parts", "request", "timeout", "wake")

    def __init__(
        self,
        future: asyncio.Future[Completion],
        stream: bool,
        timeout: float | None,
        deadline: float | None,
    ) -> None:
        self.future = future
        self.parts: list[str] = []  # streamed text not yet handed to the consumer
        self.wake = asyncio.Event() if stream else None
        self.timeout = timeout
        self.deadline = deadline  # in loop.time(), None = no limit
        self.request: Request | None = None


class Update(NamedTuple):
    """Worker -> loop: new streamed text, and at the end a completion or an error."""

    handle: Handle
    text: str
    completion: Completion | None = None
    error: BaseException | None = None


class Request:
    """A request's generation state: its model, prompt ids, params, random stream and output."""

    __slots__ = (
        "arrived",
        "cancelled",
        "chars",
        "clean_end",
        "counted",
        "cut",
        "emitted",
        "emitted_pieces",
        "finish_reason",
        "handle",
        "ids",
        "joined",
        "limit",
        "log_context",
        "max_length",
        "model",
        "params",
        "pieces",
        "prompt",
        "prompt_tokens",
        "rng",
        "stop_at",
        "stops",
        "stream",
        "text",
        "tokens",
        "unknown",
        "vocab",
    )

    def __init__(
        self,
        model: LoadedModel,
        prompt: str,
        ids: list[int],
        unknown: tuple[str, ...],
        params: GenerationParams,
        handle: Handle,
        log_context: Mapping[str, object] | None = None,
        prompt_tokens: int = 0,
    ) -> None:
        self.model = model  # fixed at arrival: a hot swap does not move a request
        self.vocab = model.pieces
        self.prompt = prompt
        self.ids = ids
        # The prompt's own tokens: an empty prompt's ids are the start token, not the caller's.
        self.prompt_tokens = prompt_tokens
        self.unknown = unknown
        self.params = params
        self.max_length = params.max_length
        self.stops = params.stop
        self.clean_end = params.clean_end
        self.stream = handle.wake is not None
        self.handle = handle
        self.rng = np.random.default_rng(params.seed)  # None: fresh OS entropy
        self.arrived = time.monotonic()
        self.joined = self.arrived  # when a worker took it from the queue
        self.log_context = log_context or {}  # the caller's, for the worker's log lines
        self.cancelled = False  # set by the loop; the worker drops the row at its next step
        self.tokens = 0
        self.chars = 0
        self.counted = 0  # characters already reported to the engine's stats
        self.pieces: list[str] = []
        self.text = ""  # the whole output, kept only with stop sequences or clean_end
        self.stop_at: int | None = None  # where a stop sequence begins in `text`
        self.limit: int | None = None  # clean_end: len(text) when the length ran out mid-word
        self.cut: int | None = None  # clean_end: where the final text ends
        self.finish_reason: FinishReason = "length"
        self.emitted = 0  # characters handed to the stream so far
        self.emitted_pieces = 0

    def advance(self, token: int) -> bool:
        """Take the next token; True when the request is done (length or stop sequence)."""
        piece = self.vocab[token]
        self.pieces.append(piece)
        self.tokens += 1
        self.chars += len(piece)
        if not (self.stops or self.clean_end):
            if self.tokens >= self.max_length:
                self.finish_reason = "length"
                return True
            return False
        start = len(self.text)
        self.text += piece
        if self.stops:
            # A word-level piece may carry a stop sequence inside it, not only at its end:
            # search the part of the text this piece could complete a stop sequence in.
            found = [
                i for s in self.stops if (i := self.text.find(s, max(0, start - len(s) + 1))) >= 0
            ]
            if found:
                self.stop_at = min(found)
                self.finish_reason = "stop"
                return True
        if self.tokens < self.max_length:
            return False
        self.finish_reason = "length"
        return not self.clean_end or self._ended_cleanly(start)

    def _ended_cleanly(self, start: int) -> bool:
        """clean_end, once the length has run out: True when the text may end (at `cut`)."""
        text = self.text
        if self.limit is None:  # the length ran out with this piece
            if not text or text[-1].isspace():
                return True
            self.limit = len(text)
            return False
        # Finishing the last word: it ends at the first whitespace after the limit.
        space = next((i for i in range(start, len(text)) if text[i].isspace()), None)
        if space is not None and space - self.limit <= WORD_END_SLACK:
            self.cut = space
            return True
        if space is None and len(text) - self.limit <= WORD_END_SLACK:
            return False
        # Too long to finish: cut back to the end of the last whole word, if there is one.
        self.cut = _last_word_end(text[: self.limit]) or self.limit
        return True

    def final_text(self) -> str:
        """The output without the stop sequence (and anything after it), ended cleanly."""
        if not (self.stops or self.clean_end):
            return "".join(self.pieces)
        if self.stop_at is not None:
            return self.text[: self.stop_at]
        return self.text if self.cut is None else self.text[: self.cut]

    def take_stream_text(self) -> str:
        """The output not yet streamed, holding back a tail that may begin a stop sequence and,
        with clean_end, the last word, which the end may still cut."""
        if not (self.stops or self.clean_end):
            text = "".join(self.pieces[self.emitted_pieces :])
            self.emitted_pieces = len(self.pieces)
            self.emitted += len(text)
            return text
        end = len(self.text) - _held_back(self.text, self.stops)
        if self.clean_end:
            end = min(end, _last_word_end(self.text))
        text = self.text[self.emitted : end]
        self.emitted = max(self.emitted, end)
        return text

    def take_final_text(self) -> str:
        """The rest of the final text for a stream (never what was already streamed)."""
        if not (self.stops or self.clean_end):
            return self.take_stream_text()
        return self.final_text()[self.emitted :]

    @property
    def request_id(self) -> str | None:
        value = self.log_context.get("request_id")
        return None if value is None else str(value)

    def log_fields(self) -> dict[str, object]:
        """The request's log context, for lines logged on a worker thread (`extra=`)."""
        return {**self.log_context, "model": self.model.info.name}

    def completion(self) -> Completion:
        return Completion(
            text=self.final_text(),
            prompt=self.prompt,
            tokens=self.tokens,
            finish_reason=self.finish_reason,
            unknown=self.unknown,
            model=self.model.info.name,
            seconds=time.monotonic() - self.arrived,
            unknown_token=_replaced_by(self.model) if self.unknown else None,
            prompt_tokens=self.prompt_tokens,
        )


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest end of `text` that is a proper beginning of a stop sequence."""
    longest = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:k]):
                longest = k
                break
    return longest


def _replaced_by(model: LoadedModel) -> str | None:
    """The token that pieces the vocabulary lacks become, or None when they are dropped."""
    tokenizer = model.tokenizer
    return tokenizer.unk_token if tokenizer.unknown == "unk" else None


def _last_word_end(text: str) -> int:
    """Where the last word that whitespace follows ends: the text may be cut there, since the
    word after it may be unfinished. 0 when there is none."""
    end = len(text)
    while end and not text[end - 1].isspace():
        end -= 1
    while end and text[end - 1].isspace():
        end -= 1
    return end
