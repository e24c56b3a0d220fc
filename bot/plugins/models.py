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
from bot.plugins.base import NO_MENTIONS, CharbotGroupCog, require_manage_channels
from bot.settings import InvalidSettingError

if TYPE_CHECKING:
    from bot.app import CharBot


def describe_model(info: ModelInfo, *, markdown: bool = True) -> str:
    """A few lines on what is serving: name, shape, vocabulary, provenance, execution provider."""
    name = f"**{info.name}**" if markdown else info.name
    lines = [
        f"{name}: {info.level}-level {info.cell.upper()}, {info.layers} × {info.hidden} "
        f"units, {info.parameters:,} parameters, vocabulary of {info.vocab_size:,}",
        f"Running on: {info.provider}",
    ]
    training = dict(info.training)
    if training:
        keys = ("corpus", "characters", "steps", "seconds", "best_val_loss")
        shown = {k: training[k] for k in keys if k in training}
        lines.append(f"Training: {json.dumps(shown, ensure_ascii=False)}")
    return "\n".join(lines)


async def current_model(bot: CharBot, channel_id: int) -> str:
    chosen = await bot.settings.get(channel_id, MODEL_KEY)
    return str(chosen) if chosen is not None else bot.config.models.default


async def show_model(bot: CharBot, channel_id: int, *, markdown: bool = True) -> str:
    name = await current_model(bot, channel_id)
    text = describe_model(bot.models.get(name).info, markdown=markdown)
    others = [n for n in bot.models.names if n != name]
    if others:
        text += f"\nAlso available: {', '.join(others)}"
    return text


async def use_model(bot: CharBot, channel_id: int, name: str) -> str:
    await bot.settings.set(channel_id, MODEL_KEY, name)
    return f"This channel now uses **{name}**."


class Models(CharbotGroupCog, group_name="model"):
    """The model that writes in this channel."""

    @app_commands.command(name="show")
    async def show(self, interaction: discord.Interaction) -> None:
        """Show the model in use in this channel."""
        text = await show_model(self.bot, interaction.channel_id or 0)
        await interaction.response.send_message(text, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="use")
    @app_commands.describe(name="One of the models the bot serves")
    async def use(self, interaction: discord.Interaction, name: str) -> None:
        """Pick the model for this channel."""
        require_manage_channels(interaction)
        text = await use_model(self.bot, interaction.channel_id or 0, name)
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


async def setup(bot: CharBot) -> None:
    def validate_model(value: Any) -> str:
        names = list(bot.config.models.models)
        if value not in names:
            raise InvalidSettingError(
                f"There is no model named {value!r}; choose one of: {', '.join(names)}."
            )
        return str(value)

    bot.settings_registry.register_channel(
        MODEL_KEY, default=None, validate=validate_model, owner=__name__
    )
    await bot.add_cog(Models(bot))


async def teardown(bot: CharBot) -> None:
    bot.settings_registry.unregister_owner(__name__)
