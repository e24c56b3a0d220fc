"""The bases of a plugin's cogs: command failures told to the user as ephemeral replies, the
Manage Channels check, and the bot behind an interaction, typed."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar, cast

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.interactions import channel_of, check_manage_channels, report_failure

if TYPE_CHECKING:
    from bot.discord.app import CharBot

T = TypeVar("T")


def charbot(interaction: discord.Interaction) -> CharBot:
    """The bot behind an interaction, typed."""
    return cast("CharBot", interaction.client)


def manage_channels() -> Callable[[T], T]:
    """A check (decorator) for a cog's command that changes a channel: it needs Manage Channels,
    unless the config lifts the rule."""

    async def predicate(interaction: discord.Interaction) -> bool:
        required = charbot(interaction).config.discord.manage_channels_required
        return check_manage_channels(interaction, required)

    return app_commands.check(predicate)


class CharbotCog(commands.Cog):
    """A cog whose command failures reach the user as ephemeral replies."""

    def __init__(self, bot: CharBot) -> None:
        self.bot = bot

    @staticmethod
    def channel_id(interaction: discord.Interaction) -> int:
        """The channel whose settings apply (`channel_of`)."""
        return channel_of(interaction)

    async def cog_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        await report_failure(interaction, error)


class CharbotGroupCog(CharbotCog, commands.GroupCog):
    """A command group (`/name sub ...`) with the same user-facing failure replies."""
