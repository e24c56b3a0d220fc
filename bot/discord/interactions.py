"""Answering an interaction, for cogs and table-built slash commands alike: a reply within
Discord's limits, a failure told to the user as one sentence, the channel an interaction is
about, and the Manage Channels rule."""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from bot.errors import CharbotError

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 2000  # Discord's limit on a message's content
ELLIPSIS = "…"

#: Discord's codes for an interaction whose token expired (15 min) or is otherwise gone.
UNKNOWN_WEBHOOK, UNKNOWN_INTERACTION = 10015, 10062


def request_origin(
    client: discord.Client, guild_id: int | None, channel_id: int | None
) -> dict[str, int | None]:
    """Where a request came from, for its log lines: the shard (Discord's rule: guild id >> 22
    modulo the shard count; direct messages come on shard 0), the guild and the channel."""
    shard = 0 if guild_id is None else (guild_id >> 22) % (client.shard_count or 1)
    return {"shard": shard, "guild": guild_id, "channel": channel_id}


def check_manage_channels(interaction: discord.Interaction, required: bool) -> bool:
    """Changing a channel's settings needs Manage Channels, unless the config lifts the rule
    (`required` False)."""
    if required and not interaction.permissions.manage_channels:
        raise app_commands.MissingPermissions(["manage_channels"])
    return True


def channel_of(interaction: discord.Interaction) -> int:
    """The channel whose settings apply; an interaction without one is refused, never pooled
    under a made-up channel."""
    if interaction.channel_id is None:
        raise app_commands.CheckFailure("This command works only in a channel.")
    return interaction.channel_id


def fit(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """`text` cut to Discord's limit (an ellipsis says so): a long list or error message must
    never turn a reply into a failed request."""
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)] + ELLIPSIS


async def reply(interaction: discord.Interaction, content: str, *, ephemeral: bool = False) -> None:
    """Answer an interaction whether or not it was deferred, within Discord's length limit (the
    client sends every message with mentions disabled: `NO_MENTIONS`)."""
    content = fit(content)
    if interaction.response.is_done():
        await interaction.followup.send(content, ephemeral=ephemeral)
    else:
        await interaction.response.send_message(content, ephemeral=ephemeral)


def describe_failure(error: app_commands.AppCommandError) -> str | None:
    """A sentence for the user, or None when the failure is a bug to log."""
    original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
    if isinstance(original, CharbotError):
        return str(original)
    if isinstance(error, app_commands.MissingPermissions):
        needed = ", ".join(p.replace("_", " ").title() for p in error.missing_permissions)
        return f"You need the {needed} permission to do that here."
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down: try again in {error.retry_after:.1f} s."
    if isinstance(error, app_commands.CheckFailure):
        return str(error) or "You are not allowed to use this command."
    if isinstance(error, app_commands.TransformerError):
        return f"That value is not valid: {error.value!r}."
    return None


async def report_failure(
    interaction: discord.Interaction, error: app_commands.AppCommandError
) -> None:
    """Tell the user why a command failed, ephemerally; a bug is logged and told as one."""
    name = interaction.command.qualified_name if interaction.command else "?"
    original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
    if isinstance(original, discord.NotFound) and original.code in (
        UNKNOWN_WEBHOOK,
        UNKNOWN_INTERACTION,
    ):
        # Not a bug: the token expired (or the user dismissed it); nobody is left to tell.
        log.warning("/%s: the interaction expired before the answer was sent: %s", name, original)
        return
    message = describe_failure(error)
    if message is None:
        log.error("command /%s failed", name, exc_info=error)
        message = "Something went wrong on our side; the error was logged."
    try:
        await reply(interaction, message, ephemeral=True)
    except discord.HTTPException as exc:
        # The interaction token may have expired; the user cannot be told in that channel.
        log.warning("could not report a failure to the user: %s", exc)
