"""`/training allow|deny|show` and `/privacy optout|optin|show`.

Which channels may train a model is an admin's choice (Manage Server); whether a member's
messages may be in any export is the member's own, for every guild the bot is in. Each command
answers after the store has kept the change, so an acknowledged opt-out survives a crash.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import discord
from discord import app_commands

from bot.api import (
    Channel,
    CharbotGroupCog,
    Command,
    CommandGroup,
    Option,
    apply_declaration,
    reply,
)

from . import state

if TYPE_CHECKING:
    from bot.api import CharBot, Store

T = TypeVar("T")

#: The channels a model may learn from: text, announcement and forum channels (a forum's posts
#: are threads; a media channel is a forum too). discord.py knows announcement channels as text
#: channels, and media channels as forums.
CHANNEL = Option(
    "channel", Channel, "A text, announcement or forum channel", channel_types=(0, 5, 15, 16)
)
TrainingChannel = discord.TextChannel | discord.ForumChannel

# Only Discord runs these (a channel of a guild, a Discord account): declared all the same, so
# the console's help lists them as Discord's.
TRAINING = CommandGroup(
    "training",
    "Which channels of this server may train a model.",
    (
        Command("allow", "Let a channel's messages train a model (Manage Server).",
                options=(CHANNEL,), ephemeral=True),
        Command("deny", "Stop a channel's messages training a model (Manage Server).",
                options=(CHANNEL,), ephemeral=True),
        Command("show", "List the channels allowed to train a model.", ephemeral=True),
    ),
)  # fmt: skip
PRIVACY = CommandGroup(
    "privacy",
    "Whether your messages may be in a training export.",
    (
        Command("optout", "Keep your messages and name out of every training export.",
                ephemeral=True),
        Command("optin", "Let your messages in allowed channels be exported again.",
                ephemeral=True),
        Command("show", "Say whether you have opted out.", ephemeral=True),
    ),
)  # fmt: skip


def export_command(guild_id: int) -> str:
    """The one line an operator runs to export a guild's allowed history and train on it."""
    out = f"exports/{guild_id}"
    return (
        f"python -m bot history export --guild {guild_id} --out {out} && "
        f"python -m exporter train {out}/*.json --out runs/{guild_id}"
    )


def manage_server() -> Callable[[T], T]:
    """A check: choosing the training channels needs Manage Server."""

    async def predicate(interaction: discord.Interaction) -> bool:
        if not interaction.permissions.manage_guild:
            raise app_commands.CheckFailure(
                "You need the Manage Server permission to choose which channels may train a "
                "model; nothing was changed."
            )
        return True

    return app_commands.check(predicate)


def _guild_id(interaction: discord.Interaction) -> int:
    if interaction.guild_id is None:
        raise app_commands.CheckFailure("This command works only in a server.")
    return interaction.guild_id


class Declared(CharbotGroupCog):
    """A cog whose commands take their help and options from a declared group."""

    declared: CommandGroup

    def __init__(self, bot: CharBot) -> None:
        super().__init__(bot)
        by_name = {command.name: command for command in self.declared.commands}
        for command in self.walk_app_commands():
            if isinstance(command, app_commands.Command):
                apply_declaration(command, by_name[command.name])

    @property
    def store(self) -> Store:
        return self.bot.services.settings


class Training(Declared, group_name=TRAINING.name, group_description=TRAINING.help):
    declared = TRAINING

    @app_commands.command(name="allow")
    @manage_server()
    async def allow(self, interaction: discord.Interaction, channel: TrainingChannel) -> None:
        if await state.allow(self.store, _guild_id(interaction), channel.id):
            text = f"{channel.mention} may now train a model: history exports include it."
        else:
            text = f"{channel.mention} was already allowed to train a model."
        await reply(interaction, text, ephemeral=True)

    @app_commands.command(name="deny")
    @manage_server()
    async def deny(self, interaction: discord.Interaction, channel: TrainingChannel) -> None:
        if await state.deny(self.store, _guild_id(interaction), channel.id):
            text = (
                f"{channel.mention} may no longer train a model; exports made before now are "
                "the operator's to delete."
            )
        else:
            text = f"{channel.mention} was not allowed to train a model."
        await reply(interaction, text, ephemeral=True)

    @app_commands.command(name="show")
    async def show(self, interaction: discord.Interaction) -> None:
        guild_id = _guild_id(interaction)
        allowed = await state.allowed_channels(self.store, guild_id)
        if allowed:
            text = "Channels allowed to train a model: " + ", ".join(f"<#{c}>" for c in allowed)
        else:
            text = "No channel of this server may train a model; an admin allows one with "
            text += "`/training allow`."
        if allowed and interaction.permissions.manage_guild:
            text += f"\nExport and train: `{export_command(guild_id)}`"
        await reply(interaction, text, ephemeral=True)


class Privacy(Declared, group_name=PRIVACY.name, group_description=PRIVACY.help):
    declared = PRIVACY

    @app_commands.command(name="optout")
    async def optout(self, interaction: discord.Interaction) -> None:
        await state.opt_out(self.store, interaction.user.id)
        await reply(
            interaction,
            "You have opted out: your messages and your name are left out of every training "
            "export from now on, in every server this bot is in. An export made before now is "
            "the operator's to redo. `/privacy optin` undoes it.",
            ephemeral=True,
        )

    @app_commands.command(name="optin")
    async def optin(self, interaction: discord.Interaction) -> None:
        if await state.opt_in(self.store, interaction.user.id):
            text = "You have opted back in: exports from now on may hold your messages in the "
            text += "channels admins allow."
        else:
            text = "You had not opted out: exports may hold your messages in allowed channels."
        await reply(interaction, text, ephemeral=True)

    @app_commands.command(name="show")
    async def show(self, interaction: discord.Interaction) -> None:
        since = await state.opted_out_since(self.store, interaction.user.id)
        if since:
            text = f"You have opted out (since {since} UTC): no training export holds your "
            text += "messages or your name. `/privacy optin` undoes it."
        else:
            text = "You have not opted out: exports may hold your messages in the channels "
            text += "admins allow. `/privacy optout` keeps them out."
        await reply(interaction, text, ephemeral=True)


async def add_cogs(bot: CharBot) -> None:
    await bot.add_cog(Training(bot))
    await bot.add_cog(Privacy(bot))
