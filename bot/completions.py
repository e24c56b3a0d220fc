"""Completion in a channel: resolve the channel's settings, call its model, track the work.

Scopes, most specific wins: the call's own option, then the channel's setting, then the config's
default. Used by the Discord plugins and by the console chat alike.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bot.backends import ModelRegistry
from bot.config import GenerationSection
from bot.errors import EngineClosedError
from bot.generation.backend import Completion, GenerationBackend
from bot.generation.params import GenerationParams
from bot.settings import UnknownSettingError, resolve
from bot.stores.base import SettingsStore

log = logging.getLogger(__name__)

TEMPERATURE_KEY = "temperature"
MODEL_KEY = "model"


class CompletionService:
    """Resolves a channel's model and params, and tracks the work in flight for shutdown.

    `accepting` turns False when shutdown starts: from then on new requests are refused.
    """

    def __init__(
        self,
        settings: SettingsStore,
        models: ModelRegistry,
        defaults: GenerationSection,
        default_model: str,
    ) -> None:
        self.settings = settings
        self.models = models
        self.defaults = defaults
        self.default_model = default_model
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

    async def channel_model(self, channel_id: int) -> str:
        """The name of the model that writes in the channel: its own choice, else the default."""
        chosen = await self.channel_setting(channel_id, MODEL_KEY)
        return self.default_model if chosen is None else str(chosen)

    async def channel_backend(self, channel_id: int) -> GenerationBackend:
        return self.models.get(await self.channel_model(channel_id))

    async def channel_params(
        self, channel_id: int, *, length: int | None = None, temperature: float | None = None
    ) -> GenerationParams:
        defaults = self.defaults
        return GenerationParams(
            max_length=resolve(length, None, defaults.length),
            temperature=resolve(
                temperature,
                await self.channel_setting(channel_id, TEMPERATURE_KEY),
                defaults.temperature,
            ),
            top_k=defaults.top_k,
            top_p=defaults.top_p,
        )

    async def complete(
        self,
        channel_id: int,
        prompt: str,
        *,
        length: int | None = None,
        temperature: float | None = None,
    ) -> Completion:
        if not self.accepting:
            raise EngineClosedError("The bot is shutting down; try again in a moment.")
        backend = await self.channel_backend(channel_id)
        params = await self.channel_params(channel_id, length=length, temperature=temperature)
        return await backend.complete(prompt, params)

    @asynccontextmanager
    async def track(self) -> AsyncIterator[None]:
        """Mark a handler's work as in flight, so shutdown waits until its answer is sent."""
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        self._idle.clear()
        try:
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
