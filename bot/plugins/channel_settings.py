"""`/settings show|set|reset`: a channel's sampling settings beyond the temperature.

`/settings show` lists every setting a completion uses in the channel (those that fill something:
the model, the temperature, and the keys here) and where each value comes from: the channel's
own, or the config's default. `/settings set` and `/settings reset` change length, top_k and
top_p, under the same Manage Channels rule as `/temperature`; the bounds are those of
`GenerationParams` and the config's `[engine]` section, checked by the settings' validators (a
client can send anything).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.api import (
    MODEL,
    Command,
    CommandGroup,
    Context,
    GenerationLimits,
    GenerationParams,
    InvalidParamsError,
    InvalidSettingError,
    Option,
    Validator,
)

if TYPE_CHECKING:
    from bot.api import CharBot, Services

#: The keys this plugin owns, as `/settings set` and `/settings reset` offer them, each with its
#: field in `GenerationParams` (what it fills), whose validation is the one statement of the
#: bounds.
PARAM_FIELDS = {"length": "max_length", "top_k": "top_k", "top_p": "top_p"}
KEYS = tuple(PARAM_FIELDS)
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


def _shown(fills: str | None, value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{text} (off)" if fills in OFF_VALUES and value == OFF_VALUES[fills] else text


async def show_settings(ctx: Context) -> str:
    """The channel's effective settings, one a line, each with its source: every setting that
    fills something, the model first, then in the order the plugins registered them."""
    services = ctx.services
    completions = services.completions
    defaults = completions.default_params
    specs = [s for s in services.settings_registry.specs() if s.fills is not None]
    specs.sort(key=lambda spec: spec.fills != MODEL)
    channel = await services.settings.get_all(ctx.channel_id)
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


async def set_setting(ctx: Context, key: str, value: float) -> str:
    stored = await ctx.services.settings.set(ctx.channel_id, key, as_setting(key, value))
    return f"{key} set to {_shown(PARAM_FIELDS[key], stored)} for this channel."


async def reset_setting(ctx: Context, key: str) -> str:
    await ctx.services.settings.reset(ctx.channel_id, key)
    field = PARAM_FIELDS[key]
    default = getattr(ctx.services.completions.default_params, field)
    return f"{key} reset: this channel now uses the default, {_shown(field, default)}."


KEY_HELP = "length: characters (or words) per completion; top_k: 0 is off; top_p: 1 is off"

COMMANDS = CommandGroup(
    "settings",
    "How the bot writes in this channel.",
    (
        Command("show", "Show this channel's settings and where each comes from.", show_settings),
        Command(
            "set",
            "Change one of this channel's settings.",
            set_setting,
            options=(
                Option("key", str, KEY_HELP, choices=KEYS),
                Option("value", float, "The new value"),
            ),
            manage_channels=True,
        ),
        Command(
            "reset",
            "Go back to the default for one of this channel's settings.",
            reset_setting,
            options=(Option("key", str, "The setting to give back to the default", choices=KEYS),),
            manage_channels=True,
        ),
    ),
)


def register(services: Services) -> None:
    """The settings and the commands this plugin owns; works without Discord."""
    bounds = services.config.engine.limits  # the engine's bounds, as the config sets them
    for key in KEYS:
        services.settings_registry.register_channel(
            key,
            default=None,
            validate=param_validator(key, bounds),
            owner=__name__,
            fills=PARAM_FIELDS[key],
        )
    services.commands.add(COMMANDS, owner=__name__)


async def setup(bot: CharBot) -> None:
    register(bot.services)
