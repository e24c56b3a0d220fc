"""The Markov chain as a charbot `GenerationBackend`."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from bot.api import (
    BackendStats,
    CharRate,
    Completion,
    EngineClosedError,
    FinishReason,
    GenerationLimits,
    GenerationParams,
    ModelInfo,
    ModelLoadError,
    StreamChunk,
    validate_prompt,
)
from charbot_markov.chain import MarkovChain


def load_chain(name: str, path: Path, order: int = 2) -> tuple[MarkovChain, ModelInfo]:
    try:
        text = path.read_text(encoding="utf-8")
        chain = MarkovChain(text, order)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelLoadError(f"Cannot build a Markov chain from {path}: {exc}") from exc
    info = ModelInfo(
        name=name,
        kind="markov",
        description=f"word-level Markov chain of order {order}, {chain.transitions:,} transitions",
        path=path,
        level="word",
        vocab_size=len(chain.vocab),
        details={"order": order, "transitions": chain.transitions},
        training={
            "corpus": path.name,
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "characters": len(text),
        },
        provider="python",
    )
    return chain, info


class MarkovBackend:
    """Generation is cheap (a dictionary walk), so it runs in a thread only to stay off the loop."""

    def __init__(self, chain: MarkovChain, info: ModelInfo, limits: GenerationLimits) -> None:
        self._chain = chain
        self._info = info
        self._limits = limits
        self._closed = False
        self._served = 0
        self._generated = CharRate()

    @classmethod
    async def start(cls, name: str, path: Path) -> MarkovBackend:
        chain, info = await asyncio.to_thread(load_chain, name, path)
        return cls(chain, info, GenerationLimits())

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def chain(self) -> MarkovChain:
        """The chain serving now (`/markov stats` shows its figures)."""
        return self._chain

    def _generate(self, prompt: str, params: GenerationParams) -> tuple[str, int, FinishReason]:
        rng = np.random.default_rng(params.seed)
        text = ""
        tokens = 0
        for token in self._chain.generate(prompt, params.temperature, rng):
            text += token
            tokens += 1
            for stop in params.stop:
                if text.endswith(stop):
                    return text[: -len(stop)], tokens, "stop"
            if tokens >= params.max_length:
                break
        return text, tokens, "length"

    async def complete(
        self, prompt: str, params: GenerationParams | None = None, *, timeout: float | None = None
    ) -> Completion:
        if self._closed:
            raise EngineClosedError("The Markov backend is closed.")
        params = (params or GenerationParams()).validate(self._limits)
        validate_prompt(prompt, self._limits)
        started = time.monotonic()
        text, tokens, reason = await asyncio.wait_for(
            asyncio.to_thread(self._generate, prompt, params), timeout
        )
        self._served += 1
        self._generated.add(len(text))
        return Completion(
            text, prompt, tokens, reason, (), self._info.name, time.monotonic() - started
        )

    async def stream(
        self, prompt: str, params: GenerationParams | None = None, *, timeout: float | None = None
    ) -> AsyncIterator[StreamChunk]:
        completion = await self.complete(prompt, params, timeout=timeout)
        yield StreamChunk(completion.text, completion)

    async def reload(self, path: Path | str) -> ModelInfo:
        chain, info = await asyncio.to_thread(load_chain, self._info.name, Path(path))
        self._chain, self._info = chain, info
        return info

    def stats(self) -> BackendStats:
        rate = self._generated
        return BackendStats(0, 0, self._served, rate.total, rate.per_second())

    async def close(self) -> None:
        self._closed = True
