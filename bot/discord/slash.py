"""Slash commands built from the command table (`bot.core.commands`): the Discord side of a
command written once.

discord.py reads a slash command's schema from its callback's signature, so each declared command
gets a callback whose signature is made from its options: the option's type, with its bounds as a
`Range` and its choices as a `Literal`, optional ones defaulting to None. The callback builds the
`Context`, runs the handler through `invoke` (which checks the options again: discord.py does not
enforce bounds) and replies with the text. Failures are told as a cog's are (`report_failure`).
"""

from __future__ import annotations

import inspect
from typing import Any, Literal, Optional, Union, cast

import discord
from discord import app_commands

from bot.core.commands import Channel, Command, CommandGroup, Entry, Option
from bot.core.context import Context, invoke
from bot.core.services import Services
from bot.discord.interactions import channel_of, check_manage_channels, reply, report_failure
from bot.errors import PluginError

AUTOCOMPLETE_LIMIT = 25  # Discord shows at most this many suggestions


def bounds(option: Option) -> tuple[int | float | None, int | float | None]:
    """The option's bounds as Discord takes them: a text's are whole lengths."""
    cast_to: type[int] | type[float] = float if option.type is float else int
    low = None if option.min is None else cast_to(option.min)
    high = None if option.max is None else cast_to(option.max)
    return low, high


#: discord.py's channel classes by Discord's channel type (a union of them limits an option).
CHANNEL_CLASSES: dict[int, type[Any]] = {
    0: discord.TextChannel,
    2: discord.VoiceChannel,
    4: discord.CategoryChannel,
    5: discord.TextChannel,  # announcement channels are text channels to discord.py
    10: discord.Thread,
    11: discord.Thread,
    12: discord.Thread,
    13: discord.StageChannel,
    15: discord.ForumChannel,
    16: discord.ForumChannel,  # media channels are forums to discord.py
}


def annotation(option: Option) -> Any:
    """The type discord.py turns into the option's schema."""
    tp: Any = option.type
    if option.type is Channel:
        classes = tuple(dict.fromkeys(CHANNEL_CLASSES[t] for t in option.channel_types))
        tp = Union[classes] if classes else discord.abc.GuildChannel  # noqa: UP007
    elif option.choices:
        tp = cast(Any, Literal)[option.choices]
    elif option.min is not None or option.max is not None:
        tp = app_commands.Range[(option.type, *bounds(option))]
    return tp if option.required else Optional[tp]  # noqa: UP045 (a runtime type, not a hint)


def signature(command: Command) -> inspect.Signature:
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter("interaction", kind, annotation=discord.Interaction)]
    # discord.py wants required options first, as Python wants them before defaults.
    for option in sorted(command.options, key=lambda o: not o.required):
        default = inspect.Parameter.empty if option.required else None
        params.append(
            inspect.Parameter(option.name, kind, annotation=annotation(option), default=default)
        )
    return inspect.Signature(params)


def slash_command(command: Command, services: Services) -> app_commands.Command[Any, ..., None]:
    """The slash command for a declared command with a handler (its failures are told by its
    group, or by its own `on_error` when it stands alone: see `build`)."""

    channels = {o.name for o in command.options if o.type is Channel}

    async def callback(interaction: discord.Interaction, **options: Any) -> None:
        ctx = Context(services, channel_of(interaction), interaction.guild_id, interaction.user.id)
        for name in channels & {k for k, v in options.items() if v is not None}:
            options[name] = Channel(options[name].id)
        await reply(interaction, await invoke(command, ctx, options), ephemeral=command.ephemeral)

    callback.__signature__ = signature(command)  # type: ignore[attr-defined]
    callback.__discord_app_commands_param_description__ = command.descriptions()  # type: ignore[attr-defined]
    slash: app_commands.Command[Any, ..., None] = app_commands.Command(
        name=command.name, description=command.help, callback=callback
    )
    if command.manage_channels:
        required = services.config.discord.manage_channels_required
        slash.add_check(lambda interaction: check_manage_channels(interaction, required))
    for option in command.options:
        if option.suggest is not None:
            slash.autocomplete(option.name)(suggestions(option))
    return slash


def suggestions(option: Option) -> Any:
    """Autocomplete for a text option: its suggested values that contain what was typed."""
    assert option.suggest is not None
    suggest = option.suggest

    async def complete(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        values = [v for v in suggest() if current.lower() in v.lower()]
        return [app_commands.Choice(name=v, value=v) for v in values[:AUTOCOMPLETE_LIMIT]]

    return complete


class SlashGroup(app_commands.Group):
    """A declared group; its commands' failures are told as a cog's are."""

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        await report_failure(interaction, error)


def build(entry: Entry, services: Services) -> app_commands.Command[Any, ..., None] | SlashGroup:
    """The slash command or group for a declared entry whose commands have handlers."""
    if isinstance(entry, Command):
        alone = slash_command(entry, services)
        alone.on_error = report_failure
        return alone
    group = SlashGroup(name=entry.name, description=entry.help)
    for command in entry.commands:
        group.add_command(slash_command(command, services))
    return group


def apply_declaration(app_command: app_commands.Command[Any, ..., Any], declared: Command) -> None:
    """Give a cog's command (one only Discord runs) its declared help, and its options' help and
    bounds: its callback's signature gives the names and types, the declaration the rest."""
    params = app_command._params  # discord.py's parameters, by name
    if set(params) != {option.name for option in declared.options}:
        raise PluginError(
            f"/{declared.name}'s options ({', '.join(params)}) are not those declared "
            f"({', '.join(o.name for o in declared.options)})."
        )
    app_command.description = declared.help
    for option in declared.options:
        param = params[option.name]
        param.description = option.help
        param.min_value, param.max_value = bounds(option)


def built_here(entry: Entry) -> bool:
    """Whether the table builds this entry's slash command (else a cog does: Discord only)."""
    return not entry.discord_only if isinstance(entry, CommandGroup) else entry.run is not None
