"""Continue and Regenerate buttons, the "Continue with charbot" menu, and /settings, end to end."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from discord.utils import escape_markdown

from bot.core.records import SECONDS_PER_DAY
from bot.discord.app import CharBot
from bot.generation.backend import Completion, StreamChunk
from bot.generation.params import WORD_END_SLACK, GenerationParams
from bot.plugins.continuation import BUSY, MENU_NAME, STALE, Continuation
from bot.testing import FakeDiscord, RecordedMessage, buttons_of
from tests.bot.e2e.conftest import RunBot

LENGTH = 40  # the test config's [generation] length
NO_PINGS: dict[str, list[str]] = {"parse": []}


async def complete(server: FakeDiscord, prompt: str, **options: Any) -> RecordedMessage:
    """/complete by the member in #general; the message it posted."""
    w = server.world
    ia = await server.invoke_command("complete", {"prompt": prompt, **options}, user=w.member)
    reply = await ia.wait_response(timeout=20)
    return server.messages[reply.message_id]


def labels(message: RecordedMessage) -> list[tuple[str, bool]]:
    return [(b["label"], bool(b.get("disabled"))) for b in buttons_of(message)]


def replies_to(server: FakeDiscord, message: RecordedMessage) -> list[RecordedMessage]:
    return [
        m
        for m in server.sent_messages
        if str((m.message_reference or {}).get("message_id")) == str(message.id)
    ]


async def wait_reply(server: FakeDiscord, message: RecordedMessage) -> RecordedMessage:
    return await server.wait_until(
        lambda: next(iter(replies_to(server, message)), None), 20, "the continuation"
    )


async def set_greedy(bot: CharBot, server: FakeDiscord) -> None:
    await bot.settings.set(server.world.general.id, "temperature", 0.0)


async def test_continue_goes_on_where_the_text_stopped(
    fake_discord: FakeDiscord, run_bot: RunBot
) -> None:
    w = fake_discord.world
    async with run_bot() as bot:
        await set_greedy(bot, fake_discord)
        first = await complete(fake_discord, "To be")
        assert labels(first) == [("Continue", False), ("Regenerate", False)]
        assert all(len(b["custom_id"]) <= 100 for b in buttons_of(first))

        # Anyone may continue; the reply goes on from the end of the text, itself with buttons.
        press = await fake_discord.press_button(first.id, "Continue", user=w.moderator)
        await press.wait_replies(2)
        second = await wait_reply(fake_discord, first)
        third_press = await fake_discord.press_button(second.id, "Continue", user=w.owner)
        third = await wait_reply(fake_discord, second)
        # Each answer ends cleanly (a whole word), so lengths vary a little; greedy, the three
        # are one stream, as one longer completion of the prompt writes it.
        stream = GenerationParams(max_length=3 * (LENGTH + WORD_END_SLACK), temperature=0.0)
        whole = await bot.models.get("tiny").complete("To be", stream)
        pieces = [first.content.removeprefix("**To be**"), second.content, third.content]
        assert first.content.startswith("**To be**") and all(pieces)
        assert escape_markdown(whole.text).startswith("".join(pieces))
        assert second.allowed_mentions == NO_PINGS and not second.pings
        # The story goes on from the reply: the continued messages' buttons are gone.
        await fake_discord.wait_until(
            lambda: labels(first) == labels(second) == [], 20, "the continued buttons to go"
        )
        assert labels(third) == [("Continue", False), ("Regenerate", False)]
        assert [r.kind for r in press.replies] == ["update", "edit"]
        assert not third_press.error

        # A reply to a mention carries the buttons too.
        said = await fake_discord.send_message(
            w.general.id, w.member, f"{w.bot.mention} To be", mentions=[w.bot]
        )
        answer = await fake_discord.wait_for_message(
            w.general.id, lambda m: str((m.message_reference or {}).get("message_id")) == str(said)
        )
        assert labels(answer) == [("Continue", False), ("Regenerate", False)]
    fake_discord.assert_no_unknown_requests()


async def test_regenerate_by_the_author_only(fake_discord: FakeDiscord, run_bot: RunBot) -> None:
    w = fake_discord.world
    async with run_bot() as bot:
        message = await complete(fake_discord, "To be")  # at the default temperature, 0.8
        before, edits = message.content, len(message.edits)

        refused = await fake_discord.press_button(message.id, "Regenerate", user=w.moderator)
        reply = await refused.wait_response()
        assert reply.ephemeral and "Only the person who asked" in (reply.content or "")
        assert message.content == before and len(message.edits) == edits

        await fake_discord.press_button(message.id, "Regenerate", user=w.member)
        await fake_discord.wait_until(
            lambda: message.content != before and labels(message)[0] == ("Continue", False),
            20,
            "the regenerated text",
        )
        assert message.content.startswith("**To be**")
        assert message.allowed_mentions == NO_PINGS
        # Manage Messages may regenerate someone else's completion too.
        edited = message.content
        await fake_discord.press_button(message.id, "Regenerate", user=w.owner)
        await fake_discord.wait_until(lambda: message.content != edited, 20, "the owner's reroll")

        # When the bot cannot generate (here: it is shutting down), the presser is told, and
        # the buttons come back.
        await fake_discord.wait_until(lambda: labels(message)[0] == ("Continue", False))
        rerolled = message.content
        bot.completions.stop_accepting()
        busy = await fake_discord.press_button(message.id, "Regenerate", user=w.member)
        update, told, restored = await busy.wait_replies(3)
        assert update.kind == "update" and labels(message)[0] == ("Continue", False)
        assert told.ephemeral and "shutting down" in (told.content or "")
        assert restored.kind == "edit" and message.content == rerolled


async def test_buttons_survive_a_restart_expire_and_answer_a_double_press_once(
    fake_discord: FakeDiscord, run_bot: RunBot
) -> None:
    w = fake_discord.world
    async with run_bot():
        old = await complete(fake_discord, "To be")
        stale = await complete(fake_discord, "Or not")
    async with run_bot() as bot:
        # A press after the restart works: the record is in the store.
        await fake_discord.press_button(old.id, "Continue", user=w.moderator)
        await wait_reply(fake_discord, old)

        # A double click: both presses carry the buttons as the client showed them.
        message = await complete(fake_discord, "Whether")
        clicks = [fake_discord.prepare_press(message.id, "Continue") for _ in range(2)]
        for click in clicks:
            await fake_discord.dispatch_interaction(click)
        await wait_reply(fake_discord, message)
        refusal = await fake_discord.wait_until(
            lambda: next((r for c in clicks for r in c.replies if r.ephemeral), None),
            20,
            "the second click's refusal",
        )
        assert refusal.content in (BUSY, STALE)
        await fake_discord.wait_until(lambda: labels(message) == [], 20, "the buttons to go")
        assert len(replies_to(fake_discord, message)) == 1

        # Eight days later the record has expired: a sentence, and the dead buttons go.
        # (Not isinstance: discord.py loads an extension as a module object of its own.)
        cog: Any = bot.get_cog(Continuation.__cog_name__)
        cog.records.clock = lambda: time.time() + 8 * SECONDS_PER_DAY
        expired = await fake_discord.press_button(stale.id, "Regenerate", user=w.member)
        update, sentence = await expired.wait_replies(2)
        assert update.kind == "update" and labels(stale) == []
        assert sentence.ephemeral and "no longer work" in (sentence.content or "")
        assert await cog.records.purge() >= 1
    fake_discord.assert_no_unknown_requests()


async def test_continue_with_charbot_pings_no_one(
    fake_discord: FakeDiscord, run_bot: RunBot
) -> None:
    w = fake_discord.world
    async with run_bot() as bot:
        said = await fake_discord.send_message(
            w.general.id, w.owner, f"Hear ye @everyone and <@{w.moderator.id}>: to be"
        )
        ia = await fake_discord.invoke_message_command(MENU_NAME, said, user=w.member)
        reply = await ia.wait_response(timeout=20)
        answer = fake_discord.messages[reply.message_id]
        assert answer.content.startswith(f"-# Continuing <@{w.owner.id}>'s message")
        assert "@everyone" in answer.content and "@Mod" in answer.content
        assert answer.allowed_mentions == NO_PINGS
        assert not answer.pings and not answer.pings_everyone
        assert labels(answer) == [("Continue", False), ("Regenerate", False)]

        # A failure after the public "thinking..." reaches the user alone.
        bot.completions.stop_accepting()
        failed = await fake_discord.invoke_message_command(MENU_NAME, said, user=w.member)
        told = await fake_discord.wait_until(
            lambda: next((r for r in failed.replies if r.ephemeral), None), 20, "the sentence"
        )
        assert "shutting down" in (told.content or "")
        assert failed.original_message_id is not None
        assert fake_discord.messages[failed.original_message_id].deleted
    synced = fake_discord.synced_commands[w.guild.id]
    assert (MENU_NAME, 3) in {(c["name"], c["type"]) for c in synced}


async def test_settings_set_show_reset(fake_discord: FakeDiscord, run_bot: RunBot) -> None:
    w = fake_discord.world
    async with run_bot() as bot:

        async def say(command: str, options: dict[str, object], user: Any = w.moderator) -> Any:
            ia = await fake_discord.invoke_command(command, options, user=user)
            return await ia.wait_response()

        assert (await say("settings set", {"key": "length", "value": 50})).content == (
            "length set to 50 for this channel."
        )
        asked: list[tuple[GenerationParams, Completion]] = []
        backend = bot.models.get("tiny")
        original = backend.stream  # /complete streams its answer

        async def spy(
            prompt: str, params: GenerationParams | None = None, **kwargs: Any
        ) -> AsyncIterator[StreamChunk]:
            assert params is not None
            async for chunk in original(prompt, params, **kwargs):
                if chunk.completion is not None:
                    asked.append((params, chunk.completion))
                yield chunk

        backend.stream = spy  # type: ignore[method-assign]
        await complete(fake_discord, "To be")
        ((params, done),) = asked
        # 50 characters, ending cleanly: the last word finished or cut back to a space.
        assert params.max_length == 50 and params.clean_end
        assert 0 < len(done.text) <= 50 + WORD_END_SLACK

        refused = await say("settings set", {"key": "top_p", "value": 0})
        assert refused.ephemeral
        assert refused.content == "top_p must be above 0 and at most 1 (1 is off); got 0.0."
        member = await say("settings set", {"key": "top_k", "value": 5}, user=w.member)
        assert member.ephemeral and "Manage Channels" in (member.content or "")

        shown = (await say("settings show", {}, user=w.member)).content or ""
        assert shown.splitlines()[1:] == [
            "model: tiny (default)",
            "temperature: 0.8 (default)",
            "length: 50 (channel)",
            "top_k: 0 (off) (default)",
            "top_p: 1 (off) (default)",
        ]
        reset = await say("settings reset", {"key": "length"})
        assert reset.content == "length reset: this channel now uses the default, 40."
        assert await bot.settings.get(w.general.id, "length") is None
