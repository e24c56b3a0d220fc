"""`/complete` and replies to mentions: the bot continues the user's text.

Generation never runs in a handler: the handler defers the interaction (Discord allows 3 s for a
first answer), then awaits the worker pool through the completion service. `/complete` streams: a
slow completion shows as it arrives (see `bot.plugins.live_reply`). The Continue and Regenerate
buttons under an answer come from the continuation plugin, when it is loaded
(`bot.plugins.replies`).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.api import (
    MAX_TEMPERATURE,
    MESSAGE_LIMIT,
    CharbotCog,
    CharbotError,
    Command,
    Completion,
    Config,
    Option,
    apply_declaration,
    request_origin,
)
from bot.plugins.live_reply import reply_as_it_arrives
from bot.plugins.replies import (
    COMPLETIONS_COG,
    CONTINUATION_COG,
    MakesButtons,
    format_completion,
    format_interrupted,
    format_partial,
    sendable,
    tell_privately,
)

if TYPE_CHECKING:
    from bot.api import CharBot, Services

log = logging.getLogger(__name__)

OPTION_TEXT_LIMIT = 6000  # Discord's limit on a string option's length


def user_cooldowns(seconds: float) -> commands.CooldownMapping[discord.abc.User]:
    """One completion per user every `seconds`, shared by /complete and mentions. discord.py's
    mapping drops expired buckets as it goes, so it does not grow with every user ever seen."""
    return commands.CooldownMapping(commands.Cooldown(1, seconds), lambda user: user.id)


def complete_command(config: Config) -> Command:
    """`/complete`, declared: only Discord runs it (the console's plain line is its twin). The
    bounds Discord shows are the configured ones, not hard-coded ones."""
    return Command(
        "complete",
        "Continue a text in the style of the channel's model.",
        options=(
            Option(
                "prompt",
                str,
                "The text for the bot to continue",
                min=1,
                max=min(OPTION_TEXT_LIMIT, config.engine.max_prompt_chars),
            ),
            Option(
                "length",
                int,
                "How many characters (or words) to write",
                min=1,
                max=min(MESSAGE_LIMIT, config.engine.max_length),
                required=False,
            ),
            Option(
                "temperature",
                float,
                f"0.0 writes the likeliest text; {MAX_TEMPERATURE:g} is wild "
                "(default: the channel's)",
                min=0.0,
                max=MAX_TEMPERATURE,
                required=False,
            ),
        ),
    )


class Completions(CharbotCog, name=COMPLETIONS_COG):
    def __init__(self, bot: CharBot, declared: Command) -> None:
        super().__init__(bot)
        self.cooldowns = user_cooldowns(bot.config.discord.cooldown_seconds)
        self.declared = declared
        apply_declaration(self.complete, declared)

    def retry_after(self, user: discord.abc.User) -> float | None:
        """None when the user may go now (and the slot is taken), else the seconds left."""
        bucket = self.cooldowns.get_bucket(user)
        return None if bucket is None else bucket.update_rate_limit()

    def _check_cooldown(self, user: discord.abc.User) -> None:
        wait = self.retry_after(user)
        if wait is not None:
            cooldown = app_commands.Cooldown(1, self.bot.config.discord.cooldown_seconds)
            raise app_commands.CommandOnCooldown(cooldown, wait)

    @app_commands.command(name="complete")
    async def complete(
        self,
        interaction: discord.Interaction,
        prompt: str,
        length: int | None = None,
        temperature: float | None = None,
    ) -> None:
        """Continue a text (its help, and its options' help and bounds: `complete_command`)."""
        # Refused here, before the defer, so the refusal is ephemeral and costs no generation:
        # discord.py does not enforce the bounds (Discord's client does), and a forged
        # interaction can carry anything, NaN included. The prompt's length is the engine's.
        for name, value in (("length", length), ("temperature", temperature)):
            if value is not None:
                self.declared.option(name).check(value)
        channel_id = self.channel_id(interaction)
        self._check_cooldown(interaction.user)
        # Tracked from the defer to the last reply, failures included: shutdown waits for it.
        origin = request_origin(self.bot, interaction.guild_id, channel_id)
        async with self.bot.completions.track(**origin):
            await interaction.response.defer(thinking=True)
            chunks = self.bot.completions.stream(
                channel_id, prompt, length=length, temperature=temperature
            )

            async def view_for(completion: Completion | None) -> Any:
                # The buttons come with the whole answer, never with a part of it.
                if completion is None:
                    return discord.utils.MISSING
                return await self.buttons(
                    completion,
                    channel_id=channel_id,
                    author_id=interaction.user.id,
                    length=length,
                    temperature=temperature,
                )

            async def send(content: str, completion: Completion | None) -> None:
                view = await view_for(completion)
                await interaction.followup.send(content, view=view)

            async def edit(content: str, completion: Completion | None) -> None:
                view = await view_for(completion)
                await interaction.edit_original_response(content=content, view=view)

            shown: str | None = None  # the text so far, once the public answer shows some

            def partial(text: str) -> str:
                nonlocal shown
                shown = text
                return format_partial(prompt, text)

            try:
                # One message when the text comes quickly; edited as it arrives when it does not.
                await reply_as_it_arrives(
                    chunks, send=send, edit=edit, partial=partial, final=format_completion
                )
            except CharbotError as exc:
                # Told here, not in cog_app_command_error: that runs after `track` has ended,
                # when a shutdown may already have closed the connection.
                if shown is not None:
                    await self.interrupted(interaction, prompt, shown, length, temperature)
                await tell_privately(interaction, str(exc), keep_answer=shown is not None)

    async def interrupted(
        self,
        interaction: discord.Interaction,
        prompt: str,
        text: str,
        length: int | None,
        temperature: float | None,
    ) -> None:
        """The public answer of a stream an error cut: what came, a note saying it was cut, and
        Regenerate when the continuation plugin can keep a record for it."""
        cog = self.bot.get_cog(CONTINUATION_COG)
        view = None
        if isinstance(cog, MakesButtons):
            view = await cog.buttons_for_interrupted(
                prompt,
                text,
                channel_id=self.channel_id(interaction),
                author_id=interaction.user.id,
                length=length,
                temperature=temperature,
            )
        content = format_interrupted(prompt, text, regenerate=view is not None)
        try:
            await interaction.edit_original_response(content=content, view=view)
        except discord.HTTPException as exc:
            log.warning("could not mark an interrupted answer: %s", exc)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        me = self.bot.user
        # Never answer itself or another bot: two bots could reply to each other forever.
        if me is None or message.author.bot or message.author.id == me.id:
            return
        if not any(user.id == me.id for user in message.mentions):
            return
        prompt = re.sub(rf"<@!?{me.id}>", "", message.content).strip()
        if self.retry_after(message.author) is not None:
            return  # Silently: answering every rate-limited mention would be spam itself.
        guild_id = message.guild.id if message.guild else None
        origin = request_origin(self.bot, guild_id, message.channel.id)
        async with self.bot.completions.track(**origin):
            view = discord.utils.MISSING
            try:
                async with message.channel.typing():
                    completion = await self.bot.completions.complete(message.channel.id, prompt)
                content = format_completion(completion)
                view = await self.buttons(
                    completion, channel_id=message.channel.id, author_id=message.author.id
                )
            except CharbotError as exc:
                content = str(exc)
            await message.reply(content, mention_author=False, view=view)

    async def buttons(
        self,
        completion: Completion,
        *,
        channel_id: int,
        author_id: int,
        length: int | None = None,
        temperature: float | None = None,
    ) -> Any:
        """The `view=` to send with a completion: its Continue and Regenerate buttons, or
        `MISSING` (none) when the continuation plugin is not loaded."""
        cog = self.bot.get_cog(CONTINUATION_COG)
        if not isinstance(cog, MakesButtons):
            return discord.utils.MISSING
        view = await cog.buttons_for(
            completion,
            channel_id=channel_id,
            author_id=author_id,
            length=length,
            temperature=temperature,
        )
        return sendable(view)


def register(services: Services) -> None:
    """Declares `/complete`, so that the console's help lists it as Discord's."""
    services.commands.add(complete_command(services.config), owner=__name__)


async def setup(bot: CharBot) -> None:
    register(bot.services)
    declared = bot.services.commands.get("complete")
    assert isinstance(declared, Command)
    await bot.add_cog(Completions(bot, declared))
