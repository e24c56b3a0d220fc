"""Consent: which channels of a guild may train a model (`/training`), members who opt out of
every training export (`/privacy`), and `python -m bot history export`, which writes the
allowed history without them (`export.py`, in DiscordChatExporter's format: `dce.py`), and
`python -m bot privacy list`.

The history export lives in this plugin so that it cannot be had without the consent it honours:
a config that leaves the plugin out has neither (`python -m bot history` then says so).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .cli import register_cli
from .cogs import PRIVACY, TRAINING, add_cogs

if TYPE_CHECKING:
    from bot.api import CharBot, Services

__all__ = ["register", "register_cli", "setup"]


def register(services: Services) -> None:
    """Declares the commands, so that the console's help lists them as Discord's."""
    services.commands.add(TRAINING, owner=__name__)
    services.commands.add(PRIVACY, owner=__name__)


async def setup(bot: CharBot) -> None:
    register(bot.services)
    await add_cogs(bot)
