"""Plugin discovery: the config's plugins (the built-in ones by default), and the third-party ones
found through entry points.

A plugin is a discord.py extension: a module with `async def setup(bot) -> None` that adds its
cogs. Plugins load only from two places, never from a path a user types: the config's
`plugins.enabled` list and the Python entry-point group `charbot.plugins` (`ENTRY_POINT_GROUP`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import entry_points

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "charbot.plugins"


@dataclass(frozen=True)
class PluginSource:
    """Where a loadable plugin comes from: its short name and the module discord.py imports."""

    name: str
    module: str
    origin: str  # "config" or "entry point <dist>"


def discover_entry_points() -> list[PluginSource]:
    """Third-party plugins installed as packages that declare a `charbot.plugins` entry point."""
    found = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "unknown package"
        # The entry point names a module (`pkg.plugin`); an attribute part is not used.
        found.append(PluginSource(ep.name, ep.module, f"entry point of {dist}"))
    return found


def allowed_plugins(enabled: list[str], use_entry_points: bool) -> dict[str, PluginSource]:
    """Every plugin the owner may load, by name: the config's modules, then the entry points."""
    allowed = {
        module.rsplit(".", 1)[-1]: PluginSource(module.rsplit(".", 1)[-1], module, "config")
        for module in enabled
    }
    if use_entry_points:
        for source in discover_entry_points():
            allowed.setdefault(source.name, source)
    return allowed
