"""How the completion plugins answer on Discord: a completion as a message, a failure told
privately, and what the completion and continuation plugins ask of each other.

They find each other by cog name and protocol, never by import, so either loads (and reloads)
without the other: `/complete` goes without buttons when the continuation plugin is not loaded,
and the buttons share the completion plugin's cooldown when it is.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, runtime_checkable

import discord
from discord.utils import escape_markdown

from bot.api import ELLIPSIS, MESSAGE_LIMIT, Completion, unknown_note

log = logging.getLogger(__name__)

COMPLETIONS_COG = "Completions"
CONTINUATION_COG = "Continuation"
PROMPT_SHOWN = 300  # characters of the prompt echoed back before the generated text
#: Under an answer an error cut short, in place of the mark that more follows.
INTERRUPTED = "The answer was interrupted."
INTERRUPTED_REGENERATE = "The answer was interrupted; Regenerate tries again."


@runtime_checkable
class HasCooldown(Protocol):
    """The completion cog's per-user cooldown, which the buttons and the menu share."""

    def retry_after(self, user: discord.abc.User) -> float | None: ...


@runtime_checkable
class MakesButtons(Protocol):
    """The continuation cog: the buttons to send under a completion (None: none)."""

    async def buttons_for(
        self,
        completion: Completion,
        *,
        channel_id: int,
        author_id: int,
        length: int | None = None,
        temperature: float | None = None,
    ) -> discord.ui.View | None: ...

    async def buttons_for_interrupted(
        self,
        prompt: str,
        text: str,
        *,
        channel_id: int,
        author_id: int,
        length: int | None = None,
        temperature: float | None = None,
    ) -> discord.ui.View | None: ...


def format_completion(completion: Completion, limit: int = MESSAGE_LIMIT) -> str:
    """The prompt in bold, then the generated text, markdown escaped so it shows as written.

    The generated text is cut to fit `limit`; cutting happens before escaping so an escape
    sequence is never split.
    """
    unknown = unknown_note(completion)
    note = "" if unknown is None else f"\n-# {escape_markdown(unknown)}"
    return format_text(completion.prompt, completion.text, note, limit)


def format_partial(prompt: str, text: str, limit: int = MESSAGE_LIMIT) -> str:
    """A completion still being written: as `format_completion`, with a mark that more follows."""
    return format_text(prompt, text, f" {ELLIPSIS}", limit)


def format_interrupted(prompt: str, text: str, *, regenerate: bool) -> str:
    """An answer an error cut short after `text`: what came, and a note saying so."""
    note = INTERRUPTED_REGENERATE if regenerate else INTERRUPTED
    return format_text(prompt, text, f" {ELLIPSIS}\n-# {note}")


def format_text(prompt: str, text: str, note: str = "", limit: int = MESSAGE_LIMIT) -> str:
    """The bold prompt, the escaped text cut to fit `limit`, then `note` as it is."""
    if len(prompt) > PROMPT_SHOWN:
        prompt = ELLIPSIS + prompt[-PROMPT_SHOWN:]
    head = f"**{escape_markdown(prompt)}**" if prompt.strip() else ""
    body = escape_markdown(text)
    while len(head) + len(body) + len(note) > limit:
        # Escaping at most doubles a text, so this converges in a few rounds.
        overflow = len(head) + len(body) + len(note) + len(ELLIPSIS) - limit
        text = text[: max(0, len(text) - max(1, overflow // 2))]
        body = escape_markdown(text) + ELLIPSIS
    return head + body + note


async def tell_privately(
    interaction: discord.Interaction[Any], content: str, *, keep_answer: bool = False
) -> None:
    """A failure after the public defer, for the user alone (busy, timed out, settings
    unavailable): a deferred answer keeps the defer's visibility, so the "thinking" message
    goes (unless `keep_answer`: it shows an answer already) and the sentence comes as an
    ephemeral followup."""
    if not keep_answer:
        try:
            await interaction.delete_original_response()
        except discord.HTTPException as exc:
            log.warning("could not remove the deferred answer before a failure: %s", exc)
    await interaction.followup.send(content, ephemeral=True)


def sendable(view: discord.ui.View | None) -> Any:
    """A view for `send`, which takes a missing one but refuses None."""
    return view if view is not None else discord.utils.MISSING
