"""The discord.py extension: registers the `markov` backend kind with the bot's model registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from charbot_markov.backend import MarkovBackend

if TYPE_CHECKING:
    from bot.app import CharBot

KIND = "markov"


async def setup(bot: CharBot) -> None:
    bot.models.register_kind(KIND, MarkovBackend.start)


async def teardown(bot: CharBot) -> None:
    bot.models.unregister_kind(KIND)
