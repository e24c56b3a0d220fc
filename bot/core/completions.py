"""Completion in a channel: resolve the channel's settings, call its model, track the work.

Scopes, most specific wins: the call's own option, then the channel's setting, then the config's
default. Which setting sets what is each key's declaration (`SettingSpec.fills`), made by the
plugin owning the key: this service names no key. Used by the Discord plugins and by the console
chat alike, so both end answers cleanly (`GenerationParams.clean_end`) and say the same about
prompt pieces a model does not know.

Every completion is counted by model and outcome (`bot.ops.metrics`) and runs under a request id
(`bot.ops.logs`): `track` gives a handler's work one, so the handler's lines, this service's and
the engine's (worker threads included) carry the same id from the interaction to the reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from bot.config import GenerationSection
from bot.errors import EngineClosedError
from bot.generation.backend import Completion, GenerationBackend, StreamChunk
from bot.generation.params import GenerationParams
from bot.generation.registry import ModelRegistry
from bot.ops.logs import current_request_id, log_context, new_request_id
from bot.ops.metrics import Metrics, outcome_of
from bot.settings import MODEL, UnknownSettingError
from bot.stores.base import Store

log = logging.getLogger(__name__)

UNKNOWN_SHOWN = 10  # unknown pieces listed by name in the note; the rest are counted
PIECE_SHOWN = 20  # characters of each listed piece


def unknown_note(completion: Completion) -> str | None:
    """One sentence on the prompt's pieces the model does not know and what became of them
    (None when there were none): each piece quoted apart, never a Python repr."""
    pieces = list(dict.fromkeys(completion.unknown))
    if not pieces:
        return None
    shown = ", ".join(f"“{_visible(piece)}”" for piece in pieces[:UNKNOWN_SHOWN])
    if len(pieces) > UNKNOWN_SHOWN:
        shown += f" and {len(pieces) - UNKNOWN_SHOWN} more"
    they = "it" if len(pieces) == 1 else "they"
    were = "was" if len(pieces) == 1 else "were"
    fate = (
        f"{they} became {completion.unknown_token}"
        if completion.unknown_token
        else f"{they} {were} left out"
    )
    return f"The model does not know {shown}: {fate}."


def _visible(piece: str) -> str:
    """The piece as a reader can see it: invisible characters by their code point."""
    if len(piece) > PIECE_SHOWN:
        piece = piece[:PIECE_SHOWN] + "…"
    return "".join(c if c.isprintable() and not c.isspace() else f"U+{ord(c):04X}" for c in piece)


class CompletionService:
    """Resolves a channel's model and params, and tracks the work in flight for shutdown.

    `accepting` turns False when shutdown starts: from then on new requests are refused.
    """

    def __init__(
        self,
        settings: Store,
        models: ModelRegistry,
        defaults: GenerationSection,
        default_model: str,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.models = models
        self.defaults = defaults
        self.default_model = default_model
        self.metrics = metrics or Metrics()
        self.accepting = True
        self._inflight: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def stop_accepting(self) -> None:
        self.accepting = False

    async def channel_setting(self, channel_id: int, key: str) -> Any:
        """The channel's value for `key`, or None where no plugin registered it (not loaded)."""
        try:
            return await self.settings.get(channel_id, key)
        except UnknownSettingError:
            return None

    @property
    def default_params(self) -> GenerationParams:
        """The params of a request that gives no option, in a channel that set nothing."""
        d = self.defaults
        return GenerationParams(
            max_length=d.length, temperature=d.temperature, top_k=d.top_k, top_p=d.top_p
        )

    async def channel_model(self, channel_id: int) -> str:
        """The name of the model that writes in the channel: its own choice, else the default."""
        key = self.settings.registry.key_filling(MODEL)
        chosen = None if key is None else await self.channel_setting(channel_id, key)
        return self.default_model if chosen is None else str(chosen)

    async def channel_backend(self, channel_id: int) -> GenerationBackend:
        return self.models.get(await self.channel_model(channel_id))

    async def channel_params(
        self, channel_id: int, *, length: int | None = None, temperature: float | None = None
    ) -> GenerationParams:
        """The params of a request in the channel: the call's options, else the channel's
        settings, else the config's defaults."""
        # One read for all of them; a key no loaded plugin registered is absent (None).
        channel = await self.settings.get_all(channel_id)
        fields = self.settings.registry.param_keys()
        own = {field: channel[key] for key, field in fields.items() if channel.get(key) is not None}
        per_call = {"max_length": length, "temperature": temperature}
        own.update((field, value) for field, value in per_call.items() if value is not None)
        return replace(self.default_params, **own, clean_end=True)

    async def complete(
        self,
        channel_id: int,
        prompt: str,
        *,
        length: int | None = None,
        temperature: float | None = None,
    ) -> Completion:
        model = await self.channel_model(channel_id)
        params = await self.channel_params(channel_id, length=length, temperature=temperature)
        return await self.generate(model, prompt, params)

    async def generate(self, model: str, prompt: str, params: GenerationParams) -> Completion:
        """Complete with a given model and params: a channel's (`complete`), or those a
        regenerated text repeats. Counted and logged alike."""
        if not self.accepting:
            raise EngineClosedError("The bot is shutting down; try again in a moment.")
        with log_context(request_id=current_request_id() or new_request_id(), model=model):
            with self._counted(model):
                backend = self.models.get(model)
                log.debug("completion started: %d prompt characters", len(prompt))
                completion = await backend.complete(prompt, params)
            # How much and how long, never what: no prompt and no generated text in the logs.
            log.info(
                "completion ok on %s: %d characters in %.2f s",
                model, len(completion.text), completion.seconds,
            )  # fmt: skip
            return completion

    @contextlib.contextmanager
    def _counted(self, model: str) -> Iterator[None]:
        """Count the completion by its outcome; a failure is logged by its kind only."""
        try:
            yield
        except asyncio.CancelledError:
            log.info("completion cancelled on %s: the caller went away", model)
            raise  # nobody waits for an answer: not an outcome of the service
        except Exception as exc:
            outcome = outcome_of(exc)
            self.metrics.completion(model, outcome)
            level = logging.WARNING if outcome == "error" else logging.INFO
            log.log(level, "completion %s on %s: %s", outcome, model, type(exc).__name__)
            raise
        self.metrics.completion(model, "ok")

    async def stream(
        self,
        channel_id: int,
        prompt: str,
        *,
        length: int | None = None,
        temperature: float | None = None,
    ) -> AsyncGenerator[StreamChunk, None]:
        """As `complete`, piece by piece; the last chunk carries the completion. Counted and
        logged as `complete` is; closing this generator early cancels the request."""
        if not self.accepting:
            raise EngineClosedError("The bot is shutting down; try again in a moment.")
        model = await self.channel_model(channel_id)
        with log_context(request_id=current_request_id() or new_request_id(), model=model):
            with self._counted(model):
                backend = self.models.get(model)
                params = await self.channel_params(
                    channel_id, length=length, temperature=temperature
                )
                log.debug("completion started: %d prompt characters", len(prompt))
                chunks = backend.stream(prompt, params)
                completion: Completion | None = None
                try:
                    async for chunk in chunks:
                        completion = chunk.completion or completion
                        yield chunk
                finally:
                    if isinstance(chunks, AsyncGenerator):
                        await chunks.aclose()
            if completion is not None:
                log.info(
                    "completion ok on %s: %d characters in %.2f s",
                    model, len(completion.text), completion.seconds,
                )  # fmt: skip

    @asynccontextmanager
    async def track(
        self, *, shard: int | None = None, guild: int | None = None, channel: int | None = None
    ) -> AsyncIterator[None]:
        """Mark a handler's work as in flight, so shutdown waits until its answer is sent.

        The work gets a request id; it, and where the request came from, go on every log line
        made inside.
        """
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        self._idle.clear()
        try:
            with log_context(
                request_id=new_request_id(), shard=shard, guild=guild, channel=channel
            ):
                log.debug("request started")
                yield
        finally:
            self._inflight.discard(task)
            if not self._inflight:
                self._idle.set()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    async def drain(self, timeout: float) -> bool:
        """Wait for the handlers in flight; True when all finished within `timeout`."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning("%d requests still in flight at shutdown", len(self._inflight))
            return False
        return True
