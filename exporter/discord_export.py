"""Discord channel exports as training text: the JSON that DiscordChatExporter writes.

The export is one object per channel:

    {"guild": {...}, "channel": {"id", "name", ...}, "messages": [
        {"id", "type": "Default" | "Reply" | "GuildMemberJoin" | ..., "content",
         "author": {"id", "name", "nickname", "isBot", "roles": [{"id", "name"}, ...]},
         "attachments": [...], "mentions": [{"id", "name", "nickname", ...}], ...}, ...]}

Each kept message becomes one line, `author: content` (or the content alone), in the order the
messages were written. Skipped: messages from bots, system messages (joins, pins, calls: every
type but Default and Reply), messages of a type this reader does not know, messages with no text
(attachment-only, or nothing left once URLs are dropped), messages of the authors excluded
(`--exclude-authors`: opted-out members), and a message already read (by id, in this file or an
earlier one). Mentions become readable names: an export made with `--markdown false` holds raw
`<@id>`, `<@&id>` and `<#id>`, which are resolved from the users, roles and channels the export
names; custom emoji `<:name:id>` become `:name:`. A raw id the export never names, and any
mention of an excluded author, becomes a neutral `@user`, `@role` or `#channel`.

Real exports vary, and are read leniently: `nickname`, `stickers`, `reference` (or its `type`)
may be missing; a type may be a name in any case or Discord's number (old exports write the
types they had no name for as numbers); `--reverse` exports list the newest message first, and
`--partition` splits a channel over several files, which may overlap.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporter.errors import CorpusError
from models.discord_text import DiscordNames, message_text

if TYPE_CHECKING:
    from exporter.config import TrainConfig

# The message types people write, by DiscordChatExporter's name (any case) and Discord's number.
USER_MESSAGE_TYPES = frozenset({"default", "reply"})
USER_MESSAGE_NUMBERS = frozenset({0, 19})
# DiscordChatExporter's names for Discord's system notifications (numbers 1 to 18), and the
# names other exporters and older versions use for the same ones.
SYSTEM_MESSAGE_TYPES = frozenset(
    name.lower()
    for name in (
        "RecipientAdd",
        "RecipientRemove",
        "Call",
        "ChannelNameChange",
        "ChannelIconChange",
        "ChannelPinnedMessage",
        "GuildMemberJoin",
        "UserJoin",
        "ThreadCreated",
        "GuildBoost",
        "UserPremiumGuildSubscription",
        "ChannelFollowAdd",
    )
)
SYSTEM_MESSAGE_NUMBERS = range(1, 19)

# Why a message was left out, as the corpus summary reports it.
SKIP_BOT = "from a bot"
SKIP_SYSTEM = "system message"
SKIP_UNKNOWN_TYPE = "unknown type"
SKIP_ATTACHMENT_ONLY = "attachment only"
SKIP_EMPTY = "no text"
SKIP_EXCLUDED = "excluded author"
SKIP_DUPLICATE = "already read"

_URL = re.compile(r"https?://\S+")
_LINE_BREAKS = re.compile(r"[ \t]*(?:\r\n|\r|\n)+[ \t]*")
_SPACES = re.compile(r"[ \t]{2,}")


@dataclass(frozen=True)
class DiscordOptions:
    authors: bool = True  # "author: content" lines, else the content alone
    drop_urls: bool = False
    excluded: frozenset[str] = frozenset()  # user ids whose messages and names are left out

    @classmethod
    def of(cls, config: TrainConfig) -> DiscordOptions:
        """A run's options; the excluded ids are read from the file the config names."""
        excluded = frozenset[str]()
        if config.exclude_authors is not None:
            excluded = read_excluded_authors(Path(config.exclude_authors))
        return cls(config.authors, config.drop_urls, excluded)


def read_excluded_authors(path: Path) -> frozenset[str]:
    """User ids, one a line (as `python -m bot privacy list` prints them); blank lines and lines
    starting with `#` are ignored."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise CorpusError(f"the --exclude-authors file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"cannot read the --exclude-authors file {path}: {exc}") from exc
    ids: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.isascii() or not line.isdigit():
            raise CorpusError(
                f"{path} line {number} is not a Discord user id (digits only): {line[:40]!r}"
            )
        ids.add(str(int(line)))
    return frozenset(ids)


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


def read_export(
    path: Path, text: str, options: DiscordOptions, seen: set[str] | None = None
) -> tuple[str, DiscordStats]:
    """The export's kept messages as lines of text, and what was kept and skipped.

    `seen` holds the ids of the messages already read (from earlier files of the same corpus);
    this file's are added to it. A file whose every message was read before gives no text."""
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
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            where = f"{path}: messages[{index}]"
            raise CorpusError(f"{where} is a JSON {_json_kind(message)}, not a message object")
    names = _Names.collect(data, messages, options.excluded)
    seen = set() if seen is None else seen
    stats = DiscordStats()
    lines: list[str] = []
    for index in _written_order(messages):
        message = messages[index]
        where = f"{path}: messages[{index}]"
        content = _field(message, "content", str, where)
        author = _field(message, "author", dict, where)
        is_bot = _field(author, "isBot", bool, f"{where}.author")
        message_id = message.get("id")
        if isinstance(message_id, str | int) and not isinstance(message_id, bool):
            if str(message_id) in seen:
                stats.skipped[SKIP_DUPLICATE] += 1
                continue
            seen.add(str(message_id))
        if str(author.get("id")) in options.excluded:
            stats.skipped[SKIP_EXCLUDED] += 1
            continue
        if is_bot:
            stats.skipped[SKIP_BOT] += 1
            continue
        kind = _kind(message.get("type"))
        if kind is not None:
            stats.skipped[kind] += 1
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
    if not lines and not stats.skipped[SKIP_DUPLICATE]:
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
    text = content
    for user in message.get("mentions") or []:
        if isinstance(user, dict) and isinstance(user.get("id"), str):
            name = _display_name(user, "")
            if user["id"] not in options.excluded:
                users[user["id"]] = name
            elif name:
                # A mention DiscordChatExporter rendered as the excluded member's name.
                text = re.sub(rf"@{re.escape(name)}(?!\w)", "@user", text)
    # Mentions and custom emoji as the bot reads them too (models/discord_text.py).
    text = message_text(text, DiscordNames(users, names.roles, names.channels))
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
    def collect(
        cls, data: Mapping[str, Any], messages: list[Any], excluded: frozenset[str]
    ) -> _Names:
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
                if name and person["id"] not in excluded:
                    users[person["id"]] = name
                for role in person.get("roles") or []:
                    if isinstance(role, dict) and isinstance(role.get("name"), str):
                        roles[str(role.get("id"))] = role["name"]
        channels: dict[str, str] = {}
        channel = data.get("channel")
        if isinstance(channel, dict) and isinstance(channel.get("name"), str):
            channels[str(channel.get("id"))] = channel["name"]
        return cls(users, roles, channels)


def _kind(value: Any) -> str | None:
    """None for a message people wrote (Default, Reply); else why it is skipped."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if value in USER_MESSAGE_NUMBERS:
            return None
        return SKIP_SYSTEM if value in SYSTEM_MESSAGE_NUMBERS else SKIP_UNKNOWN_TYPE
    if isinstance(value, str):
        name = value.strip().lower()
        if name in USER_MESSAGE_TYPES:
            return None
        return SKIP_SYSTEM if name in SYSTEM_MESSAGE_TYPES else SKIP_UNKNOWN_TYPE
    return SKIP_UNKNOWN_TYPE


def _written_order(messages: list[dict[str, Any]]) -> list[int]:
    """The messages' indexes oldest first: by id (ids grow with time), so that an export made
    with `--reverse` reads in the order it was written; file order where an id is not a number."""
    ids = [m.get("id") for m in messages]
    if not all(isinstance(i, str) and i.isdigit() for i in ids):
        return list(range(len(messages)))
    return sorted(range(len(messages)), key=lambda i: int(str(ids[i])))


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
