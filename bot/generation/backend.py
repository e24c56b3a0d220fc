"""The interface every generation backend offers the rest of the bot.

The ONNX engine (`bot.generation.engine.Engine`) is the built-in backend; plugins may bring others
(e.g. a Markov chain). Plugins talk to `GenerationBackend` only, never to a concrete engine.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from bot.generation.params import STATS_WINDOW, GenerationParams

FinishReason = Literal["length", "stop"]


@dataclass(frozen=True)
class ModelInfo:
    """What is being served, in terms every backend can fill (`/model show`, logs, the API).

    `description` says what the model is in its backend's own words ("char-level LSTM, 2 × 256
    units", "word-level Markov chain of order 2"); `details` holds the backend's own descriptive
    fields (an ONNX model's cell, layers, hidden and embedding sizes); `training` its provenance.
    `provider` is where it runs: for ONNX Runtime, the execution provider it reports in use.
    """

    name: str  # the model's name, e.g. the file's stem "shakespeare"
    kind: str  # the backend kind, as the config names it: "onnx", "markov", "openai"...
    description: str
    path: Path | None = None
    level: str = "char"  # "char" | "word": what one token is
    vocab_size: int = 0
    parameters: int = 0  # learned numbers (for a Markov chain: its transitions)
    details: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    provider: str = "CPUExecutionProvider"
    notes: tuple[str, ...] = ()  # what a user must know, e.g. an int8-dynamic file's seed caveat


@dataclass(frozen=True)
class Completion:
    """One finished request. `text` is the generated text only: no prompt, no stop sequence."""

    text: str
    prompt: str
    tokens: int  # tokens generated (including any that made up the stop sequence)
    finish_reason: FinishReason  # "length": max_length reached; "stop": a stop sequence
    unknown: tuple[str, ...]  # prompt pieces the vocabulary could not encode (see the policy)
    model: str  # ModelInfo.name of the model that generated it
    seconds: float  # from the request's arrival to its end, queueing included
    # What the `unknown` pieces became: the token a word model maps them to ("<unk>"), or None
    # when they were left out (a char model's policy).
    unknown_token: str | None = None
    prompt_tokens: int = 0  # the prompt's length in the model's tokens (0 for an empty prompt)


@dataclass(frozen=True)
class StreamChunk:
    """A piece of a streamed text. The last chunk carries the `Completion` (its text may be "")."""

    text: str
    completion: Completion | None = None


@dataclass(frozen=True)
class BackendStats:
    queue_depth: int  # requests waiting for a batch slot
    active_requests: int  # requests in a batch now
    requests_served: int  # requests completed since start
    characters_generated: int  # since start
    chars_per_second: float  # over the last `STATS_WINDOW` seconds (see `CharRate`)
    requests_failed: int = 0  # failed, timed out or cancelled since start
    largest_batch: int = 0  # the most requests one model step has advanced together
    workers: int = 0  # the engine's worker threads (0: not an engine of this process's)
    intra_op_threads: int = 0  # threads per session run (0: likewise)


class CharRate:
    """A backend's characters generated: in all, and per second over the last `window` seconds
    (`BackendStats.characters_generated` and `chars_per_second`), one rule for every backend.

    The rate divides by the window, or by the time since the counter started when that is
    shorter, so a backend that just started is not shown as slow.
    """

    def __init__(
        self, window: float = STATS_WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window = window
        self.total = 0
        self._clock = clock
        self._started = clock()
        self._recent: deque[tuple[float, int]] = deque()  # (clock time, characters)

    def add(self, chars: int) -> None:
        """Count `chars` characters generated now."""
        if chars:
            now = self._clock()
            self.total += chars
            self._recent.append((now, chars))
            self._forget_before(now - self.window)

    def per_second(self) -> float:
        now = self._clock()
        self._forget_before(now - self.window)
        span = min(self.window, max(now - self._started, 1e-3))
        return sum(chars for _, chars in self._recent) / span

    def _forget_before(self, cutoff: float) -> None:
        while self._recent and self._recent[0][0] < cutoff:
            self._recent.popleft()


@runtime_checkable
class ReportsAvailability(Protocol):
    """Optional for a backend: one that can be down for a while (a model served elsewhere) says
    why here (a sentence), or None while it serves. The bot refuses its requests meanwhile."""

    @property
    def unavailable(self) -> str | None: ...


@runtime_checkable
class GenerationBackend(Protocol):
    """A loaded model that serves requests concurrently.

    Errors are `bot.errors.GenerationError` subclasses (`InvalidParamsError`, `EngineBusyError`,
    `EngineClosedError`, `RequestTimeoutError`, `WorkerError`), and `ModelLoadError` from `reload`.
    Cancelling the awaiting task (or leaving an `async for` over `stream`) cancels the request.
    """

    @property
    def info(self) -> ModelInfo: ...

    async def complete(
        self, prompt: str, params: GenerationParams | None = None, *, timeout: float | None = None
    ) -> Completion:
        """Generate a whole text. `timeout` (seconds) overrides the backend's default."""
        ...

    def stream(
        self, prompt: str, params: GenerationParams | None = None, *, timeout: float | None = None
    ) -> AsyncIterator[StreamChunk]:
        """Generate a text piece by piece, as an async iterator of chunks."""
        ...

    async def reload(self, path: Path | str) -> ModelInfo:
        """Serve a new model file; requests in flight finish on the old one."""
        ...

    def stats(self) -> BackendStats: ...

    async def close(self) -> None:
        """Refuse new work; let in-flight requests finish (or fail them after a drain timeout)."""
        ...
