"""The public plugin API: the one module a third-party plugin imports from `bot`.

A plugin is a discord.py extension (`async def setup(bot: CharBot) -> None`), found through the
`charbot.plugins` entry-point group or the config's `plugins.enabled`. Its Discord-free parts
(settings keys, backend kinds) go in an optional `def register(services: Services) -> None`,
which its `setup` calls and which the console chat calls alone. A generation backend implements
`GenerationBackend` and is made available with `services.models.register_kind(kind, factory)`.
Everything else in `bot` is internal and may change without notice.
"""

from __future__ import annotations

from bot.config import ModelSpec
from bot.core.completions import CompletionService
from bot.core.services import Services
from bot.discord.app import CharBot
from bot.errors import (
    CharbotError,
    EngineBusyError,
    EngineClosedError,
    GenerationError,
    InvalidParamsError,
    ModelLoadError,
    ModelUnavailableError,
    RequestTimeoutError,
    WorkerError,
)
from bot.generation.backend import (
    BackendStats,
    Completion,
    FinishReason,
    GenerationBackend,
    ModelInfo,
    ReportsAvailability,
    StreamChunk,
)
from bot.generation.params import (
    MAX_TEMPERATURE,
    GenerationLimits,
    GenerationParams,
    check_temperature,
    validate_prompt,
)
from bot.generation.registry import BackendFactory, ModelRegistry
from bot.settings import (
    InvalidSettingError,
    SettingsError,
    SettingsRegistry,
    Validator,
    resolve,
)
from bot.stores import SettingsStore

__all__ = [
    "MAX_TEMPERATURE",
    "BackendFactory",
    "BackendStats",
    "CharBot",
    "CharbotError",
    "Completion",
    "CompletionService",
    "EngineBusyError",
    "EngineClosedError",
    "FinishReason",
    "GenerationBackend",
    "GenerationError",
    "GenerationLimits",
    "GenerationParams",
    "InvalidParamsError",
    "InvalidSettingError",
    "ModelInfo",
    "ModelLoadError",
    "ModelRegistry",
    "ModelSpec",
    "ModelUnavailableError",
    "ReportsAvailability",
    "RequestTimeoutError",
    "Services",
    "SettingsError",
    "SettingsRegistry",
    "SettingsStore",
    "StreamChunk",
    "Validator",
    "WorkerError",
    "check_temperature",
    "resolve",
    "validate_prompt",
]
