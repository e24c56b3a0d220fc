"""The public plugin API: the one module a plugin imports from `bot` (`docs/plugins.md`).

A plugin is a discord.py extension (`async def setup(bot: CharBot) -> None`), found through the
`charbot.plugins` entry-point group or the config's `plugins.enabled`. Its Discord-free parts go
in an optional `def register(services: Services) -> None`, which its `setup` calls and which the
console chat calls alone:

- settings: `services.settings_registry.register_channel(key, ..., fills=...)`, where `fills`
  names what the key sets in a completion (`MODEL`, or a `GenerationParams` field);
- generation backends: `services.models.register_kind(kind, factory)`, the backend implementing
  `GenerationBackend`.

Slash commands are cogs on `CharbotCog` / `CharbotGroupCog`, whose failures reach the user as
ephemeral replies: a handler raises a `CharbotError` (its message is the sentence shown), checks
with `manage_channels()`, and answers with `reply`. The `models` package (the model family and
tokenizers) is public too. Everything else in `bot` is internal and may change without notice.
"""

from __future__ import annotations

from bot.config import Config, ModelSpec
from bot.core.commands import Channel, Command, CommandGroup, CommandTable, Option
from bot.core.completions import CompletionService, unknown_note
from bot.core.context import Context
from bot.core.records import Claim, ClaimStatus, CompletionRecord, CompletionRecords
from bot.core.services import Services
from bot.core.subcommands import Subcommand, Subcommands
from bot.discord.app import NO_MENTIONS, CharBot
from bot.discord.cogs import CharbotCog, CharbotGroupCog, charbot, manage_channels
from bot.discord.interactions import ELLIPSIS, MESSAGE_LIMIT, fit, reply, request_origin
from bot.discord.rest import discord_rest
from bot.discord.sharding import shards_text
from bot.discord.slash import apply_declaration
from bot.errors import (
    CharbotError,
    CommandError,
    EngineBusyError,
    EngineClosedError,
    GenerationError,
    InvalidParamsError,
    ModelLoadError,
    ModelUnavailableError,
    RequestTimeoutError,
    UnknownModelError,
    WorkerError,
)
from bot.generation.backend import (
    BackendStats,
    CharRate,
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
    MODEL,
    InvalidSettingError,
    SettingsError,
    SettingSpec,
    SettingsRegistry,
    UnknownSettingError,
    Validator,
    resolve,
)
from bot.stores import Scope, SettingsStore, Store  # SettingsStore: Store's former name

__all__ = [
    "ELLIPSIS",
    "MAX_TEMPERATURE",
    "MESSAGE_LIMIT",
    "MODEL",
    "NO_MENTIONS",
    "BackendFactory",
    "BackendStats",
    "Channel",
    "CharBot",
    "CharRate",
    "CharbotCog",
    "CharbotError",
    "CharbotGroupCog",
    "Claim",
    "ClaimStatus",
    "Command",
    "CommandError",
    "CommandGroup",
    "CommandTable",
    "Completion",
    "CompletionRecord",
    "CompletionRecords",
    "CompletionService",
    "Config",
    "Context",
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
    "Option",
    "ReportsAvailability",
    "RequestTimeoutError",
    "Scope",
    "Services",
    "SettingSpec",
    "SettingsError",
    "SettingsRegistry",
    "SettingsStore",
    "Store",
    "StreamChunk",
    "Subcommand",
    "Subcommands",
    "UnknownModelError",
    "UnknownSettingError",
    "Validator",
    "WorkerError",
    "apply_declaration",
    "charbot",
    "check_temperature",
    "discord_rest",
    "fit",
    "manage_channels",
    "reply",
    "request_origin",
    "resolve",
    "shards_text",
    "unknown_note",
    "validate_prompt",
]
