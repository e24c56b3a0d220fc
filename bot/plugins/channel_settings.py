"""`/settings show|set|reset`: a channel's sampling settings beyond the temperature.

`/settings show` lists every setting a completion uses in the channel (model, temperature, length,
top-k, top-p) and where each value comes from: the channel's own, or the config's default.
`/settings set` and `/settings reset` change length, top_k and top_p, under the same Manage
Channels rule as `/temperature`; the bounds are those of `bot.generation.params` and the config's
`[engine]` section, checked by the settings' validators (a client can send anything).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, get_args

import discord
from discord import app_commands

from bot.core.completions import LENGTH_KEY, MODEL_KEY, TEMPERATURE_KEY, TOP_K_KEY, TOP_P_KEY
from bot.discord.cogs import NO_MENTIONS, CharbotGroupCog, manage_channels
from bot.errors import InvalidParamsError
from bot.generation.params import GenerationLimits, GenerationParams
from bot.runtime import engine_config
from bot.settings import InvalidSettingError, Validator

if TYPE_CHECKING:
    from bot.core.services import Services
    from bot.discord.app import CharBot

#: The keys this plugin owns, as `/settings set` and `/settings reset` offer them.
Key = Literal["length", "top_k", "top_p"]
KEYS: tuple[str, ...] = get_args(Key)

#: Each key's field in `GenerationParams`, whose validation is the one statement of the bounds.
PARAM_FIELDS = {LENGTH_KEY: "max_length", TOP_K_KEY: "top_k", TOP_P_KEY: "top_p"}
WHOLE_NUMBERS = (LENGTH_KEY, TOP_K_KEY)
OFF_VALUES = {TOP_K_KEY: 0, TOP_P_KEY: 1.0}


def param_validator(key: str, bounds: GenerationLimits) -> Validator:
    """A setting's validator: the request params' own check, as a settings error."""
    field = PARAM_FIELDS[key]

    def validate(value: Any) -> Any:
        try:
            GenerationParams(**{field: value}).validate(bounds)
        except InvalidParamsError as exc:
            raise InvalidSettingError(str(exc)) from None
        return float(value) if key == TOP_P_KEY else value

    return validate


#: Floats beyond this are no longer exact whole numbers (1e30 is not 10**30).
EXACT_FLOAT_INTEGERS = 2**53


def as_setting(key: str, value: float | int) -> float | int:
    """A number as typed (Discord's number option, the console) for the key: 50.0 is 50 where
    the key takes whole numbers; 50.5 and 1e30 are left for the validator to refuse with the
    bounds, shown as they were typed."""
    if (
        key in WHOLE_NUMBERS
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


def _shown(key: str, value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{text} (off)" if key in OFF_VALUES and value == OFF_VALUES[key] else text


async def show_settings(services: Services, channel_id: int) -> str:
    """The channel's effective settings, one a line, each with its source."""
    completions = services.completions
    defaults = services.config.generation
    lines = ["Settings in this channel:"]
    chosen = await completions.channel_setting(channel_id, MODEL_KEY)
    model = completions.default_model if chosen is None else chosen
    lines.append(f"model: {model} ({'default' if chosen is None else 'channel'})")
    sampling = (
        (TEMPERATURE_KEY, defaults.temperature),
        (LENGTH_KEY, defaults.length),
        (TOP_K_KEY, defaults.top_k),
        (TOP_P_KEY, defaults.top_p),
    )
    for key, default in sampling:
        own = await completions.channel_setting(channel_id, key)
        value, source = (default, "default") if own is None else (own, "channel")
        lines.append(f"{key}: {_shown(key, value)} ({source})")
    return "\n".join(lines)


async def set_setting(services: Services, channel_id: int, key: str, value: float | int) -> str:
    _check_key(key)
    stored = await services.settings.set(channel_id, key, as_setting(key, value))
    return f"{key} set to {_shown(key, stored)} for this channel."


async def reset_setting(services: Services, channel_id: int, key: str) -> str:
    _check_key(key)
    await services.settings.reset(channel_id, key)
    default = getattr(services.config.generation, key)
    return f"{key} reset: this channel now uses the default, {_shown(key, default)}."


class ChannelSettings(CharbotGroupCog, group_name="settings"):
    """How the bot writes in this channel."""

    @app_commands.command(name="show")
    async def show(self, interaction: discord.Interaction) -> None:
        """Show this channel's settings and where each comes from."""
        text = await show_settings(self.bot.services, self.channel_id(interaction))
        await interaction.response.send_message(text, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="set")
    @app_commands.describe(
        key="length: characters (or words) per completion; top_k: 0 is off; top_p: 1 is off",
        value="The new value",
    )
    @manage_channels()
    async def set_(self, interaction: discord.Interaction, key: Key, value: float) -> None:
        """Change one of this channel's settings."""
        text = await set_setting(self.bot.services, self.channel_id(interaction), key, value)
        await interaction.response.send_message(text, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="reset")
    @app_commands.describe(key="The setting to give back to the default")
    @manage_channels()
    async def reset(self, interaction: discord.Interaction, key: Key) -> None:
        """Go back to the default for one of this channel's settings."""
        text = await reset_setting(self.bot.services, self.channel_id(interaction), key)
        await interaction.response.send_message(text, allowed_mentions=NO_MENTIONS)


def register(services: Services) -> None:
    """The settings this plugin owns; works without Discord (the console chat calls it)."""
    bounds = engine_config(services.config).limits  # the engine's bounds as the config sets them
    for key in KEYS:
        services.settings_registry.register_channel(
            key, default=None, validate=param_validator(key, bounds), owner=__name__
        )


async def setup(bot: CharBot) -> None:
    register(bot.services)
    await bot.add_cog(ChannelSettings(bot))


async def teardown(bot: CharBot) -> None:
    bot.settings_registry.unregister_owner(__name__)
