"""Discord channel exports as training text: the JSON that DiscordChatExporter writes.

The export is one object per channel:

    {"guild": {...}, "channel": {"id", "name", ...}, "messages": [
        {"id", "type": "Default" | "Reply" | "GuildMemberJoin" | ..., "content",
         "author": {"id", "name", "nickname", "isBot", "roles": [{"id", "name"}, ...]},
         "attachments": [...], "mentions": [{"id", "name", "nickname", ...}], ...}, ...]}

Each kept message becomes one line, `author: content` (or the content alone). Skipped: messages
from bots, system messages (joins, pins, calls: every type but Default and Reply), and messages
with no text (attachment-only, or nothing left once URLs are dropped). Mentions become readable
names: an export made with `--markdown false` holds raw `<@id>`, `<@&id>` and `<#id>`, which are
resolved from the users, roles and channels the export names; custom emoji `<:name:id>` become
`:name:`. A raw id the export never names becomes a neutral `@user`, `@role` or `#channel`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.errors import CorpusError

# The message types people write; DiscordChatExporter names the others after Discord's system
# notifications (RecipientAdd, Call, ChannelPinnedMessage, GuildMemberJoin, ThreadCreated, ...).
USER_MESSAGE_TYPES = frozenset({"Default", "Reply"})

# Why a message was left out, as the corpus summary reports it.
SKIP_BOT = "from a bot"
SKIP_SYSTEM = "system message"
SKIP_ATTACHMENT_ONLY = "attachment only"
SKIP_EMPTY = "no text"

_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")
_CHANNEL_MENTION = re.compile(r"<#(\d+)>")
_CUSTOM_EMOJI = re.compile(r"<a?:(\w+):\d+>")
_URL = re.compile(r"https?://\S+")
_LINE_BREAKS = re.compile(r"[ \t]*(?:\r\n|\r|\n)+[ \t]*")
_SPACES = re.compile(r"[ \t]{2,}")


@dataclass(frozen=True)
class DiscordOptions:
    authors: bool = True  # "author: content" lines, else the content alone
    drop_urls: bool = False


@dataclass
class DiscordStats:
    kept: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {"kept": self.kept, "skipped": dict(sorted(self.skipped.items()))}


def looks_like_export(path: Path, text: str) -> bool:
    """A `.json` file, or any text that parses as a JSON object with a `messages` key."""
    if path.suffix.lower() == ".json":
        return True
    if not text.lstrip("\ufeff \t\r\n").startswith("{"):
        return False
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return False  # plain text that happens to start with a brace
    return isinstance(data, dict) and "messages" in data


def read_export(path: Path, text: str, options: DiscordOptions) -> tuple[str, DiscordStats]:
    """The export's kept messages as lines of text, and what was kept and skipped."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CorpusError(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        shape = (
            'an object without a "messages" list'
            if isinstance(data, dict)
            else (f"a JSON {_json_kind(data)}")
        )
        raise CorpusError(
            f"{path} is not a DiscordChatExporter export: it is {shape}, where the export is an "
            'object with a "messages" list'
        )
    messages: list[Any] = data["messages"]
    names = _Names.collect(data, messages)
    stats = DiscordStats()
    lines: list[str] = []
    for index, message in enumerate(messages):
        where = f"{path}: messages[{index}]"
        if not isinstance(message, dict):
            raise CorpusError(f"{where} is a JSON {_json_kind(message)}, not a message object")
        kind = _field(message, "type", str, where)
        content = _field(message, "content", str, where)
        author = _field(message, "author", dict, where)
        if _field(author, "isBot", bool, f"{where}.author"):
            stats.skipped[SKIP_BOT] += 1
            continue
        if kind not in USER_MESSAGE_TYPES:
            stats.skipped[SKIP_SYSTEM] += 1
            continue
        text_line = clean_content(content, message, names, options)
        if not text_line:
            attachments = message.get("attachments") or message.get("stickers")
            stats.skipped[SKIP_ATTACHMENT_ONLY if attachments else SKIP_EMPTY] += 1
            continue
        if options.authors:
            text_line = f"{_display_name(author, f'{where}.author')}: {text_line}"
        lines.append(text_line)
        stats.kept += 1
    if not lines:
        raise CorpusError(
            f"{path} has no message to train on: all {len(messages)} were skipped "
            f"({_describe_skips(stats.skipped)})"
        )
    return "".join(line + "\n" for line in lines), stats


def clean_content(
    content: str, message: Mapping[str, Any], names: _Names, options: DiscordOptions
) -> str:
    """One line of readable text: names for mentions, no raw ids, optionally no URLs."""
    users = dict(names.users)
    for user in message.get("mentions") or []:
        if isinstance(user, dict) and isinstance(user.get("id"), str):
            users[user["id"]] = _display_name(user, "")
    text = _USER_MENTION.sub(lambda m: "@" + users.get(m.group(1), "user"), content)
    text = _ROLE_MENTION.sub(lambda m: "@" + names.roles.get(m.group(1), "role"), text)
    text = _CHANNEL_MENTION.sub(lambda m: "#" + names.channels.get(m.group(1), "channel"), text)
    text = _CUSTOM_EMOJI.sub(lambda m: f":{m.group(1)}:", text)
    if options.drop_urls:
        text = _URL.sub("", text)
    text = _LINE_BREAKS.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


@dataclass(frozen=True)
class _Names:
    """Ids the export names anywhere: authors, mentioned users, their roles, its channel."""

    users: dict[str, str]
    roles: dict[str, str]
    channels: dict[str, str]

    @classmethod
    def collect(cls, data: Mapping[str, Any], messages: list[Any]) -> _Names:
        users: dict[str, str] = {}
        roles: dict[str, str] = {}
        for message in messages:
            if not isinstance(message, dict):
                continue
            people = [message.get("author"), *(message.get("mentions") or [])]
            for person in people:
                if not isinstance(person, dict) or not isinstance(person.get("id"), str):
                    continue
                name = _display_name(person, "")
                if name:
                    users[person["id"]] = name
                for role in person.get("roles") or []:
                    if isinstance(role, dict) and isinstance(role.get("name"), str):
                        roles[str(role.get("id"))] = role["name"]
        channels: dict[str, str] = {}
        channel = data.get("channel")
        if isinstance(channel, dict) and isinstance(channel.get("name"), str):
            channels[str(channel.get("id"))] = channel["name"]
        return cls(users, roles, channels)


def _display_name(person: Mapping[str, Any], where: str) -> str:
    """The name the server shows: the nickname, else the user name."""
    for key in ("nickname", "name"):
        value = person.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    if where:
        raise CorpusError(f'{where} has no "name" string')
    return ""


def _field(obj: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind):
        found = "is missing" if key not in obj else f"is a JSON {_json_kind(value)}"
        raise CorpusError(
            f'{where} has no "{key}" {_json_name(kind)} (it {found}); is this a '
            "DiscordChatExporter JSON export?"
        )
    return value


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {dict: "object", list: "array", str: "string", int: "number", float: "number"}.get(
        type(value), type(value).__name__
    )


def _json_name(kind: type) -> str:
    return {dict: "object", str: "string", bool: "boolean"}.get(kind, kind.__name__)


def _describe_skips(skipped: Counter[str]) -> str:
    return ", ".join(f"{count} {reason}" for reason, count in sorted(skipped.items())) or "none"
