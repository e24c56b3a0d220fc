"""Discord's message payloads as DiscordChatExporter writes them (its JSON format), with the
members who opted out taken out.

The layout is DiscordChatExporter's: one object per channel with `guild`, `channel` (for a
thread, `categoryId`/`category` name the parent channel, as DiscordChatExporter does),
`dateRange`, `exportedAt`, `messages` and `messageCount`; each message has `id`, `type`,
`timestamp`, `timestampEdited`, `callEndedTimestamp`, `isPinned`, `content`, `author`,
`attachments`, `embeds`, `stickers`, `reactions`, `mentions`, and `reference` and `interaction`
when it has them. Content is rendered as DiscordChatExporter renders it by default: a mention
is `@name`, a role `@role`, a channel `#name`, a custom emoji `:name:`.

An opted-out member leaves no trace: their messages are not written, and their name and id are
in no author, mention, reference or interaction field; a mention of them in someone else's
message reads `@user`. (What another member typed by hand is that member's.)
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

# DiscordChatExporter's names for the message and channel types it knows; it writes any other
# type as its number.
MESSAGE_KINDS = {
    0: "Default",
    1: "RecipientAdd",
    2: "RecipientRemove",
    3: "Call",
    4: "ChannelNameChange",
    5: "ChannelIconChange",
    6: "ChannelPinnedMessage",
    7: "GuildMemberJoin",
    18: "ThreadCreated",
    19: "Reply",
}
# What DiscordChatExporter writes as the content of a system notification (types 1 to 18);
# never a name, so no member is named through them.
SYSTEM_CONTENT = {
    1: "Added a recipient.",
    2: "Removed a recipient.",
    3: "Started a call.",
    5: "Changed the channel icon.",
    6: "Pinned a message.",
    7: "Joined the server.",
    18: "Started a thread.",
}
CHANNEL_KINDS = {
    0: "GuildTextChat",
    4: "GuildCategory",
    5: "GuildNews",
    10: "GuildNewsThread",
    11: "GuildPublicThread",
    12: "GuildPrivateThread",
    15: "GuildForum",
}
STICKER_FORMATS = {1: "Png", 2: "Apng", 3: "Lottie", 4: "Gif"}
CDN = "https://cdn.discordapp.com"
#: What a mention of an opted-out member (or of someone unknown) reads in the files.
ANONYMOUS = "@user"

_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")
_CHANNEL_MENTION = re.compile(r"<#(\d+)>")
_CUSTOM_EMOJI = re.compile(r"<a?:(\w+):\d+>")


@dataclass(frozen=True)
class Directory:
    """What the export knows of the guild: its payload, channels and threads by id, roles by id,
    members by user id (only with the Server Members intent), and who opted out."""

    guild: JSON
    channels: Mapping[int, JSON]
    roles: Mapping[int, JSON]
    members: Mapping[int, JSON]
    opted_out: frozenset[int]

    def display_name(self, user: JSON) -> str:
        """The server nickname (when members are known), else the global name, else the user
        name."""
        member = self.members.get(int(user["id"])) or user.get("member") or {}
        return str(member.get("nick") or user.get("global_name") or user["username"])


def guild_object(directory: Directory) -> JSON:
    guild = directory.guild
    icon = guild.get("icon")
    return {
        "id": str(guild["id"]),
        "name": guild["name"],
        "iconUrl": (
            f"{CDN}/icons/{guild['id']}/{icon}.png" if icon else f"{CDN}/embed/avatars/0.png"
        ),
    }


def channel_object(directory: Directory, channel: JSON) -> JSON:
    parent = (
        directory.channels.get(int(channel["parent_id"] or 0)) if channel.get("parent_id") else None
    )
    kind = int(channel["type"])
    return {
        "id": str(channel["id"]),
        "type": CHANNEL_KINDS.get(kind, str(kind)),
        "categoryId": str(parent["id"]) if parent else None,
        "category": parent["name"] if parent else None,
        "name": channel.get("name") or "",
        "topic": channel.get("topic"),
    }


def document(
    directory: Directory, channel: JSON, messages: list[JSON], *, after: int | None
) -> JSON:
    """One file's content: the channel's `messages` (already converted), oldest first;
    `after` is the id the export continued from (its `dateRange.after`)."""
    return {
        "guild": guild_object(directory),
        "channel": channel_object(directory, channel),
        "dateRange": {"after": _snowflake_date(after) if after else None, "before": None},
        "exportedAt": _date(datetime.datetime.now(datetime.UTC)),
        "messages": messages,
        "messageCount": len(messages),
    }


def message_object(directory: Directory, payload: JSON) -> JSON | None:
    """A message payload as DiscordChatExporter writes it; None for an opted-out member's."""
    author = payload["author"]
    if int(author["id"]) in directory.opted_out:
        return None
    kind = int(payload.get("type", 0))
    content = SYSTEM_CONTENT.get(kind) or render(directory, payload.get("content") or "")
    data: JSON = {
        "id": str(payload["id"]),
        "type": MESSAGE_KINDS.get(kind, str(kind)),
        "timestamp": _date(_parse(payload["timestamp"])),
        "timestampEdited": (
            _date(_parse(payload["edited_timestamp"])) if payload.get("edited_timestamp") else None
        ),
        "callEndedTimestamp": None,
        "isPinned": bool(payload.get("pinned")),
        "content": content,
        "author": user_object(directory, author),
        "attachments": [_attachment(a) for a in payload.get("attachments") or []],
        "embeds": [_embed(directory, e) for e in payload.get("embeds") or []],
        "stickers": [_sticker(s) for s in payload.get("sticker_items") or []],
        "reactions": [_reaction(r) for r in payload.get("reactions") or []],
        "mentions": [
            user_object(directory, user)
            for user in payload.get("mentions") or []
            if int(user["id"]) not in directory.opted_out
        ],
        "inlineEmojis": [],
    }
    call = payload.get("call") or {}
    if call.get("ended_timestamp"):
        data["callEndedTimestamp"] = _date(_parse(call["ended_timestamp"]))
    reference = payload.get("message_reference")
    quoted = payload.get("referenced_message") or {}
    quoted_author = int((quoted.get("author") or {}).get("id") or 0)
    if reference and quoted_author not in directory.opted_out:
        data["reference"] = {
            "messageId": reference.get("message_id"),
            "channelId": reference.get("channel_id"),
            "guildId": reference.get("guild_id"),
        }
    interaction = payload.get("interaction_metadata") or payload.get("interaction")
    user = (interaction or {}).get("user")
    if interaction and user and int(user["id"]) not in directory.opted_out:
        data["interaction"] = {
            "id": str(interaction["id"]),
            "name": interaction.get("name") or "",
            "user": user_object(directory, user),
        }
    return data


def user_object(directory: Directory, user: JSON) -> JSON:
    user_id = int(user["id"])
    member = directory.members.get(user_id) or {}
    roles = sorted(
        (directory.roles[int(r)] for r in member.get("roles") or [] if int(r) in directory.roles),
        key=lambda role: -int(role.get("position") or 0),
    )
    colored = next((r for r in roles if r.get("color")), None)
    avatar = member.get("avatar") or user.get("avatar")
    discriminator = str(user.get("discriminator") or "0")
    return {
        "id": str(user_id),
        "name": user["username"],
        "discriminator": f"{int(discriminator):04d}" if discriminator.isdigit() else discriminator,
        "nickname": directory.display_name(user),
        "color": _color(colored.get("color")) if colored else None,
        "isBot": bool(user.get("bot")),
        "roles": [
            {
                "id": str(r["id"]),
                "name": r["name"],
                "color": _color(r.get("color")),
                "position": int(r.get("position") or 0),
            }
            for r in roles
        ],
        "avatarUrl": (
            f"{CDN}/avatars/{user_id}/{avatar}.png?size=512"
            if avatar
            else f"{CDN}/embed/avatars/{(user_id >> 22) % 6}.png"
        ),
    }


def render(directory: Directory, text: str) -> str:
    """Mentions and custom emoji as DiscordChatExporter renders them; opted-out members (and
    users the export cannot name) as `@user`."""

    def user(match: re.Match[str]) -> str:
        user_id = int(match.group(1))
        if user_id in directory.opted_out:
            return ANONYMOUS
        known = directory.members.get(user_id)
        if known is not None and "user" in known:
            return "@" + directory.display_name(known["user"])
        return ANONYMOUS

    def role(match: re.Match[str]) -> str:
        found = directory.roles.get(int(match.group(1)))
        name = str(found["name"]) if found else "deleted-role"
        return name if name.startswith("@") else "@" + name  # @everyone

    def channel(match: re.Match[str]) -> str:
        found = directory.channels.get(int(match.group(1)))
        return "#" + (found.get("name") or "deleted-channel" if found else "deleted-channel")

    text = _USER_MENTION.sub(user, text)
    text = _ROLE_MENTION.sub(role, text)
    text = _CHANNEL_MENTION.sub(channel, text)
    return _CUSTOM_EMOJI.sub(lambda m: f":{m.group(1)}:", text)


def with_mentioned_users(directory: Directory, payloads: Iterable[JSON]) -> Directory:
    """The directory, knowing also the users the messages mention and are written by (without
    the Server Members intent, that is where names come from)."""
    members = dict(directory.members)
    for payload in payloads:
        for user in [payload["author"], *(payload.get("mentions") or [])]:
            user_id = int(user["id"])
            known = members.get(user_id)
            if known is None:
                members[user_id] = {"user": user, "roles": [], **(user.get("member") or {})}
            elif "user" not in known:
                members[user_id] = {**known, "user": user}
    return Directory(
        directory.guild, directory.channels, directory.roles, members, directory.opted_out
    )


def _attachment(attachment: JSON) -> JSON:
    return {
        "id": str(attachment["id"]),
        "url": attachment.get("url") or "",
        "fileName": attachment.get("filename") or "",
        "fileSizeBytes": int(attachment.get("size") or 0),
    }


def _sticker(sticker: JSON) -> JSON:
    kind = int(sticker.get("format_type") or 1)
    return {
        "id": str(sticker["id"]),
        "name": sticker.get("name") or "",
        "format": STICKER_FORMATS.get(kind, str(kind)),
        "sourceUrl": f"{CDN}/stickers/{sticker['id']}.png",
    }


def _reaction(reaction: JSON) -> JSON:
    emoji = reaction.get("emoji") or {}
    emoji_id = emoji.get("id")
    name = emoji.get("name") or ""
    return {
        "emoji": {
            "id": str(emoji_id or ""),
            "name": name,
            "code": name,
            "isAnimated": bool(emoji.get("animated")),
            "imageUrl": f"{CDN}/emojis/{emoji_id}.png" if emoji_id else "",
        },
        "count": int(reaction.get("count") or 0),
        # Who reacted is not fetched: it would take a request per reaction, and name people.
        "users": [],
    }


def _embed(directory: Directory, embed: JSON) -> JSON:
    def text(value: Any) -> str:
        return render(directory, value) if isinstance(value, str) else ""

    def image(value: JSON | None) -> JSON | None:
        if not value:
            return None
        return {
            "url": value.get("proxy_url") or value.get("url") or "",
            "width": value.get("width"),
            "height": value.get("height"),
        }

    data: JSON = {
        "title": text(embed.get("title")),
        "url": embed.get("url"),
        "timestamp": _date(_parse(embed["timestamp"])) if embed.get("timestamp") else None,
        "description": text(embed.get("description")),
    }
    if embed.get("color") is not None:
        data["color"] = _color(embed["color"])
    if embed.get("author"):
        data["author"] = {
            "name": text(embed["author"].get("name")),
            "url": embed["author"].get("url"),
        }
    for key in ("thumbnail", "image", "video"):
        if (found := image(embed.get(key))) is not None:
            data[key] = found
    if embed.get("footer"):
        data["footer"] = {"text": text(embed["footer"].get("text"))}
    data["images"] = [found] if (found := image(embed.get("image"))) else []
    data["fields"] = [
        {
            "name": text(f.get("name")),
            "value": text(f.get("value")),
            "isInline": bool(f.get("inline")),
        }
        for f in embed.get("fields") or []
    ]
    return data


def _color(value: Any) -> str | None:
    return f"#{int(value):06X}" if value else None


def _parse(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


def _date(when: datetime.datetime) -> str:
    """DiscordChatExporter's timestamps: milliseconds and the offset (UTC here)."""
    return when.astimezone(datetime.UTC).isoformat(timespec="milliseconds")


def _snowflake_date(snowflake: int) -> str:
    ms = (snowflake >> 22) + 1_420_070_400_000
    return _date(datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC))
