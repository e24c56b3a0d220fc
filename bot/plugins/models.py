"""`/model show` and `/model use NAME`: which model writes in a channel.

The config may name several models (a char-level and a word-level one, the Markov backend...);
each channel picks one, and the config's default serves the rest.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.completions import MODEL_KEY
from bot.generation.backend import ModelInfo
from bot.plugins.base import NO_MENTIONS, CharbotGroupCog, manage_channels
from bot.settings import InvalidSettingError

if TYPE_CHECKING:
    from bot.app import CharBot
    from bot.services import Services


def describe_model(info: ModelInfo, *, markdown: bool = True) -> str:
    """A few lines on what is serving: name, what it is, its size, provenance, where it runs."""
    name = f"**{info.name}**" if markdown else info.name
    size = [f"{info.parameters:,} parameters"] if info.parameters else []
    size += [f"vocabulary of {info.vocab_size:,}"] if info.vocab_size else []
    lines = [", ".join([f"{name}: {info.description}", *size]), f"Running on: {info.provider}"]
    training = dict(info.training)
    if training:
        keys = ("corpus", "characters", "steps", "seconds", "best_val_loss")
        shown = {k: training[k] for k in keys if k in training}
        lines.append(f"Training: {json.dumps(shown, ensure_ascii=False)}")
    return "\n".join(lines)


async def show_model(services: Services, channel_id: int, *, markdown: bool = True) -> str:
    name = await services.completions.channel_model(channel_id)
    text = describe_model(services.models.get(name).info, markdown=markdown)
    others = [n for n in services.models.names if n != name]
    if others:
        text += f"\nAlso available: {', '.join(others)}"
    return text


async def use_model(services: Services, channel_id: int, name: str) -> str:
    await services.settings.set(channel_id, MODEL_KEY, name)
    return f"This channel now uses **{name}**."


class Models(CharbotGroupCog, group_name="model"):
    """The model that writes in this channel."""

    @app_commands.command(name="show")
    async def show(self, interaction: discord.Interaction) -> None:
        """Show the model in use in this channel."""
        text = await show_model(self.bot.services, self.channel_id(interaction))
        await interaction.response.send_message(text, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="use")
    @app_commands.describe(name="One of the models the bot serves")
    @manage_channels()
    async def use(self, interaction: discord.Interaction, name: str) -> None:
        """Pick the model for this channel."""
        text = await use_model(self.bot.services, self.channel_id(interaction), name)
        await interaction.response.send_message(text, allowed_mentions=NO_MENTIONS)

    @use.autocomplete("name")
    async def _names(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [
            app_commands.Choice(name=n, value=n)
            for n in self.bot.models.names
            if current.lower() in n.lower()
        ][:25]


def register(services: Services) -> None:
    """The setting this plugin owns; works without Discord (the console chat calls it)."""
    configured = list(services.config.models.models)

    def validate_model(value: Any) -> str:
        if value not in configured:
            raise InvalidSettingError(
                f"There is no model named {value!r}; choose one of: {', '.join(configured)}."
            )
        return str(value)

    services.settings_registry.register_channel(
        MODEL_KEY, default=None, validate=validate_model, owner=__name__
    )


async def setup(bot: CharBot) -> None:
    register(bot.services)
    await bot.add_cog(Models(bot))


async def teardown(bot: CharBot) -> None:
    bot.settings_registry.unregister_owner(__name__)
