"""The models a bot serves, by name, and the factories that load them.

The config names models (`[models.NAME] path = ..., backend = "onnx"`); each backend kind has a
factory. The ONNX engine is the built-in kind; a plugin adds others with `register_kind` in its
`setup` (e.g. the Markov example), before the bot starts the configured models.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.errors import CharbotError, UnknownModelError
from bot.generation.backend import GenerationBackend

log = logging.getLogger(__name__)

#: Loads a model file into a running backend: (name, path) -> backend.
BackendFactory = Callable[[str, Path], Awaitable[GenerationBackend]]


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

    async def start(self, name: str, kind: str, path: Path) -> GenerationBackend:
        """Load one model; on failure record why, so `/model` can say it, and re-raise."""
        factory = self._factories.get(kind)
        try:
            if factory is None:
                raise UnknownModelError(
                    f"Model {name!r} uses backend {kind!r}, which no loaded plugin provides "
                    f"(known: {', '.join(self.kinds) or 'none'})."
                )
            backend = await factory(name, path)
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
        return backend

    @property
    def names(self) -> list[str]:
        return sorted(self._backends)

    def items(self) -> list[tuple[str, GenerationBackend]]:
        return sorted(self._backends.items())

    async def close(self) -> None:
        backends, self._backends = self._backends, {}
        for backend in backends.values():
            await backend.close()
