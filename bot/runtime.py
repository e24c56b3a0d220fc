"""Assemble the bot's services from the config: the settings store, the models, the app."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bot.app import CharBot
from bot.backends import ModelRegistry
from bot.config import Config
from bot.generation.backend import GenerationBackend
from bot.generation.engine import Engine
from bot.generation.params import EngineConfig, GenerationLimits
from bot.settings import SettingsRegistry, SqliteSettingsStore

log = logging.getLogger(__name__)


def engine_config(config: Config) -> EngineConfig:
    e = config.engine
    return EngineConfig(
        provider=e.provider,
        workers=e.workers,
        max_batch=e.max_batch,
        max_queue=e.max_queue,
        request_timeout=e.timeout_seconds,
        limits=GenerationLimits(max_length=e.max_length, max_prompt=e.max_prompt_chars),
    )


def register_onnx_kind(models: ModelRegistry, config: Config) -> None:
    """The built-in backend kind: contract ONNX files served by the batching engine."""
    onnx_config = engine_config(config)

    async def start_onnx(name: str, path: Path) -> GenerationBackend:
        return await Engine.start(path, onnx_config, name=name)

    models.register_kind("onnx", start_onnx)


async def build_bot(config: Config, **client_options: Any) -> CharBot:
    """A bot with its store open and the ONNX backend kind registered; plugins load in setup."""
    registry = SettingsRegistry()
    # The config has already resolved the path (inside CHARBOT_DATA_DIR when relative).
    store = await SqliteSettingsStore.open(config.store.path, registry)
    models = ModelRegistry()
    register_onnx_kind(models, config)
    return CharBot(
        config, settings=store, settings_registry=registry, models=models, **client_options
    )
