"""`/temperature set|show|reset`: each channel's sampling temperature.

A channel's value applies to every completion there unless the call gives its own. The bound
(`MAX_TEMPERATURE`) is in the command's schema and again in the setting's validator, since a
client can send anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.api import (
    MAX_TEMPERATURE,
    CharbotGroupCog,
    InvalidParamsError,
    InvalidSettingError,
    check_temperature,
    manage_channels,
)

if TYPE_CHECKING:
    from bot.api import CharBot, Services

#: The setting this plugin owns; it fills the request's `temperature`.
TEMPERATURE_KEY = "temperature"


def validate_temperature(value: Any) -> float:
    """The setting's validator: the engine's own bound, as a settings error."""
    try:
        return check_temperature(value)
    except InvalidParamsError as exc:
        raise InvalidSettingError(str(exc)) from None


async def set_temperature(services: Services, channel_id: int, value: float) -> float:
    stored = await services.settings.set(channel_id, TEMPERATURE_KEY, value)
    return float(stored)


async def show_temperature(services: Services, channel_id: int) -> str:
    value = await services.settings.get(channel_id, TEMPERATURE_KEY)
    if value is None:
        default = services.config.generation.temperature
        return f"This channel uses the default temperature, {default:g}."
    return f"This channel's temperature is {value:g}."


async def reset_temperature(services: Services, channel_id: int) -> str:
    await services.settings.reset(channel_id, TEMPERATURE_KEY)
    default = services.config.generation.temperature
    return f"Temperature reset: this channel now uses the default, {default:g}."


class Temperature(CharbotGroupCog, group_name="temperature"):
    """How adventurous the bot's writing is in this channel."""

    @app_commands.command(name="set")
    @app_commands.describe(value=f"0.0 writes the likeliest text; {MAX_TEMPERATURE:g} is wild")
    @manage_channels()
    async def set_(
        self,
        interaction: discord.Interaction,
        value: app_commands.Range[float, 0.0, MAX_TEMPERATURE],
    ) -> None:
        """Set this channel's sampling temperature."""
        stored = await set_temperature(self.bot.services, self.channel_id(interaction), value)
        await interaction.response.send_message(f"Temperature set to {stored:g} for this channel.")

    @app_commands.command(name="show")
    async def show(self, interaction: discord.Interaction) -> None:
        """Show this channel's sampling temperature."""
        text = await show_temperature(self.bot.services, self.channel_id(interaction))
        await interaction.response.send_message(text)

    @app_commands.command(name="reset")
    @manage_channels()
    async def reset(self, interaction: discord.Interaction) -> None:
        """Go back to the default temperature in this channel."""
        text = await reset_temperature(self.bot.services, self.channel_id(interaction))
        await interaction.response.send_message(text)


def register(services: Services) -> None:
    """The setting this plugin owns; works without Discord (the console chat calls it)."""
    services.settings_registry.register_channel(
        TEMPERATURE_KEY,
        default=None,
        validate=validate_temperature,
        owner=__name__,
        fills="temperature",
    )


async def setup(bot: CharBot) -> None:
    register(bot.services)
    await bot.add_cog(Temperature(bot))


async def teardown(bot: CharBot) -> None:
    bot.settings_registry.unregister_owner(__name__)
