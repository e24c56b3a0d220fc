"""Continue and Regenerate buttons under every completion, and the "Continue with charbot" menu.

- **Continue** (anyone): the prompt and everything generated so far become the new prompt, with
  the channel's current model and settings; the continuation is posted as a reply, with buttons
  of its own, and the continued message's buttons go (the story goes on from the reply).
- **Regenerate** (who asked, or Manage Messages): the same prompt and params, a new seed; the
  message is edited in place.
- **Continue with charbot** (a message context menu, Apps): continues any message's text, read
  as the exporter reads Discord messages for training (`models.discord_text`: mentions as names,
  custom emoji as `:name:`); on one of the bot's own completions, the text its Continue button
  would continue (the record's prompt and text, not the message's decorations).

A Continue pressed after the text went on (a client still showing the buttons) is told where: the
continued record keeps the reply's link. An answer cut by an error mid-stream keeps its record
with only a Regenerate button (`buttons_for_interrupted`).

The buttons are `DynamicItem`s whose custom ids name a record in the settings store
(`bot.core.records`), so they keep working after a restart until the record expires. The
buttons are disabled while a press is answered, and a press is claimed before any work, so a
double press gives one answer.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal, Self

import discord
from discord import app_commands
from discord.ext import tasks

from bot.api import (
    MESSAGE_LIMIT,
    CharbotCog,
    CharbotError,
    Claim,
    ClaimStatus,
    Completion,
    CompletionRecord,
    CompletionRecords,
    GenerationParams,
    reply,
    request_origin,
)
from bot.plugins.replies import (
    COMPLETIONS_COG,
    CONTINUATION_COG,
    HasCooldown,
    format_completion,
    sendable,
    tell_privately,
)
from models.discord_text import (
    CHANNEL_MENTION,
    ROLE_MENTION,
    USER_MENTION,
    DiscordNames,
    message_text,
)

if TYPE_CHECKING:
    from bot.api import CharBot

log = logging.getLogger(__name__)

Action = Literal["continue", "regenerate"]
ACTIONS: tuple[Action, ...] = ("continue", "regenerate")
LOOKS = {
    "continue": ("Continue", discord.ButtonStyle.primary),
    "regenerate": ("Regenerate", discord.ButtonStyle.secondary),
}
#: `charbot:<action>:<record id>:<record version>`: well under Discord's 100 characters.
CUSTOM_ID = re.compile(
    r"charbot:(?P<action>continue|regenerate):(?P<record>[0-9a-f]{16}):(?P<version>[0-9]{1,9})"
)
MENU_NAME = "Continue with charbot"

GONE = (
    "These buttons no longer work (they last {days:g} days, or the text was continued); "
    "start again with /complete."
)
BUSY = "I am already answering a press on this message; its answer is on the way."
CONTINUED = "The story goes on in the reply: {link}"
STALE = "This message changed since you pressed; use its buttons again if you still want to."
ONLY_AUTHOR = "Only the person who asked (or someone with Manage Messages) can regenerate this."
NOTHING_TO_CONTINUE = "That message has no text to continue."
NOT_A_COMPLETION = (
    "I continue my own messages only while their buttons work (for {days:g} days); "
    "for this one, use /complete with its text."
)
EMPTY = "-# (the model wrote nothing)"


class CompletionButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=CUSTOM_ID
):
    """A Continue or Regenerate button; everything it needs is in the record its id names."""

    def __init__(self, action: Action, record_id: str, version: int, *, disabled: bool) -> None:
        label, style = LOOKS[action]
        super().__init__(
            discord.ui.Button(
                label=label,
                style=style,
                custom_id=f"charbot:{action}:{record_id}:{version}",
                disabled=disabled,
            )
        )
        self.action: Action = action
        self.record_id = record_id
        self.version = version

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> Self:
        action: Action = "continue" if match["action"] == "continue" else "regenerate"
        return cls(action, match["record"], int(match["version"]), disabled=False)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        cog = interaction.client.get_cog(CONTINUATION_COG)
        if isinstance(cog, Continuation):
            await cog.press(interaction, self.action, self.record_id, self.version)


def buttons(
    record: CompletionRecord, record_id: str, version: int, *, disabled: bool = False
) -> discord.ui.View:
    """The view under a completion: Continue, then Regenerate; an interrupted answer has only
    Regenerate (there is no whole text to go on from)."""
    view = discord.ui.View(timeout=None)
    for action in ("regenerate",) if record.interrupted else ACTIONS:
        view.add_item(CompletionButton(action, record_id, version, disabled=disabled))
    return view


def record_of(message: discord.Message) -> str | None:
    """The record id that a message's buttons name, if it has any."""
    for row in message.components:
        for item in getattr(row, "children", ()):
            match = CUSTOM_ID.fullmatch(getattr(item, "custom_id", None) or "")
            if match is not None:
                return match["record"]
    return None


def render(record: CompletionRecord, completion: Completion) -> str:
    """The message for a record: its header, then the completion as `/complete` shows it (a
    continuation without its prompt, which the message above already shows)."""
    shown = completion if record.shows_prompt else replace(completion, prompt="")
    head = record.header + "\n" if record.header else ""
    return head + (format_completion(shown, MESSAGE_LIMIT - len(head)) or EMPTY)


def message_prompt(message: discord.Message) -> str:
    """A member's message as model text, by the exporter's rule (`models.discord_text`): users
    by the names the server shows, roles and channels by name, custom emoji as `:name:`."""
    users = {str(user.id): user.display_name for user in message.mentions}
    roles: dict[str, str] = {}
    channels: dict[str, str] = {}
    guild = message.guild
    if guild is not None:
        for found in USER_MENTION.finditer(message.content):
            member = guild.get_member(int(found[1]))
            if member is not None:
                users.setdefault(found[1], member.display_name)
        for found in ROLE_MENTION.finditer(message.content):
            if (role := guild.get_role(int(found[1]))) is not None:
                roles[found[1]] = role.name
        for found in CHANNEL_MENTION.finditer(message.content):
            if (channel := guild.get_channel_or_thread(int(found[1]))) is not None:
                channels[found[1]] = channel.name
    return message_text(message.content, DiscordNames(users, roles, channels))


class Continuation(CharbotCog, name=CONTINUATION_COG):
    def __init__(self, bot: CharBot) -> None:
        super().__init__(bot)
        self.lifetime_days = bot.config.discord.buttons_expire_days
        self.records = CompletionRecords(bot.settings, self.lifetime_days)
        self.max_prompt = bot.config.engine.max_prompt_chars
        # A context menu cannot be a cog's method: it is added to the tree on load.
        self.menu = app_commands.ContextMenu(name=MENU_NAME, callback=self.continue_message)
        self.menu.error(self.cog_app_command_error)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)
        self.bot.add_dynamic_items(CompletionButton)
        self.purge_expired.start()

    async def cog_unload(self) -> None:
        self.purge_expired.cancel()
        self.bot.remove_dynamic_items(CompletionButton)
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    @tasks.loop(hours=1)
    async def purge_expired(self) -> None:
        try:
            await self.records.purge()
        except CharbotError as exc:
            log.warning("could not remove the expired completion records: %s", exc)

    async def buttons_for(
        self,
        completion: Completion,
        *,
        channel_id: int,
        author_id: int,
        length: int | None = None,
        temperature: float | None = None,
    ) -> discord.ui.View | None:
        """The buttons to send under a completion of the channel's model, recording what they
        need; None when the record could not be kept (then there are none)."""
        try:
            params = await self.bot.completions.channel_params(
                channel_id, length=length, temperature=temperature
            )
        except CharbotError as exc:
            log.warning("a completion goes without buttons: %s", exc)
            return None
        record = CompletionRecord(
            completion.prompt, completion.text, completion.model, params, author_id, channel_id
        )
        return await self.remember(record)

    async def buttons_for_interrupted(
        self,
        prompt: str,
        text: str,
        *,
        channel_id: int,
        author_id: int,
        length: int | None = None,
        temperature: float | None = None,
    ) -> discord.ui.View | None:
        """A Regenerate button for an answer cut by an error after `text` had come, with the
        channel's model and params as the request had them; None when no record can be kept."""
        completions = self.bot.completions
        try:
            model = await completions.channel_model(channel_id)
            params = await completions.channel_params(
                channel_id, length=length, temperature=temperature
            )
        except CharbotError as exc:
            log.warning("an interrupted completion goes without buttons: %s", exc)
            return None
        record = CompletionRecord(
            prompt, text, model, params, author_id, channel_id, interrupted=True
        )
        return await self.remember(record)

    async def remember(self, record: CompletionRecord) -> discord.ui.View | None:
        try:
            record_id, version = await self.records.add(record)
        except CharbotError as exc:
            log.warning("a completion goes without buttons: %s", exc)
            return None
        return buttons(record, record_id, version)

    def _cooldown_refusal(self, user: discord.abc.User) -> str | None:
        """The sentence for a user still in the cooldown shared with /complete and mentions."""
        # By name and protocol: reloading that extension makes a new class.
        cog = self.bot.get_cog(COMPLETIONS_COG)
        wait = cog.retry_after(user) if isinstance(cog, HasCooldown) else None
        return None if wait is None else f"Slow down: try again in {wait:.1f} s."

    # -- the buttons ------------------------------------------------------------------------

    async def press(
        self, interaction: discord.Interaction[Any], action: Action, record_id: str, version: int
    ) -> None:
        # Tracked until the answer is sent: a shutdown waits for it.
        origin = request_origin(self.bot, interaction.guild_id, interaction.channel_id)
        async with self.bot.completions.track(**origin):
            try:
                if action == "continue":
                    await self._continue(interaction, record_id, version)
                else:
                    await self._regenerate(interaction, record_id, version)
            except CharbotError as exc:
                await self._tell(interaction, str(exc))
            except discord.HTTPException as exc:
                # The interaction expired, or the message was deleted meanwhile.
                log.warning("a %s press could not be answered: %s", action, exc)

    async def _tell(self, interaction: discord.Interaction[Any], text: str) -> None:
        try:
            await reply(interaction, text, ephemeral=True)
        except discord.HTTPException as exc:
            log.warning("could not tell the user: %s", exc)

    async def _refuse(self, interaction: discord.Interaction[Any], claim: Claim) -> None:
        if claim.status is ClaimStatus.GONE:
            # Buttons that can no longer work are taken off the message.
            await interaction.response.edit_message(view=None)
            await self._tell(interaction, GONE.format(days=self.lifetime_days))
        elif claim.status is ClaimStatus.CONTINUED and claim.record is not None:
            # Another press continued it: no buttons here (the client may still show them).
            await interaction.response.edit_message(view=None)
            await self._tell(interaction, CONTINUED.format(link=claim.record.continued))
        elif claim.status is ClaimStatus.STALE and claim.record is not None:
            # The message shows the buttons of the record's current state (should an update
            # have been lost, this heals it), and the user may press again.
            view = buttons(claim.record, claim.record_id, claim.version)
            await interaction.response.edit_message(view=view)
            await self._tell(interaction, STALE)
        else:
            await self._tell(interaction, BUSY)

    async def _generate(
        self,
        interaction: discord.Interaction[Any],
        model: str,
        prompt: str,
        params: GenerationParams,
    ) -> Completion | None:
        """Run a completion; a failure the user should hear of is told ephemerally (None)."""
        try:
            return await self.bot.completions.generate(model, prompt, params)
        except CharbotError as exc:
            await interaction.followup.send(str(exc), ephemeral=True)
            return None

    async def _regenerate(
        self, interaction: discord.Interaction[Any], record_id: str, version: int
    ) -> None:
        found = await self.records.get(record_id)
        if found is None or found[0].continued:
            status = ClaimStatus.GONE if found is None else ClaimStatus.CONTINUED
            await self._refuse(interaction, Claim(status, record_id, found and found[0]))
            return
        record = found[0]
        if interaction.user.id != record.author_id and not interaction.permissions.manage_messages:
            await self._tell(interaction, ONLY_AUTHOR)
            return
        if (refusal := self._cooldown_refusal(interaction.user)) is not None:
            await self._tell(interaction, refusal)
            return
        claim = await self.records.claim(record_id, version)
        if claim.status is not ClaimStatus.CLAIMED or claim.record is None:
            await self._refuse(interaction, claim)
            return
        record = claim.record
        completion: Completion | None = None
        kept = record
        try:
            disabled = buttons(record, record_id, claim.version, disabled=True)
            await interaction.response.edit_message(view=disabled)
            # A new seed (None draws fresh entropy); everything else as the first time.
            params = replace(record.params, seed=None)
            completion = await self._generate(interaction, record.model, record.prompt, params)
            if completion is not None:
                kept = replace(record, text=completion.text, interrupted=False)
        finally:
            new_version = await self.records.release(claim, kept)
        view = buttons(kept, record_id, new_version) if new_version is not None else None
        if completion is not None:
            await interaction.edit_original_response(content=render(kept, completion), view=view)
        else:
            await interaction.edit_original_response(view=view)

    async def _continue(
        self, interaction: discord.Interaction[Any], record_id: str, version: int
    ) -> None:
        if (refusal := self._cooldown_refusal(interaction.user)) is not None:
            await self._tell(interaction, refusal)
            return
        claim = await self.records.claim(record_id, version)
        if claim.status is not ClaimStatus.CLAIMED or claim.record is None:
            await self._refuse(interaction, claim)
            return
        record = claim.record
        reply_sent: discord.Message | None = None
        try:
            await interaction.response.edit_message(
                view=buttons(record, record_id, claim.version, disabled=True)
            )
            reply_sent = await self._post_continuation(interaction, record)
        finally:
            # A continued record stays (with the reply's link) to tell a late press where the
            # story went.
            kept = record if reply_sent is None else replace(record, continued=reply_sent.jump_url)
            new_version = await self.records.release(claim, kept)
        # The story goes on from the reply: the continued message's buttons go.
        view = None
        if reply_sent is None and new_version is not None:
            view = buttons(record, record_id, new_version)
        await interaction.edit_original_response(view=view)

    async def _post_continuation(
        self, interaction: discord.Interaction[Any], record: CompletionRecord
    ) -> discord.Message | None:
        """Continue `record`'s text with the channel's settings and post it as a reply."""
        message = interaction.message
        if message is None:
            return None

        async def send(content: str, view: Any) -> discord.Message:
            return await message.reply(content, view=view, mention_author=False)

        tell = functools.partial(self._tell, interaction)
        prompt = record.context(self.max_prompt)
        return await self._continue_with_channel(
            interaction, prompt, tell, send, shows_prompt=False
        )

    async def _continue_with_channel(
        self,
        interaction: discord.Interaction[Any],
        prompt: str,
        tell: Callable[[str], Awaitable[None]],
        send: Callable[[str, Any], Awaitable[discord.Message]],
        **shown: Any,
    ) -> discord.Message | None:
        """Continue `prompt` with the channel's model and settings, keep the record its buttons
        need (`shown`: how the message shows it), and `send` it: the one path of the Continue
        button and the menu. A failure is told with `tell`, for the user alone (None)."""
        channel_id = self.channel_id(interaction)
        completions = self.bot.completions
        try:
            model = await completions.channel_model(channel_id)
            params = await completions.channel_params(channel_id)
            completion = await completions.generate(model, prompt, params)
        except CharbotError as exc:
            await tell(str(exc))
            return None
        record = CompletionRecord(
            prompt,
            completion.text,
            completion.model,
            params,
            interaction.user.id,
            channel_id,
            **shown,
        )
        view = await self.remember(record)
        return await send(render(record, completion), sendable(view))

    # -- the context menu -------------------------------------------------------------------

    async def continue_message(
        self, interaction: discord.Interaction[Any], message: discord.Message
    ) -> None:
        """Continue this message's text with the channel's model and settings."""
        channel_id = self.channel_id(interaction)
        me = self.bot.user
        if me is not None and message.author.id == me.id:
            # Its own completion: the text its Continue button would go on from.
            record_id = record_of(message)
            found = None if record_id is None else await self.records.get(record_id)
            if found is None:
                await self._tell(interaction, NOT_A_COMPLETION.format(days=self.lifetime_days))
                return
            prompt = found[0].context(self.max_prompt)
        else:
            prompt = message_prompt(message)[-self.max_prompt :]
        if not prompt.strip():
            await self._tell(interaction, NOTHING_TO_CONTINUE)
            return
        if (refusal := self._cooldown_refusal(interaction.user)) is not None:
            await self._tell(interaction, refusal)
            return

        async def send(content: str, view: Any) -> discord.Message:
            return await interaction.followup.send(content, view=view, wait=True)

        tell = functools.partial(tell_privately, interaction)
        header = f"-# Continuing {message.author.mention}'s message {message.jump_url}"
        origin = request_origin(self.bot, interaction.guild_id, channel_id)
        async with self.bot.completions.track(**origin):
            await interaction.response.defer(thinking=True)
            await self._continue_with_channel(interaction, prompt, tell, send, header=header)


async def setup(bot: CharBot) -> None:
    await bot.add_cog(Continuation(bot))
