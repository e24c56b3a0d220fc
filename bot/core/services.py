"""The bot's services, apart from any Discord client: what the Discord app and the console share.

`bot.runtime.build_services` assembles them from the config; the Discord app
(`bot.discord.app.CharBot`) and the console chat (`bot.console`) are each handed one `Services`
and build nothing of their own. Plugins reach them as `bot.services` (or, for their Discord-free
parts, through `register`).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Collection
from dataclasses import dataclass, field

from bot.config import Config
from bot.core.commands import CommandTable
from bot.core.completions import CompletionService
from bot.core.plugins import PluginSource, allowed_plugins
from bot.errors import CharbotError, PluginError
from bot.generation.registry import ModelRegistry
from bot.ops.metrics import Metrics
from bot.settings import SettingsRegistry
from bot.stores import Store

log = logging.getLogger(__name__)

#: The optional module-level hook of a plugin for its Discord-free parts (settings keys, backend
#: kinds): `def register(services: Services) -> None`. Its `setup(bot)` calls it too.
REGISTER_HOOK = "register"


@dataclass
class Services:
    config: Config
    settings: Store
    settings_registry: SettingsRegistry
    models: ModelRegistry
    completions: CompletionService
    metrics: Metrics = field(default_factory=Metrics)
    #: The commands the plugins declared, for both surfaces (`bot.core.commands`).
    commands: CommandTable = field(default_factory=CommandTable)
    #: Every plugin the owner may load, by short name: the config's list, then entry points.
    plugin_sources: dict[str, PluginSource] = field(default_factory=dict)
    #: Plugins that failed to load or register, by name: the error, for `/admin status`.
    plugin_failures: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.plugin_sources:
            self.plugin_sources = allowed_plugins(
                list(self.config.plugins.enabled), self.config.plugins.entry_points
            )
        for name in self.plugin_sources:  # every plugin's failure count exists, at 0 at first
            self.metrics.plugin_failures.labels(name)

    def register_plugins(self) -> None:
        """Run every allowed plugin's `register` hook, without Discord (the console's way in).

        A plugin that fails is reported and skipped: one broken plugin must not stop the others.
        """
        for name, source in self.plugin_sources.items():
            try:
                module = importlib.import_module(source.module)
                hook = getattr(module, REGISTER_HOOK, None)
                if hook is not None:
                    hook(self)
            except Exception as exc:  # third-party code may raise anything: reported, not hidden
                self.plugin_failed(name, exc)
                log.error("%s", PluginError(f"Plugin {name!r} failed to register: {exc}"))

    def forget_plugin(self, module: str) -> None:
        """Drop what a plugin registered under its module's name (it was unloaded): its settings
        (their stored values are kept) and its commands."""
        self.settings_registry.unregister_owner(module)
        self.commands.unregister_owner(module)

    def plugin_failed(self, name: str, error: BaseException) -> None:
        """Record why a plugin failed (for `/admin status`) and count it (for the metrics)."""
        self.plugin_failures[name] = f"{type(error).__name__}: {error}"
        self.metrics.plugin_failed(name)

    async def start_models(
        self, *, told_by_caller: Collection[str] = ()
    ) -> dict[str, CharbotError]:
        """Load every configured model; a failure is recorded (and told by `/model`), not fatal.

        Returns the failures by model name. Each is logged, except those of the models named in
        `told_by_caller`, which the caller reports itself (once, not twice).
        """
        failures: dict[str, CharbotError] = {}
        for name, spec in self.config.models.models.items():
            try:
                await self.models.start(spec)
            except CharbotError as exc:
                failures[name] = exc
                if name not in told_by_caller:
                    log.error("model %r not loaded: %s", name, exc)
        return failures

    async def close(self) -> None:
        """Close the models (their in-flight requests finish first), then the store."""
        await self.models.close()
        await self.settings.close()
