"""The plugin: registers the `markov` backend kind with the bot's model registry.

`register` is the Discord-free part (the console chat calls it alone); `setup` makes the module a
discord.py extension for the Discord bot.
"""

from __future__ import annotations

from pathlib import Path

from bot.api import CharBot, ModelLoadError, ModelSpec, Services
from charbot_markov.backend import MarkovBackend

KIND = "markov"


async def start_markov(spec: ModelSpec) -> MarkovBackend:
    """The factory for `[models.NAME] backend = "markov"`: `path` is the text to learn from."""
    if spec.path is None:
        raise ModelLoadError(f"Model {spec.name!r} is a Markov chain and needs a path to a text.")
    return await MarkovBackend.start(spec.name, Path(spec.path))


def register(services: Services) -> None:
    services.models.register_kind(KIND, start_markov)


async def setup(bot: CharBot) -> None:
    register(bot.services)


async def teardown(bot: CharBot) -> None:
    bot.models.unregister_kind(KIND)
