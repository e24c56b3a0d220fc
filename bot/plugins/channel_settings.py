"""`/settings show|set|reset`: a channel's sampling settings beyond the temperature.

`/settings show` lists every setting a completion uses in the channel (those that fill something:
the model, the temperature, and the keys here) and where each value comes from: the channel's
own, or the config's default. `/settings set` and `/settings reset` change length, top_k and
top_p, under the same Manage Channels rule as `/temperature`; the bounds are those of
`GenerationParams` and the config's `[engine]` section, checked by the settings' validators (a
client can send anything).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, get_args

import discord
from discord import app_commands

from bot.api import (
    MODEL,
    CharbotGroupCog,
    GenerationLimits,
    GenerationParams,
    InvalidParamsError,
    InvalidSettingError,
    Validator,
    manage_channels,
)

if TYPE_CHECKING:
    from bot.api import CharBot, Services

#: The keys this plugin owns, as `/settings set` and `/settings reset` offer them.
Key = Literal["length", "top_k", "top_p"]
KEYS: tuple[str, ...] = get_args(Key)

#: Each key's field in `GenerationParams` (what it fills), whose validation is the one statement
#: of the bounds.
PARAM_FIELDS = {"length": "max_length", "top_k": "top_k", "top_p": "top_p"}
WHOLE_NUMBERS = ("max_length", "top_k")
#: The values that turn a sampling filter off, by the field they fill.
OFF_VALUES = {"top_k": 0, "top_p": 1.0}


def param_validator(key: str, bounds: GenerationLimits) -> Validator:
    """A setting's validator: the request params' own check, as a settings error."""
    field = PARAM_FIELDS[key]

    def validate(value: Any) -> Any:
        try:
            GenerationParams(**{field: value}).validate(bounds)
        except InvalidParamsError as exc:
            raise InvalidSettingError(str(exc)) from None
        return float(value) if field == "top_p" else value

    return validate


#: Floats beyond this are no longer exact whole numbers (1e30 is not 10**30).
EXACT_FLOAT_INTEGERS = 2**53


def as_setting(key: str, value: float | int) -> float | int:
    """A number as typed (Discord's number option, the console) for the key: 50.0 is 50 where
    the key takes whole numbers; 50.5 and 1e30 are left for the validator to refuse with the
    bounds, shown as they were typed."""
    if (
        PARAM_FIELDS[key] in WHOLE_NUMBERS
        and isinstance(value, float)
        and value.is_integer()
        and abs(value) <= EXACT_FLOAT_INTEGERS
    ):
        return int(value)
    return value


def _check_key(key: str) -> None:
    if key not in KEYS:
        raise InvalidSettingError(
            f"{key!r} is not a setting that /settings changes; choose one of: {', '.join(KEYS)}."
        )


def _shown(fills: str | None, value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{text} (off)" if fills in OFF_VALUES and value == OFF_VALUES[fills] else text


async def show_settings(services: Services, channel_id: int) -> str:
    """The channel's effective settings, one a line, each with its source: every setting that
    fills something, the model first, then in the order the plugins registered them."""
    completions = services.completions
    defaults = completions.default_params
    specs = [s for s in services.settings_registry.specs() if s.fills is not None]
    specs.sort(key=lambda spec: spec.fills != MODEL)
    channel = await services.settings.get_all(channel_id)
    lines = ["Settings in this channel:"]
    for spec in specs:
        if spec.fills == MODEL:
            default: Any = completions.default_model
        else:
            default = getattr(defaults, str(spec.fills))
        own = channel.get(spec.key)
        value, source = (default, "default") if own is None else (own, "channel")
        lines.append(f"{spec.key}: {_shown(spec.fills, value)} ({source})")
    return "\n".join(lines)


async def set_setting(services: Services, channel_id: int, key: str, value: float | int) -> str:
    _check_key(key)
    stored = await services.settings.set(channel_id, key, as_setting(key, value))
    return f"{key} set to {_shown(PARAM_FIELDS[key], stored)} for this channel."


async def reset_setting(services: Services, channel_id: int, key: str) -> str:
    _check_key(key)
    await services.settings.reset(channel_id, key)
    field = PARAM_FIELDS[key]
    default = getattr(services.completions.default_params, field)
    return f"{key} reset: this channel now uses the default, {_shown(field, default)}."


class ChannelSettings(CharbotGroupCog, group_name="settings"):
    """How the bot writes in this channel."""

    @app_commands.command(name="show")
    async def show(self, interaction: discord.Interaction) -> None:
        """Show this channel's settings and where each comes from."""
        text = await show_settings(self.bot.services, self.channel_id(interaction))
        await interaction.response.send_message(text)

    @app_commands.command(name="set")
    @app_commands.describe(
        key="length: characters (or words) per completion; top_k: 0 is off; top_p: 1 is off",
        value="The new value",
    )
    @manage_channels()
    async def set_(self, interaction: discord.Interaction, key: Key, value: float) -> None:
        """Change one of this channel's settings."""
        text = await set_setting(self.bot.services, self.channel_id(interaction), key, value)
        await interaction.response.send_message(text)

    @app_commands.command(name="reset")
    @app_commands.describe(key="The setting to give back to the default")
    @manage_channels()
    async def reset(self, interaction: discord.Interaction, key: Key) -> None:
        """Go back to the default for one of this channel's settings."""
        text = await reset_setting(self.bot.services, self.channel_id(interaction), key)
        await interaction.response.send_message(text)


def register(services: Services) -> None:
    """The settings this plugin owns; works without Discord (the console chat calls it)."""
    bounds: GenerationLimits = services.config.engine.limits  # as the config sets them
    for key in KEYS:
        services.settings_registry.register_channel(
            key,
            default=None,
            validate=param_validator(key, bounds),
            owner=__name__,
            fills=PARAM_FIELDS[key],
        )


async def setup(bot: CharBot) -> None:
    register(bot.services)
    await bot.add_cog(ChannelSettings(bot))


async def teardown(bot: CharBot) -> None:
    bot.settings_registry.unregister_owner(__name__)
