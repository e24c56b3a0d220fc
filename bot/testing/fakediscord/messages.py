"""Message objects: validation like Discord's, payloads, and who a message would ping."""

from __future__ import annotations

import re
from collections.abc import Iterable

from aiohttp import web

from .components import validate_components
from .records import EPHEMERAL, LOADING, RecordedMessage
from .wire import JSON, Upload, error_reply, form_error, iso_now
from .world import FakeGuild, FakeUser, Intent

MAX_CONTENT = 2000
MAX_EMBEDS = 10
USER_MENTION = re.compile(r"<@!?(\d+)>")
ROLE_MENTION = re.compile(r"<@&(\d+)>")
DEFAULT_TYPE, REPLY_TYPE, CHAT_INPUT_COMMAND_TYPE = 0, 19, 20
# Flags a bot may set on a new message: SUPPRESS_EMBEDS, EPHEMERAL, SUPPRESS_NOTIFICATIONS,
# IS_COMPONENTS_V2.
SETTABLE_FLAGS = 4 | EPHEMERAL | 4096 | (1 << 15)


def validate_body(body: JSON, files: list[Upload], *, creating: bool) -> web.Response | None:
    """Discord's 400s for message bodies that bots most often get wrong; None when valid."""
    content = body.get("content")
    if content is not None and not isinstance(content, str):
        return form_error("content", "BASE_TYPE_STRING", "Must be a string.")
    if content is not None and len(content) > MAX_CONTENT:
        return form_error(
            "content", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length."
        )
    embeds = body.get("embeds") or []
    if len(embeds) > MAX_EMBEDS:
        return form_error("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    for i, embed in enumerate(embeds):
        if len(embed.get("description") or "") > 4096:
            return form_error(
                f"embeds.{i}.description",
                "BASE_TYPE_MAX_LENGTH",
                "Must be 4096 or fewer in length.",
            )
        if len(embed.get("title") or "") > 256:
            return form_error(
                f"embeds.{i}.title", "BASE_TYPE_MAX_LENGTH", "Must be 256 or fewer in length."
            )
    if (
        error := validate_components(body.get("components"), int(body.get("flags") or 0))
    ) is not None:
        return error
    has_something = bool(
        content
        or embeds
        or files
        or body.get("sticker_ids")
        or body.get("components")
        or body.get("poll")
    )
    if creating and not has_something:
        return error_reply(400, 50006, "Cannot send an empty message")
    return None


def compute_pings(
    content: str,
    allowed: JSON | None,
    *,
    guild: FakeGuild,
    replied_user: int | None,
) -> tuple[frozenset[int], bool]:
    """(users notified, @everyone/@here notified), following ``allowed_mentions`` rules.

    Without ``allowed_mentions`` everything in the content pings, and so does the reply.
    """
    mentioned = {int(m) for m in USER_MENTION.findall(content)}
    for role_id in {int(r) for r in ROLE_MENTION.findall(content)}:
        if guild.role(role_id) is not None:
            mentioned |= {m.user.id for m in guild.members if role_id in m.role_ids}
    everyone = "@everyone" in content or "@here" in content
    if allowed is None:
        users = set(mentioned)
        if replied_user is not None:
            users.add(replied_user)
        return frozenset(users), everyone
    parse = set(allowed.get("parse") or [])
    listed = {int(u) for u in allowed.get("users") or []}
    users = mentioned if "users" in parse else mentioned & listed
    if replied_user is not None and allowed.get("replied_user"):
        users = users | {replied_user}
    return frozenset(users), everyone and "everyone" in parse


def mention_payloads(guild: FakeGuild, user_ids: Iterable[int]) -> list[JSON]:
    """Gateway-style ``mentions``: user objects with a ``member`` for guild members."""
    out: list[JSON] = []
    for user_id in sorted(set(user_ids)):
        member = guild.member(user_id)
        if member is None:
            continue
        out.append(member.user.payload() | {"member": member.payload(with_user=False)})
    return out


def attachment_payloads(files: list[Upload], ids: Iterable[int], channel_id: int) -> list[JSON]:
    return [
        {
            "id": str(att_id),
            "filename": f.filename,
            "size": len(f.data),
            "content_type": f.content_type,
            "url": f"https://cdn.invalid/attachments/{channel_id}/{att_id}/{f.filename}",
            "proxy_url": f"https://media.invalid/attachments/{channel_id}/{att_id}/{f.filename}",
        }
        for f, att_id in zip(files, ids, strict=False)
    ]


def message_payload(
    *,
    message_id: int,
    channel_id: int,
    guild: FakeGuild,
    author: FakeUser,
    body: JSON,
    mentions: Iterable[int],
    mention_everyone: bool,
    attachments: list[JSON],
    referenced: RecordedMessage | None = None,
    flags: int = 0,
    type_: int | None = None,
    timestamp: str | None = None,
) -> JSON:
    data: JSON = {
        "id": str(message_id),
        "channel_id": str(channel_id),
        "guild_id": str(guild.id),
        "author": author.payload(),
        "content": body.get("content") or "",
        "timestamp": timestamp or iso_now(),
        "edited_timestamp": None,
        "tts": bool(body.get("tts", False)),
        "mention_everyone": mention_everyone,
        "mentions": mention_payloads(guild, mentions),
        "mention_roles": [],
        "attachments": attachments,
        "embeds": list(body.get("embeds") or []),
        "components": list(body.get("components") or []),
        "pinned": False,
        "type": type_ if type_ is not None else (REPLY_TYPE if referenced else DEFAULT_TYPE),
        "flags": flags,
    }
    if body.get("nonce") is not None:
        data["nonce"] = body["nonce"]
    if referenced is not None:
        data["message_reference"] = {
            "type": 0,
            "message_id": str(referenced.id),
            "channel_id": str(referenced.channel_id),
            "guild_id": str(guild.id),
        }
        # Discord nests one level only.
        nested = {k: v for k, v in referenced.payload.items() if k != "referenced_message"}
        data["referenced_message"] = nested
    return data


def apply_edit(message: RecordedMessage, body: JSON, *, guild: FakeGuild) -> None:
    """Merge an edit into the stored payload; an edit always ends the deferred LOADING state."""
    payload = message.payload
    for key in ("content", "embeds", "components", "attachments"):
        if key in body:
            payload[key] = body[key] if body[key] is not None else ([] if key != "content" else "")
    flags = int(payload.get("flags", 0)) & ~LOADING
    if body.get("flags") is not None:
        # Only SUPPRESS_EMBEDS (4) may change on edit; ephemeral-ness is fixed at creation.
        flags = (flags & ~4) | (int(body["flags"]) & 4)
    payload["flags"] = flags
    payload["edited_timestamp"] = iso_now()
    message.edits.append(body)
    referenced = payload.get("referenced_message")
    replied = int(referenced["author"]["id"]) if referenced else None
    message.pings, message.pings_everyone = compute_pings(
        payload["content"], message.allowed_mentions, guild=guild, replied_user=replied
    )
    payload["mentions"] = mention_payloads(guild, message.pings)
    payload["mention_everyone"] = message.pings_everyone


def gateway_view(message: JSON, *, guild: FakeGuild) -> JSON:
    """MESSAGE_CREATE/UPDATE carry the author's ``member`` (REST replies don't)."""
    data = dict(message)
    member = guild.member(int(message["author"]["id"]))
    if member is not None and "webhook_id" not in message:
        data["member"] = member.payload(with_user=False)
    return data


def gate_content(intents: int, message: JSON, *, bot_id: int) -> JSON:
    """Strip content unless the bot has MESSAGE_CONTENT, wrote it, or is mentioned in it.

    The gateway gates by the session's intents; REST by the intent enabled for the application
    (the message a reply quotes is gated on its own).
    """
    if intents & Intent.MESSAGE_CONTENT:
        return message
    gated = dict(message)
    referenced = message.get("referenced_message")
    if referenced:
        gated["referenced_message"] = gate_content(intents, referenced, bot_id=bot_id)
    if int(message["author"]["id"]) == bot_id or any(
        int(m["id"]) == bot_id for m in message.get("mentions", [])
    ):
        return gated
    gated.update(content="", embeds=[], attachments=[], components=[])
    gated.pop("poll", None)
    return gated
