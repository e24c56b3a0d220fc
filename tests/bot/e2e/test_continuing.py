"""Continuing texts as users meet it: "Continue with charbot" on the bot's own completion and on
others' messages, a /complete that fails mid-stream, and a Continue pressed after the story went
on (issue 25, items 5 to 7)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from bot.api import ELLIPSIS
from bot.discord.app import CharBot
from bot.errors import WorkerError
from bot.generation.backend import StreamChunk
from bot.generation.params import GenerationParams
from bot.plugins.continuation import MENU_NAME
from bot.plugins.live_reply import STREAM_AFTER_SECONDS
from bot.testing import FakeDiscord, RecordedMessage
from tests.bot.e2e.conftest import ParamSpy, RunBot
from tests.bot.e2e.test_buttons import complete, labels, replies_to, wait_reply


def jump_url(server: FakeDiscord, message: RecordedMessage) -> str:
    return f"https://discord.com/channels/{server.world.guild.id}/{message.channel_id}/{message.id}"


async def test_the_menu_on_its_own_completion_continues_what_continue_would(
    fake_discord: FakeDiscord, run_bot: RunBot
) -> None:
    """Not the message as shown (bold prompt, escapes, the unknown-characters note, mentions as
    @deleted-user), but the prompt and text the Continue button continues."""
    w = fake_discord.world
    async with run_bot() as bot:
        spy = ParamSpy()
        spy.attach(bot)
        # Markdown, a mention and a character the tiny model does not know, all in the prompt.
        first = await complete(fake_discord, f"To *be* <@{w.moderator.id}> or \u2603 not")
        assert "**" in first.content
        ia = await fake_discord.invoke_message_command(MENU_NAME, first.id, user=w.moderator)
        await ia.wait_response(timeout=20)
        await fake_discord.press_button(first.id, "Continue", user=w.owner)
        await wait_reply(fake_discord, first)
        (_, asked, _), (_, by_menu, _), (_, by_button, _) = spy.calls
        assert by_menu == by_button, (by_menu, by_button)
        assert by_menu.startswith(asked) and len(by_menu) > len(asked)

        # Its buttons went with the continuation: no record to read, so a sentence, no guess.
        await fake_discord.wait_until(lambda: labels(first) == [], 20, "the buttons to go")
        ia = await fake_discord.invoke_message_command(MENU_NAME, first.id, user=w.moderator)
        told = await ia.wait_response(timeout=20)
        assert told.ephemeral and (told.content or "").startswith("I continue my own messages")
        assert len(spy.calls) == 3


async def test_the_menu_on_a_members_message_reads_it_as_the_exporter_trains(
    fake_discord: FakeDiscord, run_bot: RunBot
) -> None:
    """Mentions as the names people see, custom emoji as :name: (models/discord_text.py)."""
    w = fake_discord.world
    mods = next(r for r in w.guild.roles if r.name == "Moderators")
    async with run_bot() as bot:
        spy = ParamSpy()
        spy.attach(bot)
        said = await fake_discord.send_message(
            w.general.id,
            w.owner,
            f"<@{w.moderator.id}> <@&{mods.id}> see <:pepe:1234567> in <#{w.random.id}>, **now**",
        )
        ia = await fake_discord.invoke_message_command(MENU_NAME, said, user=w.member)
        await ia.wait_response(timeout=20)
        ((_, prompt, _),) = spy.calls
        assert prompt == "@Mod @Moderators see :pepe: in #random, **now**", prompt


class FailsMidStream:
    """The model's stream fails after its text began to show: its first text, then (once that
    is posted, a moment later) a worker error."""

    def __init__(self, bot: CharBot, server: FakeDiscord) -> None:
        self.backend = bot.models.get("tiny")
        self.original = self.backend.stream

        async def failing(
            prompt: str, params: GenerationParams | None = None, **kwargs: Any
        ) -> AsyncIterator[StreamChunk]:
            stream = self.original(prompt, params, **kwargs)
            async with contextlib.aclosing(stream):  # type: ignore[type-var]
                async for chunk in stream:
                    if chunk.text:  # as text so far, even when the model wrote it all at once
                        yield StreamChunk(chunk.text)
                        break
            # The answer is posted when text comes after this long (asyncio may wake a timer a
            # hair early, hence the margin): an empty chunk brings it.
            await asyncio.sleep(STREAM_AFTER_SECONDS + 0.1)
            yield StreamChunk("")
            await server.wait_until(
                lambda: any(m.content.endswith(ELLIPSIS) for m in server.sent_messages),
                10,
                "the answer so far",
            )
            raise WorkerError("A worker failed while generating; try again.")

        self.backend.stream = failing  # type: ignore[method-assign]

    def heal(self) -> None:
        self.backend.stream = self.original  # type: ignore[method-assign]


async def test_an_answer_cut_mid_stream_says_so_and_offers_regenerate(
    fake_discord: FakeDiscord, run_bot: RunBot
) -> None:
    w = fake_discord.world
    async with run_bot() as bot:
        fault = FailsMidStream(bot, fake_discord)
        ia = await fake_discord.invoke_command("complete", {"prompt": "To be"}, user=w.member)
        told = await fake_discord.wait_until(
            lambda: next((r for r in ia.replies if r.ephemeral), None), 30, "the private note"
        )
        assert "worker failed" in (told.content or "")
        (public,) = [
            m
            for m in fake_discord.sent_messages
            if m.interaction_id == ia.id and not m.deleted and not m.ephemeral
        ]
        # The public message says it was cut, not "…" forever.
        await fake_discord.wait_until(
            lambda: "interrupted" in public.content, 20, "the interrupted note"
        )
        assert public.content.startswith("**To be**") and not public.content.endswith("…")
        assert labels(public) == [("Regenerate", False)]

        fault.heal()
        await fake_discord.press_button(public.id, "Regenerate", user=w.member)
        whole = [("Continue", False), ("Regenerate", False)]
        await fake_discord.wait_until(
            lambda: "interrupted" not in public.content and labels(public) == whole,
            20,
            "the regenerated answer",
        )
        assert public.content.startswith("**To be**")


async def test_a_late_continue_is_told_where_the_story_goes_on(
    fake_discord: FakeDiscord, run_bot: RunBot
) -> None:
    w = fake_discord.world
    async with run_bot():
        first = await complete(fake_discord, "To be")
        # The owner's client still shows the buttons when the moderator's press is answered.
        late = fake_discord.prepare_press(first.id, "Continue", user=w.owner)
        await fake_discord.press_button(first.id, "Continue", user=w.moderator)
        reply = await wait_reply(fake_discord, first)
        await fake_discord.wait_until(lambda: labels(first) == [], 20, "the buttons to go")

        await fake_discord.dispatch_interaction(late)
        told = await fake_discord.wait_until(
            lambda: next((r for r in late.replies if r.ephemeral), None), 20, "the sentence"
        )
        assert told.content == f"The story goes on in the reply: {jump_url(fake_discord, reply)}"
        assert len(replies_to(fake_discord, first)) == 1
