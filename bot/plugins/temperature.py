"""`/temperature set|show|reset`: each channel's sampling temperature.

A channel's value applies to every completion there unless the call gives its own. The bound
(`MAX_TEMPERATURE`) is the option's, checked on every surface (a client can send anything), and
again by the setting's validator, for a value set any other way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.api import (
    MAX_TEMPERATURE,
    Command,
    CommandGroup,
    Context,
    InvalidParamsError,
    InvalidSettingError,
    Option,
    check_temperature,
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


async def set_temperature(ctx: Context, value: float) -> str:
    stored = await ctx.services.settings.set(ctx.channel_id, TEMPERATURE_KEY, value)
    return f"Temperature set to {stored:g} for this channel."


async def show_temperature(ctx: Context) -> str:
    value = await ctx.services.settings.get(ctx.channel_id, TEMPERATURE_KEY)
    if value is None:
        default = ctx.services.completions.default_params.temperature
        return f"This channel uses the default temperature, {default:g}."
    return f"This channel's temperature is {value:g}."


async def reset_temperature(ctx: Context) -> str:
    await ctx.services.settings.reset(ctx.channel_id, TEMPERATURE_KEY)
    default = ctx.services.completions.default_params.temperature
    return f"Temperature reset: this channel now uses the default, {default:g}."


COMMANDS = CommandGroup(
    "temperature",
    "How adventurous the bot's writing is in this channel.",
    (
        Command(
            "set",
            "Set this channel's sampling temperature.",
            set_temperature,
            options=(
                Option(
                    "value",
                    float,
                    f"0.0 writes the likeliest text; {MAX_TEMPERATURE:g} is wild",
                    min=0.0,
                    max=MAX_TEMPERATURE,
                    label="temperature",
                ),
            ),
            manage_channels=True,
        ),
        Command("show", "Show this channel's sampling temperature.", show_temperature),
        Command(
            "reset",
            "Go back to the default temperature in this channel.",
            reset_temperature,
            manage_channels=True,
        ),
    ),
)


def register(services: Services) -> None:
    """The setting and the commands this plugin owns; works without Discord."""
    services.settings_registry.register_channel(
        TEMPERATURE_KEY,
        default=None,
        validate=validate_temperature,
        owner=__name__,
        fills="temperature",
    )
    services.commands.add(COMMANDS, owner=__name__)


async def setup(bot: CharBot) -> None:
    register(bot.services)
