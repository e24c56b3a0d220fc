"""Assemble the bot's services from the config: the settings store, the models, the completions.

The same `Services` object is handed to the Discord app (`build_bot`) or to the console chat.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bot.config import Config, ModelSpec
from bot.core.completions import CompletionService
from bot.core.services import Services
from bot.discord.app import CharBot
from bot.errors import ModelLoadError
from bot.generation.backend import GenerationBackend
from bot.generation.engine import Engine
from bot.generation.observer import EngineObserver
from bot.generation.params import EngineConfig, usable_cores
from bot.generation.registry import ModelRegistry
from bot.ops.metrics import Metrics
from bot.serving.openai_backend import OPENAI_KIND, OpenAIBackend
from bot.settings import SettingsRegistry
from bot.stores import Store, open_store

log = logging.getLogger(__name__)


def engine_config(config: Config) -> EngineConfig:
    e = config.engine
    return EngineConfig(
        provider=e.provider,
        io_binding=e.io_binding,
        workers=e.workers,
        intra_op_threads=e.intra_op_threads,
        max_batch=e.max_batch,
        max_queue=e.max_queue,
        request_timeout=e.timeout_seconds,
        limits=e.limits,
    )


def register_onnx_kind(
    models: ModelRegistry, config: Config, observer: EngineObserver | None = None
) -> None:
    """The built-in backend kind: contract ONNX files served by the batching engine."""
    onnx_config = engine_config(config)
    cores = usable_cores()
    loop = "one kept for the event loop" if cores > 1 else "shared with the event loop"
    log.info("engine: each ONNX model runs %s; this process may use %d core(s), %s",
             onnx_config.threads, cores, loop)  # fmt: skip

    async def start_onnx(spec: ModelSpec) -> GenerationBackend:
        return await Engine.start(model_path(spec), onnx_config, name=spec.name, observer=observer)

    models.register_kind("onnx", start_onnx)


def register_openai_kind(
    models: ModelRegistry, config: Config, env: Mapping[str, str] | None = None
) -> None:
    """The built-in `openai` kind: a model on an OpenAI-compatible server (`python -m bot serve`,
    vLLM, llama.cpp's server, Ollama...), its key in the variable `api_key_env` names."""

    async def start_openai(spec: ModelSpec) -> GenerationBackend:
        if spec.url is None:
            raise ModelLoadError(
                f"Model {spec.name!r} uses backend 'openai' but its config gives no url "
                "(the server's /v1 base, e.g. http://HOST:8000/v1)."
            )
        key = None
        if spec.api_key_env is not None:
            key = (os.environ if env is None else env).get(spec.api_key_env, "").strip()
            if not key:
                raise ModelLoadError(
                    f"Model {spec.name!r} needs its server's key in the environment variable "
                    f"{spec.api_key_env} (its api_key_env), which is not set."
                )
        return await OpenAIBackend.start(
            spec.name, spec.url, config.engine.timeout_seconds, spec.served_id, key
        )

    models.register_kind(OPENAI_KIND, start_openai)


def model_path(spec: ModelSpec) -> Path:
    """The model file of a spec whose backend reads one; a spec without a path says so."""
    if spec.path is None:
        raise ModelLoadError(
            f"Model {spec.name!r} uses backend {spec.backend!r}, which needs a path to a file."
        )
    return Path(spec.path)


def assemble(config: Config, store: Store, registry: SettingsRegistry) -> Services:
    """Services around an open store, with the ONNX backend kind registered; nothing started."""
    models = ModelRegistry()
    metrics = Metrics(models, store, config.models.models)
    register_onnx_kind(models, config, metrics)
    register_openai_kind(models, config)
    completions = CompletionService(
        store, models, config.generation, config.models.default, metrics
    )
    return Services(config, store, registry, models, completions, metrics)


async def build_services(config: Config) -> Services:
    """Open the store that `store.url` names, then assemble the services around it."""
    registry = SettingsRegistry()
    assert config.store.url is not None  # the loaded config always resolves one
    store = await open_store(config.store.url, registry)
    return assemble(config, store, registry)


async def build_bot(config: Config, **client_options: Any) -> CharBot:
    """The Discord app around fresh services; plugins and models load in its `setup_hook`."""
    return CharBot(await build_services(config), **client_options)
