"""Moving a live bot from SQLite to PostgreSQL with `store copy`: the buttons of an answer sent
before the copy work against the new store, and the channel's settings came along."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.cli import main
from bot.stores.urls import sqlite_url
from bot.testing import FakeDiscord, RecordedMessage, buttons_of
from tests.bot.e2e.conftest import RunBot


async def test_buttons_from_before_a_copy_to_postgres_work_against_it(
    fake_discord: FakeDiscord, run_bot: RunBot, tmp_path: Path, postgres_url: str
) -> None:
    w = fake_discord.world
    async with run_bot() as bot:  # the test config's store: tmp_path / "settings.sqlite3"
        await bot.settings.set(w.general.id, "temperature", 0.0)
        ia = await fake_discord.invoke_command("complete", {"prompt": "To be"}, user=w.member)
        reply = await ia.wait_response(timeout=20)
        answer = fake_discord.messages[reply.message_id]
        assert [b["label"] for b in buttons_of(answer)] == ["Continue", "Regenerate"]

    sqlite = sqlite_url(tmp_path / "settings.sqlite3")
    copied = await asyncio.to_thread(
        main, ["store", "copy", "--from", sqlite, "--to", postgres_url]
    )
    assert copied == 0

    config = tmp_path / "charbot.toml"
    on_postgres = tmp_path / "postgres.toml"
    on_postgres.write_text(
        config.read_text().replace(
            f'path = "{tmp_path / "settings.sqlite3"}"', f'url = "{postgres_url}"'
        )
    )
    (tmp_path / "settings.sqlite3").rename(tmp_path / "retired.sqlite3")  # out of the way
    async with run_bot(on_postgres) as bot:
        assert bot.settings.shown_url.startswith("postgresql://")  # type: ignore[attr-defined]
        assert await bot.settings.get(w.general.id, "temperature") == 0.0
        press = await fake_discord.press_button(answer.id, "Continue", user=w.moderator)

        def outcome() -> RecordedMessage | str | None:
            """The continuation, or the sentence a press on a record it cannot find gets."""
            refused = next((r.content for r in press.replies if r.ephemeral), None)
            return refused or next(
                (
                    m
                    for m in fake_discord.sent_messages
                    if str((m.message_reference or {}).get("message_id")) == str(answer.id)
                ),
                None,
            )

        went_on = await fake_discord.wait_until(outcome, 20, "the continuation")
        assert isinstance(went_on, RecordedMessage), went_on
        assert went_on.content
        assert [b["label"] for b in buttons_of(went_on)] == ["Continue", "Regenerate"]
    fake_discord.assert_no_unknown_requests()
