"""The Discord application: an `AutoShardedBot` given its services, which loads the plugins.

It runs the shards the config names (`discord.shard_count`, `discord.shard_ids`; all of them by
default), spacing their IDENTIFYs per bucket with `bot.discord.sharding.IdentifyGate`.

Plugins reach the shared services through the bot object: `bot.services`, with the shortcuts
`bot.config`, `bot.settings` (the per-channel store), `bot.settings_registry`, `bot.models` (the
generation backends by name) and `bot.completions` (the per-channel completion service). Nothing
is global.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import Any

import discord
import yarl
from discord.ext import commands

from bot.config import Config
from bot.core.completions import CompletionService
from bot.core.plugins import ENTRY_POINT_GROUP, PluginSource
from bot.core.services import Services
from bot.discord import slash
from bot.discord.sharding import IdentifyGate, runs_shard_zero
from bot.errors import PluginError
from bot.generation.registry import ModelRegistry
from bot.ops.server import OpsServer, serve_ops
from bot.settings import SettingsRegistry
from bot.stores import Store

log = logging.getLogger(__name__)

#: Every message the bot sends pings nobody: generated text must never ping @everyone, a role
#: or a user. The client sends each message with it unless a call says otherwise.
NO_MENTIONS = discord.AllowedMentions.none()

#: The store's meta key (plus the scope) for the hash of the commands last synced.
COMMANDS_HASH_KEY = "commands.sha256."


def point_discord_at(api_base: str | None, gateway_url: str | None) -> None:
    """Send discord.py's REST and gateway traffic to a proxy (or the test server) when configured.

    discord.py builds every REST URL from `Route.BASE` and connects a plain client to
    `DiscordWebSocket.DEFAULT_GATEWAY`; both are class attributes, so this is process-wide.
    """
    if api_base:
        discord.http.Route.BASE = api_base.rstrip("/")
    if gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


class CharBot(commands.AutoShardedBot):
    def __init__(
        self, services: Services, *, sync_global: bool = False, **client_options: Any
    ) -> None:
        config = services.config
        # Mentions carry their content without the privileged message-content intent.
        intents = discord.Intents.default()
        shards = config.discord
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            intents=intents,
            allowed_mentions=NO_MENTIONS,
            owner_ids=set(config.discord.owner_ids) or None,
            # None: discord.py asks Discord for its recommended count (GET /gateway/bot).
            shard_count=shards.shard_count or None,
            **client_options,
        )
        # Set here, not passed: discord.py's stubs do not allow None (all shards) for it; the
        # config has checked the ids against the count already.
        self.shard_ids = list(shards.shard_ids) or None
        self.services = services
        self.sync_global = sync_global or config.discord.sync_global
        self._shutdown: asyncio.Future[None] | None = None
        # The store's lock is shared by every process on the same PostgreSQL database.
        self.identify_gate = IdentifyGate(
            services.settings, config.discord.identify_spacing_seconds
        )
        self.ops_server: OpsServer | None = None  # metrics and health, when metrics.port is set
        self._mirrored: list[str] = []  # the slash commands built from the command table

    # -- the services, by their short names -------------------------------------------------

    @property
    def config(self) -> Config:
        return self.services.config

    @property
    def settings(self) -> Store:
        return self.services.settings

    @property
    def settings_registry(self) -> SettingsRegistry:
        return self.services.settings_registry

    @property
    def models(self) -> ModelRegistry:
        return self.services.models

    @property
    def completions(self) -> CompletionService:
        return self.services.completions

    @property
    def plugin_sources(self) -> dict[str, PluginSource]:
        return self.services.plugin_sources

    @property
    def plugin_failures(self) -> dict[str, str]:
        return self.services.plugin_failures

    # -- start-up -------------------------------------------------------------------------

    async def setup_hook(self) -> None:
        # First, so /healthz and /readyz answer while the models load and the gateway connects.
        self.ops_server = await serve_ops(self, self.services)
        # Buckets are shard_id % max_concurrency; discord.py does not keep the figure.
        limits = await self.fetch_session_start_limits()
        self.identify_gate.max_concurrency = limits.max_concurrency
        await self.prepare()
        await self.sync_commands(startup=True)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """Replaces discord.py's flat 5 s sleep: one IDENTIFY per bucket per spacing, shared
        with every process on the same PostgreSQL store."""
        await self.identify_gate.wait_turn(shard_id or 0)

    @property
    def runs_shard_zero(self) -> bool:
        return runs_shard_zero(self.config.discord.shard_ids)

    async def prepare(self) -> None:
        """Load the plugins, then the models (a plugin may bring a model's backend kind)."""
        for name in self.plugin_sources:
            try:
                await self.load_plugin(name)
            except PluginError as exc:
                # One broken plugin must not keep the others (or the bot) from running.
                log.error("%s", exc)
        await self.services.start_models()

    async def sync_commands(self, *, startup: bool = False) -> None:
        """Sync to the test guild when one is configured; globally only when asked to.

        Global sync is rate-limited and slow to propagate, so it never happens on every start:
        at start-up only the process running shard 0 syncs, and a scope is synced only when its
        commands differ from those last synced (their hash is kept in the store, shared by every
        process): ten processes restarting with nothing changed make no sync call.
        """
        if startup and not self.runs_shard_zero:
            log.info("commands are synced by the process running shard 0, not this one")
            return
        guild_id = self.config.discord.test_guild_id
        if guild_id is not None:
            guild = discord.Object(id=guild_id)
            # Exactly the global commands: copying alone would keep those since removed.
            self.tree.clear_commands(guild=guild)
            self.tree.copy_global_to(guild=guild)
            await self._sync_scope(guild)
        if self.sync_global:
            await self._sync_scope(None)

    async def _sync_scope(self, guild: discord.Object | None) -> None:
        scope = "globally" if guild is None else f"to guild {guild.id}"
        key = COMMANDS_HASH_KEY + ("global" if guild is None else f"guild.{guild.id}")
        payload = [command.to_dict(self.tree) for command in self.tree.get_commands(guild=guild)]
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        if await self.settings.get_meta(key) == digest:
            log.info("commands unchanged since they were last synced %s: not syncing", scope)
            return
        synced = await self.tree.sync(guild=guild)
        await self.settings.set_meta(key, digest)
        log.info("synced %d commands %s", len(synced), scope)

    # -- plugins --------------------------------------------------------------------------

    async def load_plugin(self, name: str) -> None:
        source = self._allowed(name)
        try:
            await self.load_extension(source.module)
        except commands.ExtensionAlreadyLoaded as exc:
            raise PluginError(f"Plugin {name!r} is already loaded.") from exc
        except commands.ExtensionError as exc:
            cause = exc.__cause__ or exc
            self.services.plugin_failed(name, cause)
            raise PluginError(f"Plugin {name!r} ({source.origin}) failed to load: {cause}") from exc
        self.plugin_failures.pop(name, None)
        self.mirror_commands()
        log.info("plugin %r loaded from %s", name, source.origin)

    async def unload_plugin(self, name: str) -> None:
        source = self._allowed(name)
        try:
            await self.unload_extension(source.module)
        except commands.ExtensionNotLoaded as exc:
            raise PluginError(f"Plugin {name!r} is not loaded.") from exc
        self.services.forget_plugin(source.module)
        self.mirror_commands()
        log.info("plugin %r unloaded", name)

    async def reload_plugin(self, name: str) -> None:
        source = self._allowed(name)
        if source.module not in self.extensions:
            await self.load_plugin(name)
            return
        # The new code registers afresh; should it fail, discord.py rolls back to the old
        # module, whose `setup` registers again.
        self.services.forget_plugin(source.module)
        try:
            await self.reload_extension(source.module)
        except commands.ExtensionError as exc:
            raise PluginError(f"Plugin {name!r} failed to reload: {exc.__cause__ or exc}") from exc
        finally:
            self.mirror_commands()

    def mirror_commands(self) -> None:
        """Give the tree the slash commands of the command table as it is now: those the plugins
        declared with handlers (a cog adds the commands only Discord runs)."""
        for name in self._mirrored:
            self.tree.remove_command(name)
        self._mirrored = []
        for entry in self.services.commands.entries():
            if slash.built_here(entry):
                self.tree.add_command(slash.build(entry, self.services), override=True)
                self._mirrored.append(entry.name)

    def loaded_plugins(self) -> list[str]:
        return [n for n, s in self.plugin_sources.items() if s.module in self.extensions]

    def _allowed(self, name: str) -> PluginSource:
        source = self.plugin_sources.get(name)
        if source is None:
            raise PluginError(
                f"There is no plugin named {name!r}; plugins load only from the config's list and "
                f"the {ENTRY_POINT_GROUP!r} entry points: {', '.join(self.plugin_sources)}."
            )
        return source

    # -- events and shutdown -----------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        # No prefix commands: the completion plugin's listener answers mentions.
        return

    async def close(self) -> None:
        """Graceful: refuse new work, let the work in flight finish, then disconnect.

        Every caller (a signal, `async with` on exit) awaits the one shutdown sequence.
        """
        if self._shutdown is None:
            self._shutdown = asyncio.ensure_future(self._shut_down())
        await asyncio.shield(self._shutdown)

    async def _shut_down(self) -> None:
        self.completions.stop_accepting()
        log.info("shutting down: finishing the requests in flight")
        # Handlers whose generation is running finish and send their answers (or tell the
        # user) while the connection is still up. Requests that arrive meanwhile are told
        # "shutting down" by the same handlers, so they are drained too.
        await self.completions.drain(self.config.engine.timeout_seconds)
        # Disconnect before closing the backends: no request can arrive after this point.
        await super().close()
        await self.identify_gate.close()
        await self.services.close()
        if self.ops_server is not None:
            await self.ops_server.close()
