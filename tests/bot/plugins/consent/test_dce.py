"""One Discord message payload as DiscordChatExporter writes it, an opted-out member taken out
of every field that could name them."""

from __future__ import annotations

import json
from typing import Any

from bot.plugins.consent.dce import Directory, message_object, render, with_mentioned_users

GUILD: dict[str, Any] = {"id": "1", "name": "Tea Club", "icon": None, "roles": []}
QUIET = {"id": "77", "username": "zedquist", "global_name": "Zed Quist", "discriminator": "0"}
ANNA = {"id": "78", "username": "anna", "global_name": None, "discriminator": "0", "avatar": "ab"}
ROLE = {"id": "900", "name": "Regulars", "color": 0x1ABC9C, "position": 2}
CHANNELS = {5: {"id": "5", "name": "general", "type": 0, "parent_id": None}}


def directory(members: dict[int, Any] | None = None) -> Directory:
    return Directory(GUILD, CHANNELS, {900: ROLE}, members or {}, frozenset({77}))


def payload(**fields: Any) -> dict[str, Any]:
    return {
        "id": "1200",
        "type": 0,
        "timestamp": "2024-03-01T12:00:00.123456+00:00",
        "edited_timestamp": None,
        "content": "",
        "author": ANNA,
        "mentions": [],
        "attachments": [],
        "embeds": [],
        **fields,
    }


def test_mentions_render_as_names_and_the_opted_out_as_user() -> None:
    known = with_mentioned_users(directory(), [payload(mentions=[ANNA, QUIET])])
    text = render(known, "hi <@78>, <@!77>, <@&900>, <#5>, <#6>, <@&1>, <:pog:123> <a:x:9>")
    assert text == (
        "hi @anna, @user, @Regulars, #general, #deleted-channel, @deleted-role, :pog: :x:"
    )


def test_no_field_names_an_opted_out_member() -> None:
    quoted = payload(id="1100", author=QUIET, content="secret")
    message = payload(
        type=19,
        content="<@77> said so",
        mentions=[QUIET, ANNA],
        message_reference={"message_id": "1100", "channel_id": "5", "guild_id": "1"},
        referenced_message=quoted,
        embeds=[{"title": "by <@77>", "description": "<@!77>", "fields": [
            {"name": "who", "value": "<@77>", "inline": True}]}],
        interaction_metadata={"id": "3", "name": "roll", "user": QUIET},
    )  # fmt: skip
    written = message_object(with_mentioned_users(directory(), [message]), message)
    assert written is not None
    text = json.dumps(written, ensure_ascii=False).lower()
    assert "77" not in text.replace("1200", "") and "zed" not in text
    assert written["content"] == "@user said so"
    assert [m["id"] for m in written["mentions"]] == ["78"]
    assert "reference" not in written and "interaction" not in written
    assert written["type"] == "Reply"
    assert message_object(directory(), quoted) is None


def test_the_author_as_discordchatexporter_writes_one() -> None:
    member = {"user": ANNA, "nick": "Annie", "roles": ["900"], "avatar": None}
    written = message_object(directory({78: member}), payload(content="hello", pinned=True))
    assert written is not None
    assert written["author"] == {
        "id": "78",
        "name": "anna",
        "discriminator": "0000",
        "nickname": "Annie",
        "color": "#1ABC9C",
        "isBot": False,
        "roles": [{"id": "900", "name": "Regulars", "color": "#1ABC9C", "position": 2}],
        "avatarUrl": "https://cdn.discordapp.com/avatars/78/ab.png?size=512",
    }
    assert written["timestamp"] == "2024-03-01T12:00:00.123+00:00"
    assert written["isPinned"] is True and written["content"] == "hello"
