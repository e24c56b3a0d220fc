"""`python -m bot` subcommands that plugins add.

A plugin module may define `def register_cli(cli: Subcommands) -> None`, beside `register` and
`setup`, and add its subcommands there. That hook needs nothing opened: the command line is parsed
before the config's store or models are, so `python -m bot --help` lists every subcommand of the
plugins the config allows (its `plugins.enabled` and the `charbot.plugins` entry points). Once
chosen, a subcommand runs with the services built from the config, every plugin's `register`
done (their settings keys known) and no model loaded (`await services.start_models()` loads
them), and returns the process's exit status. Bad input is a `CharbotError`: one sentence.

    def register_cli(cli: Subcommands) -> None:
        cli.add(Subcommand("history", "show a channel's history", show_history, add_options),
                owner=__name__)
"""

from __future__ import annotations

import argparse
import importlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.core.plugins import PluginSource
from bot.errors import PluginError

if TYPE_CHECKING:
    from bot.core.services import Services

log = logging.getLogger(__name__)

#: The optional module-level hook of a plugin that adds subcommands.
CLI_HOOK = "register_cli"


@dataclass(frozen=True)
class Subcommand:
    """`python -m bot NAME`: `run(args, services)` returns the exit status; `add_options`, if
    given, adds the subcommand's options to its argparse parser."""

    name: str
    help: str
    run: Callable[[argparse.Namespace, Services], Awaitable[int]]
    add_options: Callable[[argparse.ArgumentParser], None] | None = None


class Subcommands:
    """The subcommands the plugins added, by name."""

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        self._reserved = set(reserved)
        self._found: dict[str, tuple[Subcommand, str]] = {}

    def add(self, subcommand: Subcommand, *, owner: str) -> None:
        taken = subcommand.name in self._reserved
        current = self._found.get(subcommand.name)
        if taken or (current is not None and current[1] != owner):
            by = "python -m bot itself" if taken else repr(current[1]) if current else ""
            raise PluginError(
                f"The subcommand {subcommand.name!r} is taken by {by}; {owner!r} cannot add it."
            )
        self._found[subcommand.name] = (subcommand, owner)

    def all(self) -> list[Subcommand]:
        return [subcommand for subcommand, _ in self._found.values()]

    def __contains__(self, name: str) -> bool:
        return name in self._found or name in self._reserved


def discover(sources: Iterable[PluginSource], reserved: Iterable[str]) -> Subcommands:
    """The subcommands of the plugins in `sources`. A plugin that cannot be imported, or whose
    hook fails, adds none and is logged; the bot or the chat reports it again when loading it."""
    found = Subcommands(reserved)
    for source in sources:
        try:
            module = importlib.import_module(source.module)
            hook = getattr(module, CLI_HOOK, None)
            if hook is not None:
                hook(found)
        except Exception as exc:  # third-party code may raise anything: logged, not hidden
            log.warning(
                "plugin %r adds no subcommand: %s: %s", source.name, type(exc).__name__, exc
            )
    return found


def left_out(found: Subcommands, sources: Iterable[PluginSource]) -> None:
    """Add, to what the allowed plugins added, the subcommands of these plugins (built-ins the
    config leaves out), each refusing in one sentence: `python -m bot history` without the
    consent plugin says that it needs it, rather than that there is no such command."""
    for source in sources:
        theirs = discover([source], ())
        for subcommand in theirs.all():
            if subcommand.name not in found:
                found.add(_refusing(subcommand, source.module), owner=source.module)


def _refusing(subcommand: Subcommand, module: str) -> Subcommand:
    async def refuse(args: argparse.Namespace, services: Services) -> int:
        raise PluginError(
            f"`python -m bot {subcommand.name}` comes with the plugin {module}, which this "
            "config's plugins.enabled leaves out; add it back to use it."
        )

    def any_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("arguments", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    return Subcommand(subcommand.name, f"(off: needs {module})", refuse, any_arguments)
