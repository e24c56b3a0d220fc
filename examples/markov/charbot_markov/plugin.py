"""The plugin: registers the `markov` backend kind with the bot's model registry.

`register` is the Discord-free part (the console chat calls it alone); `setup` makes the module a
discord.py extension for the Discord bot.
"""

from __future__ import annotations

from bot.api import CharBot, Services
from charbot_markov.backend import MarkovBackend

KIND = "markov"


def register(services: Services) -> None:
    services.models.register_kind(KIND, MarkovBackend.start)


async def setup(bot: CharBot) -> None:
    register(bot.services)


async def teardown(bot: CharBot) -> None:
    bot.models.unregister_kind(KIND)
