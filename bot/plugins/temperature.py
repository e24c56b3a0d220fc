"""`/temperature set|show|reset`: each channel's sampling temperature.

A channel's value applies to every completion there unless the call gives its own. Bounds are in
the command's schema (`Range[float, 0.0, 2.0]`) and again in the setting's validator, since a
client can send anything.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.completions import TEMPERATURE_KEY
from bot.plugins.base import NO_MENTIONS, CharbotGroupCog, require_manage_channels
from bot.settings import InvalidSettingError

if TYPE_CHECKING:
    from bot.app import CharBot

MIN_TEMPERATURE = 0.0
MAX_TEMPERATURE = 2.0


def validate_temperature(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidSettingError(f"The temperature must be a number; got {value!r}.")
    if not (math.isfinite(value) and MIN_TEMPERATURE <= value <= MAX_TEMPERATURE):
        raise InvalidSettingError(
            f"The temperature must be from {MIN_TEMPERATURE} to {MAX_TEMPERATURE}; got {value!r}."
        )
    return float(value)


async def set_temperature(bot: CharBot, channel_id: int, value: float) -> float:
    await bot.settings.set(channel_id, TEMPERATURE_KEY, value)
    return validate_temperature(value)


async def show_temperature(bot: CharBot, channel_id: int) -> str:
    value = await bot.settings.get(channel_id, TEMPERATURE_KEY)
    if value is None:
        default = bot.config.generation.temperature
        return f"This channel uses the default temperature, {default:g}."
    return f"This channel's temperature is {value:g}."


async def reset_temperature(bot: CharBot, channel_id: int) -> str:
    await bot.settings.reset(channel_id, TEMPERATURE_KEY)
    default = bot.config.generation.temperature
    return f"Temperature reset: this channel now uses the default, {default:g}."


class Temperature(CharbotGroupCog, group_name="temperature"):
    """How adventurous the bot's writing is in this channel."""

    @app_commands.command(name="set")
    @app_commands.describe(value="0.0 writes the likeliest text; 2.0 is wild")
    async def set_(
        self,
        interaction: discord.Interaction,
        value: app_commands.Range[float, MIN_TEMPERATURE, MAX_TEMPERATURE],
    ) -> None:
        """Set this channel's sampling temperature."""
        require_manage_channels(interaction)
        stored = await set_temperature(self.bot, interaction.channel_id or 0, value)
        await interaction.response.send_message(
            f"Temperature set to {stored:g} for this channel.", allowed_mentions=NO_MENTIONS
        )

    @app_commands.command(name="show")
    async def show(self, interaction: discord.Interaction) -> None:
        """Show this channel's sampling temperature."""
        text = await show_temperature(self.bot, interaction.channel_id or 0)
        await interaction.response.send_message(text, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="reset")
    async def reset(self, interaction: discord.Interaction) -> None:
        """Go back to the default temperature in this channel."""
        require_manage_channels(interaction)
        text = await reset_temperature(self.bot, interaction.channel_id or 0)
        await interaction.response.send_message(text, allowed_mentions=NO_MENTIONS)


async def setup(bot: CharBot) -> None:
    bot.settings_registry.register_channel(
        TEMPERATURE_KEY, default=None, validate=validate_temperature, owner=__name__
    )
    await bot.add_cog(Temperature(bot))


async def teardown(bot: CharBot) -> None:
    bot.settings_registry.unregister_owner(__name__)
