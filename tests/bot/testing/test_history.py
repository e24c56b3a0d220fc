"""The test server's history routes behave as Discord's do, read by the real discord.py client:
paging windows, application flags, content blanked without the intent, threads, a 429 on a page.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator

import discord
import pytest
import pytest_asyncio

from bot.testing import (
    HISTORY_START,
    AppFlag,
    ChannelType,
    FakeDiscord,
    Intent,
    seed_history,
)

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def rest(fake_discord: FakeDiscord) -> AsyncIterator[discord.Client]:
    """A discord.py client logged in over REST only (no gateway), as a command-line tool is."""
    client = discord.Client(intents=discord.Intents.none())
    await client.login(fake_discord.token)
    try:
        yield client
    finally:
        await client.close()


async def test_after_pages_forward_in_windows_of_the_oldest_messages(
    fake_discord: FakeDiscord, rest: discord.Client
) -> None:
    w = fake_discord.world
    seeded = seed_history(fake_discord, w.general.id, 250, authors=[w.owner, w.member])
    ids = [m.id for m in seeded]

    page = await rest.http.logs_from(w.general.id, 100, after=ids[0])
    # The 100 messages right after the id, newest first, as Discord sends every page.
    assert [int(m["id"]) for m in page] == ids[1:101][::-1]

    channel = await rest.fetch_channel(w.general.id)
    assert isinstance(channel, discord.TextChannel)
    forward = [m.id async for m in channel.history(limit=None, after=discord.Object(0))]
    assert forward == ids
    backward = [m.id async for m in channel.history(limit=None)]
    assert backward == ids[::-1]
    before = await rest.http.logs_from(w.general.id, 10, before=ids[50])
    assert [int(m["id"]) for m in before] == ids[40:50][::-1]


async def test_a_page_holds_at_most_100_messages(
    fake_discord: FakeDiscord, rest: discord.Client
) -> None:
    with pytest.raises(discord.HTTPException) as caught:
        await rest.http.logs_from(fake_discord.world.general.id, 101)
    assert caught.value.status == 400 and caught.value.code == 50035


async def test_seeded_history_is_in_the_past_and_of_every_kind(fake_discord: FakeDiscord) -> None:
    w = fake_discord.world
    seeded = seed_history(
        fake_discord,
        w.general.id,
        200,
        authors=[w.owner, w.member],
        bots=[w.other_bot],
        mentioned=[w.moderator],
    )
    payloads = [m.payload for m in seeded]
    assert [m.id for m in seeded] == sorted(m.id for m in seeded)
    first = datetime.datetime.fromisoformat(payloads[0]["timestamp"])
    assert first == HISTORY_START
    assert discord.utils.snowflake_time(seeded[0].id) == HISTORY_START
    assert any(p["type"] == 7 and p["content"] == "" for p in payloads)  # a member joined
    assert any(p["type"] == 19 and p["referenced_message"] for p in payloads)  # a reply
    assert any(p["author"]["bot"] for p in payloads)
    assert any(p["attachments"] and not p["content"] for p in payloads)
    assert any(w.moderator.mention in p["content"] and p["mentions"] for p in payloads)
    assert any(not p["content"].isascii() for p in payloads)


async def test_application_flags_follow_the_intents_enabled_in_the_portal(
    fake_discord: FakeDiscord, rest: discord.Client
) -> None:
    info = await rest.http.request(discord.http.Route("GET", "/applications/@me"))
    assert info["flags"] & AppFlag.GATEWAY_MESSAGE_CONTENT_LIMITED
    assert info["flags"] & AppFlag.GATEWAY_GUILD_MEMBERS_LIMITED
    fake_discord.privileged_intents = Intent.GUILD_MEMBERS
    app = await rest.application_info()
    assert not app.flags.gateway_message_content_limited
    assert not app.flags.gateway_message_content
    assert app.flags.gateway_guild_members_limited


async def test_without_the_intent_rest_blanks_other_peoples_content(
    fake_discord: FakeDiscord, rest: discord.Client
) -> None:
    w = fake_discord.world
    at = HISTORY_START
    theirs = fake_discord.seed_message(w.general.id, w.member, "hi", at=at, attachments=["a.png"])
    to_bot = fake_discord.seed_message(
        w.general.id, w.member, f"{w.bot.mention} hi", at=at, mentions=[w.bot]
    )
    own = fake_discord.seed_message(w.general.id, w.bot, "I am the bot", at=at)
    reply = fake_discord.seed_message(
        w.general.id, w.bot, "answer", at=at + datetime.timedelta(seconds=1), reply_to=theirs.id
    )
    fake_discord.privileged_intents = Intent.GUILD_MEMBERS  # Message Content off

    page = {int(m["id"]): m for m in await rest.http.logs_from(w.general.id, 100)}
    assert page[theirs.id]["content"] == "" and page[theirs.id]["attachments"] == []
    assert page[to_bot.id]["content"] == f"{w.bot.mention} hi"
    assert page[own.id]["content"] == "I am the bot"
    assert page[reply.id]["content"] == "answer"
    quoted = page[reply.id]["referenced_message"]
    assert quoted is not None and quoted["content"] == ""
    single = await rest.http.get_message(w.general.id, theirs.id)
    assert single["content"] == ""

    fake_discord.privileged_intents = Intent.PRIVILEGED
    page = {int(m["id"]): m for m in await rest.http.logs_from(w.general.id, 100)}
    assert page[theirs.id]["content"] == "hi" and page[theirs.id]["attachments"]


async def test_members_are_listed_only_with_the_server_members_intent(
    fake_discord: FakeDiscord, rest: discord.Client
) -> None:
    guild = fake_discord.world.guild
    members = await rest.http.get_members(guild.id, 1000, None)
    assert {int(m["user"]["id"]) for m in members} == {m.user.id for m in guild.members}
    page = await rest.http.get_members(guild.id, 2, None)
    rest_of_them = await rest.http.get_members(guild.id, 1000, int(page[-1]["user"]["id"]))
    assert len(page) + len(rest_of_them) == len(guild.members)
    fake_discord.privileged_intents = Intent.MESSAGE_CONTENT
    with pytest.raises(discord.Forbidden):
        await rest.http.get_members(guild.id, 1000, None)


async def test_threads_active_archived_and_forum_posts(
    fake_discord: FakeDiscord, rest: discord.Client
) -> None:
    w = fake_discord.world
    guild = w.guild
    forum = guild.add_channel(1_000_000_000_000_000_450, "ideas", type_=ChannelType.FORUM)
    news = guild.add_channel(1_000_000_000_000_000_451, "news", type_=ChannelType.ANNOUNCEMENT)
    live = guild.add_thread(1_000_000_000_000_000_460, w.general, "live", owner=w.member)
    post = guild.add_thread(1_000_000_000_000_000_461, forum, "a post", owner=w.owner)
    old = [
        guild.add_thread(
            1_000_000_000_000_000_470 + i,
            w.general,
            f"old {i}",
            owner=w.member,
            archived=True,
            archive_timestamp=(HISTORY_START + datetime.timedelta(days=i)).isoformat(),
        )
        for i in range(5)
    ]
    news_thread = guild.add_thread(
        1_000_000_000_000_000_480, news, "release", owner=w.owner, archived=True
    )
    fake_discord.seed_message(live.id, w.member, "in a thread", at=HISTORY_START)

    active = await rest.http.get_active_threads(guild.id)
    assert {int(t["id"]) for t in active["threads"]} == {live.id, post.id}
    assert {int(t["parent_id"]) for t in active["threads"]} == {w.general.id, forum.id}
    assert all(t["type"] == ChannelType.PUBLIC_THREAD for t in active["threads"])

    first = await rest.http.get_public_archived_threads(w.general.id, limit=2)
    assert [int(t["id"]) for t in first["threads"]] == [old[4].id, old[3].id]
    assert first["has_more"]
    before = first["threads"][-1]["thread_metadata"]["archive_timestamp"]
    second = await rest.http.get_public_archived_threads(w.general.id, before=before, limit=100)
    assert [int(t["id"]) for t in second["threads"]] == [old[2].id, old[1].id, old[0].id]
    assert not second["has_more"]
    news_threads = await rest.http.get_public_archived_threads(news.id, limit=50)
    assert [t["type"] for t in news_threads["threads"]] == [ChannelType.ANNOUNCEMENT_THREAD]
    assert int(news_threads["threads"][0]["id"]) == news_thread.id

    thread = await rest.fetch_channel(live.id)
    assert isinstance(thread, discord.Thread) and thread.parent_id == w.general.id
    assert [m.content async for m in thread.history()] == ["in a thread"]
    with pytest.raises(discord.HTTPException) as caught:
        await rest.http.logs_from(forum.id, 50)
    assert caught.value.code == 50024  # a forum holds posts, not messages


async def test_a_429_on_one_page_is_waited_out(
    fake_discord: FakeDiscord, rest: discord.Client
) -> None:
    w = fake_discord.world
    seeded = seed_history(fake_discord, w.general.id, 250, authors=[w.member])
    fault = fake_discord.fail_next("GET", "/channels/*/messages", retry_after=0.05, skip=1)
    channel = await rest.fetch_channel(w.general.id)
    assert isinstance(channel, discord.TextChannel)
    got = [m.id async for m in channel.history(limit=None, after=discord.Object(0))]
    assert got == [m.id for m in seeded]
    assert fault.hits == 1
    pages = [r.status for r in fake_discord.requests if r.path.endswith("/messages")]
    assert pages == [200, 429, 200, 200]
