"""Commands written once, for Discord and the console chat alike.

A plugin declares each command (`Command`: its name, a help line, its typed options with their
bounds, whether it changes a channel and so needs Manage Channels) with a Discord-free handler
that takes a `Context` (`bot.core.context`) and the options by name and returns the reply's
text. A handler refuses bad input by raising a `CharbotError`, whose message both surfaces show
as it is. The plugin adds its
commands in `register(services)` (`services.commands.add(...)`); `bot.discord.slash` builds the
slash commands from the declarations, and `bot.console` parses a line by them and renders its
`/help` from them.

Options are checked here, once, for both surfaces (`Option.check`): Discord's client enforces an
option's bounds, but discord.py does not, and a forged interaction can carry anything.

A command only Discord can run (`/complete`'s streamed answer, `/admin`) is declared without a
handler: its cog builds it, the declaration gives its name, help and options, and the console's
help lists it as Discord's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from bot.errors import CommandError, PluginError


class Channel(int):
    """A channel option's value: the channel's id. The option's `channel_types` (Discord's
    channel type numbers: 0 text, 5 announcement, 15 forum, ...) say which channels Discord
    offers; none: any."""


OptionType = type[int] | type[float] | type[str] | type[Channel]
OptionValue = int | float | str
_CHANNEL_TEXT = re.compile(r"<?#?(\d+)>?")
#: `async def handler(ctx: Context, **options) -> str`: the reply's text (`bot.core.context`).
Handler = Callable[..., Awaitable[str]]
#: The values to offer for a text option as the user types (Discord's autocomplete).
Suggest = Callable[[], Sequence[str]]


@dataclass(frozen=True)
class Option:
    """One typed option. `min` and `max` bound a number (or a text's length); `choices` lists
    the texts allowed; `label` names the option in sentences ("The temperature must be ...")."""

    name: str
    type: OptionType
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    required: bool = True
    suggest: Suggest | None = None
    label: str = ""
    channel_types: tuple[int, ...] = ()

    @property
    def called(self) -> str:
        return self.label or self.name

    def parse(self, text: str) -> OptionValue:
        """A value typed as text (the console), as the option's type; `check` follows."""
        if self.type is str:
            return text
        if self.type is Channel:
            found = _CHANNEL_TEXT.fullmatch(text.strip())
            if found is None:
                raise CommandError(f"The {self.called} must be a channel; got {text!r}.")
            return Channel(found.group(1))
        try:
            return int(text) if self.type is int else float(text)
        except ValueError:
            kind = "a whole number" if self.type is int else "a number"
            raise CommandError(f"The {self.called} must be {kind}; got {text!r}.") from None

    def check(self, value: object) -> OptionValue:
        """`value` if it has the option's type and lies within its bounds and choices, else
        `CommandError` with one sentence. An int given for a number option becomes a float."""
        if self.type is str:
            return self._check_text(value)
        if self.type is Channel:
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return Channel(value)
            raise CommandError(f"The {self.called} must be a channel; got {value!r}.")
        whole = self.type is int
        number = isinstance(value, int) or (isinstance(value, float) and not whole)
        if number and not isinstance(value, bool):
            assert isinstance(value, int | float)
            if math.isfinite(value) and self._within(value):
                return value if whole else float(value) + 0.0  # -0.0 shows as "0"
        raise CommandError(f"The {self.called} must be {self._expected()}; got {value!r}.")

    def _check_text(self, value: object) -> str:
        if not isinstance(value, str):
            raise CommandError(f"The {self.called} must be text; got {value!r}.")
        if self.choices and value not in self.choices:
            raise CommandError(
                f"The {self.called} must be one of: {', '.join(self.choices)}; got {value!r}."
            )
        if not self._within(len(value)):
            raise CommandError(
                f"The {self.called} must have {self._bounds()} characters; got {len(value)}."
            )
        return value

    def _within(self, number: float) -> bool:
        low = -math.inf if self.min is None else self.min
        high = math.inf if self.max is None else self.max
        return low <= number <= high

    def _bounds(self) -> str:
        low, high = self.min, self.max
        if low is not None and high is not None:
            return f"from {low!r} to {high!r}"
        if low is not None:
            return f"{low!r} or more"
        return "" if high is None else f"at most {high!r}"

    def _expected(self) -> str:
        """What a value must be: "a whole number from 1 to 10", "from 0.0 to 2.0", "a number"."""
        bounds = self._bounds()
        if self.type is int and bounds:
            return "a whole number " + (bounds if bounds.startswith("from") else f"of {bounds}")
        return "a whole number" if self.type is int else bounds or "a number"

    def bounds_text(self) -> str:
        """The bounds for a help line ("0 to 2", "one of: a, b"), or "" (a text's length)."""
        if self.choices:
            return "one of: " + ", ".join(self.choices)
        if self.min is not None and self.max is not None and self.type is not str:
            return f"{self.min:g} to {self.max:g}"
        return ""


@dataclass(frozen=True)
class Command:
    """A command: `/name` alone, or `/group name` inside a `CommandGroup`.

    `run` is None for a command only Discord can run (its cog builds it); `ephemeral` replies are
    for the user alone on Discord.
    """

    name: str
    help: str
    run: Handler | None = None
    options: tuple[Option, ...] = ()
    manage_channels: bool = False
    ephemeral: bool = False

    @property
    def discord_only(self) -> bool:
        return self.run is None

    def option(self, name: str) -> Option:
        return next(o for o in self.options if o.name == name)

    def check(self, options: Mapping[str, object]) -> dict[str, OptionValue]:
        """The options given, each checked (`Option.check`); a required one missing is a
        `CommandError`."""
        checked: dict[str, OptionValue] = {}
        for option in self.options:
            value = options.get(option.name)
            if value is None:
                if option.required:
                    raise CommandError(f"The {option.called} is missing.")
                continue
            checked[option.name] = option.check(value)
        return checked

    def descriptions(self) -> dict[str, str]:
        """Each option's help by name (`app_commands.describe(**...)` for a cog's command)."""
        return {option.name: option.help for option in self.options}

    def takes(self, count: int) -> bool:
        """Whether `count` options, given in order, are a valid use."""
        return sum(o.required for o in self.options) <= count <= len(self.options)

    def usage(self) -> str:
        """The options as the console takes them: `VALUE [LENGTH]`."""
        names = [o.name.upper() if o.required else f"[{o.name.upper()}]" for o in self.options]
        return " ".join(names)


@dataclass(frozen=True)
class CommandGroup:
    """Commands under one name (`/temperature set`, `/temperature show`). A group's commands
    are all run by their handlers, or all only on Discord (one cog builds the group)."""

    name: str
    help: str
    commands: tuple[Command, ...]

    @property
    def discord_only(self) -> bool:
        return all(command.discord_only for command in self.commands)


Entry = Command | CommandGroup


class CommandTable:
    """Every command the loaded plugins declared, by top-level name, in the order added."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Entry, str]] = {}

    def add(self, entry: Entry, *, owner: str) -> None:
        """Add a command or group. The same owner may add it again (an extension reload)."""
        current = self._entries.get(entry.name)
        if current is not None and current[1] != owner:
            raise PluginError(
                f"Command /{entry.name} is already added by {current[1]!r}; "
                f"{owner!r} cannot add it too."
            )
        mixed = isinstance(entry, CommandGroup) and not entry.discord_only
        if mixed and any(c.discord_only for c in entry.commands):  # type: ignore[union-attr]
            raise PluginError(
                f"Group /{entry.name} mixes commands with and without handlers; "
                "a cog builds a group whose commands only Discord can run, whole."
            )
        self._entries[entry.name] = (entry, owner)

    def unregister_owner(self, owner: str) -> None:
        """Forget what `owner` added (its plugin unloaded)."""
        for name in [n for n, (_, o) in self._entries.items() if o == owner]:
            del self._entries[name]

    def entries(self) -> list[Entry]:
        return [entry for entry, _ in self._entries.values()]

    def get(self, name: str) -> Entry | None:
        found = self._entries.get(name)
        return None if found is None else found[0]

    def find(self, words: Sequence[str]) -> tuple[str, Command, list[str]] | None:
        """The command that `words` (a line split) names, its path (`temperature set`) and the
        words left for its options. A group named alone runs its `show` command, if it has one."""
        entry = self.get(words[0]) if words else None
        if isinstance(entry, Command):
            return entry.name, entry, list(words[1:])
        if entry is None:
            return None
        wanted = words[1] if len(words) > 1 else "show"
        for command in entry.commands:
            if command.name == wanted:
                return f"{entry.name} {command.name}", command, list(words[2:])
        return None


def options_from(command: Command, words: Sequence[str]) -> dict[str, OptionValue]:
    """A command's options from the words typed after it, in order (the console); the caller
    has checked their number (`Command.takes`)."""
    return {
        option.name: option.parse(word)
        for option, word in zip(command.options, words, strict=False)
    }
