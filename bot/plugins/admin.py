"""`/admin ...`: owner-only control of plugins and models at run time, and the bot's status.

Only Discord runs these (they act on the running Discord app); they are declared all the same,
so the console's help lists them as Discord's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from bot.api import (
    CharbotGroupCog,
    Command,
    CommandGroup,
    Option,
    apply_declaration,
    charbot,
    reply,
    shards_text,
)

if TYPE_CHECKING:
    from bot.api import CharBot, Services

PLUGIN = Option("plugin", str, "A plugin from the config's list or an installed entry point")
COMMANDS = CommandGroup(
    "admin",
    "Owner-only controls.",
    (
        Command("load", "Load a plugin.", options=(PLUGIN,)),
        Command("unload", "Unload a plugin.", options=(PLUGIN,)),
        Command("reload", "Reload a plugin's code.", options=(PLUGIN,)),
        Command(
            "reload-model",
            "Reload a model from its file (hot swap: requests in flight finish on the old one).",
            options=(Option("name", str, "A model the config names"),),
        ),
        Command("status", "Shards, queue depth, requests served and speed of each model."),
    ),
)


async def is_owner(interaction: discord.Interaction) -> bool:
    if not await charbot(interaction).is_owner(interaction.user):
        raise app_commands.CheckFailure("Only the bot's owner can do that.")
    return True


async def status_text(bot: CharBot) -> str:
    lines = [shards_text(bot), f"Plugins: {', '.join(bot.loaded_plugins()) or 'none'}"]
    for name, failure in sorted(bot.plugin_failures.items()):
        lines.append(f"Plugin {name} failed: {failure}")
    for name, backend in bot.models.items():
        s = backend.stats()
        runs = backend.info.provider
        if s.workers:  # an engine in this process: what engine.workers chose
            runs += f"; {s.workers} worker(s) of {s.intra_op_threads} thread(s)"
            runs += f", engine.workers {bot.config.engine.workers}"
        lines.append(
            f"Model {name} ({runs}): queue {s.queue_depth}, "
            f"active {s.active_requests}, served {s.requests_served}, "
            f"failed {s.requests_failed}, {s.chars_per_second:,.0f} chars/s"
        )
    return "\n".join(lines)


async def reload_model(bot: CharBot, name: str) -> str:
    """Hot swap: reload the model's file from the config; a bad file leaves the old one serving."""
    spec = bot.config.models.models.get(name)
    if spec is None:
        return f"There is no model named {name!r} in the config."
    if spec.path is None:
        return f"Model {name} has no file here: reload it where it is served."
    info = await bot.models.get(name).reload(Path(spec.path))
    return f"Model {name} reloaded from its file ({info.parameters:,} parameters)."


class Admin(CharbotGroupCog, group_name=COMMANDS.name, group_description=COMMANDS.help):
    def __init__(self, bot: CharBot) -> None:
        super().__init__(bot)
        declared = {command.name: command for command in COMMANDS.commands}
        for command in self.walk_app_commands():
            if isinstance(command, app_commands.Command):
                apply_declaration(command, declared[command.name])

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return await is_owner(interaction)

    @app_commands.command(name="load")
    async def load(self, interaction: discord.Interaction, plugin: str) -> None:
        await self.bot.load_plugin(plugin)
        await self._resync(interaction, f"Plugin {plugin} loaded.")

    @app_commands.command(name="unload")
    async def unload(self, interaction: discord.Interaction, plugin: str) -> None:
        await self.bot.unload_plugin(plugin)
        await self._resync(interaction, f"Plugin {plugin} unloaded.")

    @app_commands.command(name="reload")
    async def reload(self, interaction: discord.Interaction, plugin: str) -> None:
        await self.bot.reload_plugin(plugin)
        await self._resync(interaction, f"Plugin {plugin} reloaded.")

    @app_commands.command(name="reload-model")
    async def reload_model(self, interaction: discord.Interaction, name: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await reply(interaction, await reload_model(self.bot, name), ephemeral=True)

    @app_commands.command(name="status")
    async def status(self, interaction: discord.Interaction) -> None:
        await reply(interaction, await status_text(self.bot), ephemeral=True)

    async def _resync(self, interaction: discord.Interaction, done: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.bot.sync_commands()
        await reply(interaction, done, ephemeral=True)


def register(services: Services) -> None:
    """Declares the commands, so that the console's help lists them as Discord's."""
    services.commands.add(COMMANDS, owner=__name__)


async def setup(bot: CharBot) -> None:
    register(bot.services)
    await bot.add_cog(Admin(bot))
