"""The models a bot serves, by name, and the factories that load them.

The config names models (`[models.NAME] path = ..., backend = "onnx"`); each backend kind has a
factory. The ONNX engine and `openai` (a model on an OpenAI-compatible server) are built in; a
plugin adds others with `register_kind` in its `setup` (e.g. the Markov example), before the bot
starts the configured models.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bot.config import ModelSpec
from bot.errors import CharbotError, ModelUnavailableError, UnknownModelError
from bot.generation.backend import GenerationBackend, ReportsAvailability

log = logging.getLogger(__name__)

#: Starts a backend for one `[models.NAME]` table of the config (its name, path or url).
BackendFactory = Callable[[ModelSpec], Awaitable[GenerationBackend]]


class ModelRegistry:
    def __init__(self) -> None:
        self._factories: dict[str, BackendFactory] = {}
        self._backends: dict[str, GenerationBackend] = {}
        self._failures: dict[str, str] = {}

    def register_kind(self, kind: str, factory: BackendFactory) -> None:
        """Make a backend kind available to the config (`backend = "<kind>"`)."""
        self._factories[kind] = factory

    def unregister_kind(self, kind: str) -> None:
        self._factories.pop(kind, None)

    @property
    def kinds(self) -> list[str]:
        return sorted(self._factories)

    async def start(self, spec: ModelSpec) -> GenerationBackend:
        """Load one model; on failure record why, so `/model` can say it, and re-raise."""
        name, kind = spec.name, spec.backend
        factory = self._factories.get(kind)
        try:
            if factory is None:
                raise UnknownModelError(
                    f"Model {name!r} uses backend {kind!r}, which no loaded plugin provides "
                    f"(known: {', '.join(self.kinds) or 'none'})."
                )
            backend = await factory(spec)
        except CharbotError as exc:
            self._failures[name] = str(exc)
            raise
        self._failures.pop(name, None)
        old = self._backends.get(name)
        self._backends[name] = backend
        if old is not None:
            await old.close()
        log.info("model %r ready (%s, %s)", name, kind, backend.info.provider)
        return backend

    def get(self, name: str) -> GenerationBackend:
        backend = self._backends.get(name)
        if backend is None:
            why = self._failures.get(name)
            if why is not None:
                raise UnknownModelError(f"Model {name!r} is not available: {why}")
            raise UnknownModelError(
                f"There is no model named {name!r}; available: {', '.join(self.names) or 'none'}."
            )
        if (why := self.unavailable(name)) is not None:
            # Configured and loaded, but unreachable for now: not unknown, and back later.
            raise ModelUnavailableError(f"Model {name!r} is not available: {why}")
        return backend

    def unavailable(self, name: str) -> str | None:
        """Why a loaded model cannot serve now (a model server out of reach), or None while it
        serves: the one rule for users' requests, readiness and the loaded gauge."""
        backend = self._backends.get(name)
        if backend is None:
            return self._failures.get(name, "not loaded")
        return backend.unavailable if isinstance(backend, ReportsAvailability) else None

    def serving(self) -> list[str]:
        """The models that answer requests now."""
        return [name for name in self.names if self.unavailable(name) is None]

    @property
    def names(self) -> list[str]:
        return sorted(self._backends)

    def items(self) -> list[tuple[str, GenerationBackend]]:
        return sorted(self._backends.items())

    async def close(self) -> None:
        backends, self._backends = self._backends, {}
        for backend in backends.values():
            await backend.close()
