"""The history export against the test Discord server, through discord.py's HTTP client: what
the files hold, what they leave out, incremental runs, the intent, rate limits, threads."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from discord.http import HTTPClient

from bot.plugins.consent import export
from bot.plugins.consent.export import (
    NO_MESSAGE_CONTENT,
    ExportError,
    ExportRequest,
    ExportResult,
    export_history,
)
from bot.testing import FakeDiscord, Intent
from tests.bot.plugins.consent.history import (
    CHATTY,
    CHATTY_NICK,
    QUIET,
    QUIET_NICK,
    SeededGuild,
    seed_guild,
)

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def http(fake_discord: FakeDiscord) -> AsyncIterator[HTTPClient]:
    client = HTTPClient(asyncio.get_running_loop())
    await client.static_login(fake_discord.token)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def seeded(fake_discord: FakeDiscord) -> SeededGuild:
    return seed_guild(fake_discord)


def request_for(
    server: FakeDiscord, seeded: SeededGuild, out: Path, *channels: int
) -> ExportRequest:
    return ExportRequest(
        guild_id=server.world.guild.id,
        out_dir=out,
        allowed=frozenset({seeded.allowed.id, seeded.forum.id}),
        opted_out=frozenset({QUIET.id}),
        channels=channels,
    )


async def run_export(http: HTTPClient, request: ExportRequest) -> tuple[ExportResult, list[str]]:
    lines: list[str] = []
    result = await export_history(http, request, lines.append)
    return result, lines


def files_in(out: Path) -> dict[str, Any]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(out.glob("*.json"))}


def exported_ids(out: Path) -> list[int]:
    return [int(m["id"]) for data in files_in(out).values() for m in data["messages"]]


def assert_no_trace_of_the_quiet_member(out: Path) -> None:
    """Their id, names and the title of the thread they started: in no byte, no file name."""
    everything = b"".join(p.read_bytes() for p in sorted(out.iterdir())).lower()
    names = " ".join(p.name for p in out.iterdir()).lower()
    for trace in (str(QUIET.id), QUIET.username, str(QUIET.global_name), QUIET_NICK, "zed's"):
        assert trace.lower().encode() not in everything, trace
        assert trace.lower() not in names, trace


async def test_an_export_holds_every_allowed_message_but_the_opted_out_members(
    fake_discord: FakeDiscord, seeded: SeededGuild, http: HTTPClient, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    result, lines = await run_export(http, request_for(fake_discord, seeded, out))

    expected = [m.id for m in seeded.exportable]
    assert sorted(exported_ids(out)) == sorted(expected)
    assert len(set(exported_ids(out))) == len(expected)
    assert_no_trace_of_the_quiet_member(out)
    # One line per channel and thread; the secret channel is not among them.
    assert len(lines) == 5 and all("#random" not in line for line in lines)
    assert lines[0].startswith("#general: 2")  # 320 less the quiet member's
    assert result.pages == 4 + 4  # 320 messages: 4 pages; a thread: 1 page each
    assert not result.problems

    files = files_in(out)
    general = files[f"Charbot Test Guild - general [{seeded.allowed.id}] [part 1].json"]
    assert general["channel"] == {
        "id": str(seeded.allowed.id),
        "type": "GuildTextChat",
        "categoryId": None,
        "category": None,
        "name": "general",
        "topic": "chat",
    }
    assert general["guild"]["name"] == "Charbot Test Guild"
    assert general["messageCount"] == len(general["messages"])
    assert set(general) == {
        "guild", "channel", "dateRange", "exportedAt", "messages", "messageCount"
    }  # fmt: skip
    messages = general["messages"]
    assert [m["id"] for m in messages] == sorted((m["id"] for m in messages), key=int)
    first = messages[0]
    assert {"id", "type", "timestamp", "timestampEdited", "content", "author", "mentions",
            "attachments", "embeds", "stickers", "reactions", "isPinned"} <= set(first)  # fmt: skip
    assert first["timestamp"] == "2024-03-01T12:00:00.000+00:00"
    by_type = {m["type"] for m in messages}
    assert {"Default", "Reply", "GuildMemberJoin"} <= by_type
    assert any(m["author"]["isBot"] for m in messages)
    assert any(m["attachments"] and not m["content"] for m in messages)
    joined = next(m for m in messages if m["type"] == "GuildMemberJoin")
    assert joined["content"] == "Joined the server."
    # Server nicknames (the bot has the Server Members intent), and mentions rendered by name.
    chatty = next(m for m in messages if m["author"]["id"] == str(CHATTY.id))
    assert chatty["author"]["nickname"] == CHATTY_NICK and chatty["author"]["name"] == "ana_b"
    assert any(f"@{CHATTY_NICK}" in m["content"] for m in messages)
    assert any("@user" in m["content"] for m in messages)  # the quiet member, mentioned
    replies = [m for m in messages if m["type"] == "Reply"]
    assert replies and all("reference" in m for m in replies if m["mentions"])

    threads = {d["channel"]["name"]: d for d in files.values() if d["channel"]["categoryId"]}
    unnamed = f"thread {seeded.threads[3].id}"  # the quiet member's post keeps no title
    assert set(threads) == {"weekend plans", "old news", "bigger fonts", unnamed}
    post = threads["bigger fonts"]["channel"]
    assert post["type"] == "GuildPublicThread"
    assert (post["categoryId"], post["category"]) == (str(seeded.forum.id), "ideas")
    assert threads["old news"]["channel"]["category"] == "general"


async def test_running_again_fetches_only_what_is_newer(
    fake_discord: FakeDiscord, seeded: SeededGuild, http: HTTPClient, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    request = request_for(fake_discord, seeded, out, seeded.allowed.id)
    first, _ = await run_export(http, request)
    before = files_in(out)

    again, lines = await run_export(http, request)
    assert again.messages == 0 and not again.files
    assert lines[0] == "#general: nothing new since the last export"
    assert files_in(out) == before

    w = fake_discord.world
    new = [
        await fake_discord.send_message(seeded.allowed.id, w.member, f"new {n} ✓") for n in range(3)
    ]
    await fake_discord.send_message(seeded.allowed.id, QUIET, "quiet again")
    general = f"[{seeded.allowed.id}] [part 1].json"
    (held,) = [d for name, d in files_in(out).items() if name.endswith(general)]
    newest_held = max(int(m["id"]) for m in held["messages"])
    asked_before = len(fake_discord.requests)
    third, _ = await run_export(http, request)
    assert third.messages == 3 and len(third.files) == 1
    assert third.files[0].name.endswith("[part 2].json")
    data = json.loads(third.files[0].read_text(encoding="utf-8"))
    assert [int(m["id"]) for m in data["messages"]] == new
    assert data["dateRange"]["after"] is not None
    ids = exported_ids(out)
    assert len(ids) == len(set(ids)) == first.messages + 3
    # One page, asked after the newest message the directory held.
    path = f"/channels/{seeded.allowed.id}/messages"
    pages = [r for r in fake_discord.requests[asked_before:] if r.path == path]
    assert [r.query["after"] for r in pages] == [str(newest_held)]


async def test_a_long_history_is_written_in_parts_and_a_429_is_waited_out(
    fake_discord: FakeDiscord,
    seeded: SeededGuild,
    http: HTTPClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(export, "PART_SIZE", 100)
    fault = fake_discord.fail_next("GET", f"/channels/{seeded.allowed.id}/messages", skip=2,
                                   retry_after=0.05)  # fmt: skip
    out = tmp_path / "export"
    result, _ = await run_export(http, request_for(fake_discord, seeded, out, seeded.allowed.id))
    assert fault.hits == 1 and not result.problems
    general = result.channels[0]
    assert general.label == "#general" and len(general.files) == 3  # 2xx: 100, 100, the rest
    parts = [json.loads(p.read_text(encoding="utf-8")) for p in general.files]
    assert [p["messageCount"] for p in parts][:2] == [100, 100]
    assert sorted(int(m["id"]) for p in parts for m in p["messages"]) == sorted(
        m.id for m in seeded.in_channels({seeded.allowed.id}) if m.author_id != QUIET.id
    )


async def test_without_the_message_content_intent_nothing_is_written(
    fake_discord: FakeDiscord, seeded: SeededGuild, http: HTTPClient, tmp_path: Path
) -> None:
    fake_discord.privileged_intents = Intent.GUILD_MEMBERS
    out = tmp_path / "export"
    with pytest.raises(ExportError) as caught:
        await run_export(http, request_for(fake_discord, seeded, out))
    assert str(caught.value) == NO_MESSAGE_CONTENT
    assert not out.exists()
    assert not any(r.path.endswith("/messages") for r in fake_discord.requests)


async def test_a_channel_not_allowed_exports_nothing(
    fake_discord: FakeDiscord, seeded: SeededGuild, http: HTTPClient, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    request = request_for(fake_discord, seeded, out, seeded.allowed.id, seeded.secret.id)
    with pytest.raises(ExportError, match=f"Channel {seeded.secret.id} is not allowed"):
        await run_export(http, request)
    assert not out.exists()
    nothing_allowed = ExportRequest(fake_discord.world.guild.id, out, frozenset(), frozenset())
    with pytest.raises(ExportError, match=r"No channel of guild \d+ is allowed"):
        await run_export(http, nothing_allowed)


async def test_without_the_members_intent_names_are_global_names(
    fake_discord: FakeDiscord, seeded: SeededGuild, http: HTTPClient, tmp_path: Path
) -> None:
    fake_discord.privileged_intents = Intent.MESSAGE_CONTENT
    out = tmp_path / "export"
    await run_export(http, request_for(fake_discord, seeded, out, seeded.allowed.id))
    data = files_in(out)[f"Charbot Test Guild - general [{seeded.allowed.id}] [part 1].json"]
    chatty = next(m for m in data["messages"] if m["author"]["id"] == str(CHATTY.id))
    assert chatty["author"]["nickname"] == CHATTY.global_name and chatty["author"]["roles"] == []
    assert not any(r.path.endswith("/members") for r in fake_discord.requests)
    assert_no_trace_of_the_quiet_member(out)


async def test_files_made_before_an_opt_out_are_pointed_out(
    fake_discord: FakeDiscord, seeded: SeededGuild, http: HTTPClient, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    request = request_for(fake_discord, seeded, out, seeded.allowed.id)
    before_opt_out = ExportRequest(request.guild_id, out, request.allowed, frozenset(),
                                   request.channels)  # fmt: skip
    await run_export(http, before_opt_out)
    _, lines = await run_export(http, request)
    assert lines[0].startswith(f"warning: {out} holds messages of 1 member(s) who opted out")


async def test_a_broken_file_in_the_directory_stops_the_export(
    fake_discord: FakeDiscord, seeded: SeededGuild, http: HTTPClient, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    out.mkdir()
    (out / "notes.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ExportError, match=r"notes\.json is not a DiscordChatExporter export"):
        await run_export(http, request_for(fake_discord, seeded, out))
