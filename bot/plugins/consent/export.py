"""`python -m bot history export`: the allowed channels of a guild, read through Discord's REST
API with the bot's own token, written as DiscordChatExporter JSON without the members who
opted out.

For each channel (and each of its active and archived public threads, a forum's posts among
them) the messages newer than any the output directory already holds are fetched oldest first,
100 a page (`GET /channels/{id}/messages?after=`), and written in parts of `PART_SIZE` messages,
each part a complete export file written whole (a temporary file renamed), so an interrupted
export leaves only whole files and the next run goes on after the last one. Rate limits are
waited out by discord.py's HTTP client, which also reads `CHARBOT_DISCORD_API_BASE` through
`Route.BASE`.

Discord blanks the content of other people's messages for an application without the Message
Content intent; a page cannot tell (the bot's own messages and those mentioning it keep theirs),
so the application's flags decide, before anything is fetched or written.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import discord
from discord.http import HTTPClient, Route

from bot.api import CharbotError

from .dce import JSON, Directory, document, message_object, with_mentioned_users

#: Discord's most messages a page.
PAGE_SIZE = 100
#: Messages a file holds at most; a longer history is written in several parts.
PART_SIZE = 10_000
#: Guild members a page (`GET /guilds/{id}/members`).
MEMBERS_PAGE = 1000

# Application flags: the Message Content intent (bit 18 for verified apps, 19 "limited" for the
# others) and the Server Members intent (14, 15).
MESSAGE_CONTENT_FLAGS = (1 << 18) | (1 << 19)
SERVER_MEMBERS_FLAGS = (1 << 14) | (1 << 15)

TEXT, ANNOUNCEMENT, FORUM, MEDIA = 0, 5, 15, 16
EXPORTABLE_TYPES = {TEXT, ANNOUNCEMENT, FORUM, MEDIA}
POSTS_ONLY = {FORUM, MEDIA}  # their messages are in their posts (threads)

NO_MESSAGE_CONTENT = (
    "The bot's application does not have the Message Content intent, so Discord sends other "
    "people's messages empty: enable it in the Discord Developer Portal (your application > "
    "Bot > Privileged Gateway Intents > Message Content Intent) and export again; nothing was "
    "written."
)

Echo = Callable[[str], None]


class ExportError(CharbotError):
    """An export that cannot start (or go on): one sentence for the operator."""


@dataclass(frozen=True)
class ExportRequest:
    guild_id: int
    out_dir: Path
    allowed: frozenset[int]  # the guild's channels allowed for training
    opted_out: frozenset[int]  # users who opted out
    channels: tuple[int, ...] = ()  # the ones asked for; none: every allowed channel


@dataclass
class ChannelResult:
    label: str
    messages: int = 0
    pages: int = 0
    files: list[Path] = field(default_factory=list)
    problem: str | None = None


@dataclass
class ExportResult:
    channels: list[ChannelResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def messages(self) -> int:
        return sum(c.messages for c in self.channels)

    @property
    def pages(self) -> int:
        return sum(c.pages for c in self.channels)

    @property
    def files(self) -> list[Path]:
        return [f for c in self.channels for f in c.files]

    @property
    def problems(self) -> list[str]:
        return [f"{c.label}: {c.problem}" for c in self.channels if c.problem]


@dataclass(frozen=True)
class Held:
    """What the output directory already holds of one channel."""

    last_id: int = 0
    files: int = 0
    authors: frozenset[int] = frozenset()


async def export_history(http: HTTPClient, request: ExportRequest, echo: Echo) -> ExportResult:
    """Export the request's channels into its directory; progress goes to `echo`, a line per
    channel. Raises ExportError before writing anything when the export cannot be done; a
    channel that cannot be read is reported (`ExportResult.problems`) and the others go on."""
    started = time.monotonic()
    flags = await _application_flags(http)
    if not flags & MESSAGE_CONTENT_FLAGS:
        raise ExportError(NO_MESSAGE_CONTENT)
    wanted = _wanted_channels(request)
    guild, channels = await _guild(http, request.guild_id)
    roles = {int(r["id"]): r for r in guild.get("roles") or []}
    members = await _members(http, request.guild_id) if flags & SERVER_MEMBERS_FLAGS else {}
    held = read_held(request.out_dir)
    _warn_about_new_opt_outs(request, held, echo)
    request.out_dir.mkdir(parents=True, exist_ok=True)

    result = ExportResult()
    by_id = {int(c["id"]): c for c in channels}
    threads = await _threads(http, request.guild_id, [by_id[c] for c in wanted if c in by_id])
    directory = Directory(guild, {**by_id, **{int(t["id"]): t for t in threads}}, roles,
                          members, request.opted_out)  # fmt: skip
    for channel_id in wanted:
        channel = by_id.get(channel_id)
        if channel is None:
            result.channels.append(_skipped(echo, f"channel {channel_id}", "not in the guild"))
            continue
        label = f"#{channel.get('name')}"
        kind = int(channel["type"])
        if kind not in EXPORTABLE_TYPES:
            problem = "not a text, announcement or forum channel"
            result.channels.append(_skipped(echo, label, problem))
            continue
        if kind not in POSTS_ONLY:
            result.channels.append(
                await _export_channel(http, request, directory, channel, held, label, echo)
            )
        for thread in threads:
            if int(thread["parent_id"]) == channel_id:
                thread = _anonymous_if_theirs(thread, request.opted_out)
                thread_label = f"{label} > {thread['name']}"
                result.channels.append(
                    await _export_channel(
                        http, request, directory, thread, held, thread_label, echo
                    )
                )
    result.seconds = time.monotonic() - started
    return result


def _wanted_channels(request: ExportRequest) -> list[int]:
    if not request.allowed:
        raise ExportError(
            f"No channel of guild {request.guild_id} is allowed for training: an admin allows "
            "one with /training allow, and nothing was written."
        )
    for channel_id in request.channels:
        if channel_id not in request.allowed:
            raise ExportError(
                f"Channel {channel_id} is not allowed for training in guild {request.guild_id} "
                "(an admin allows it with /training allow); nothing was exported."
            )
    return list(dict.fromkeys(request.channels)) or sorted(request.allowed)


async def _application_flags(http: HTTPClient) -> int:
    app = await _call(http.request(Route("GET", "/applications/@me")), "the bot's application")
    return int(app.get("flags") or 0)


async def _guild(http: HTTPClient, guild_id: int) -> tuple[JSON, list[JSON]]:
    what = f"guild {guild_id}"
    guild = await _call(http.get_guild(guild_id, with_counts=False), what)
    channels = await _call(http.get_all_guild_channels(guild_id), what)
    return guild, list(channels)


async def _members(http: HTTPClient, guild_id: int) -> dict[int, JSON]:
    """Every member, for the server nicknames (needs the Server Members intent)."""
    members: dict[int, JSON] = {}
    after = 0
    while True:
        page = await _call(http.get_members(guild_id, MEMBERS_PAGE, after), "the guild's members")
        for member in page:
            members[int(member["user"]["id"])] = member
        if len(page) < MEMBERS_PAGE:
            return members
        after = max(int(m["user"]["id"]) for m in page)


async def _threads(http: HTTPClient, guild_id: int, parents: list[JSON]) -> list[JSON]:
    """The active threads of these channels, then their archived public ones, oldest first."""
    parent_ids = {int(p["id"]) for p in parents}
    active = await _call(http.get_active_threads(guild_id), "the guild's active threads")
    found = {
        int(t["id"]): t for t in active.get("threads") or [] if int(t["parent_id"]) in parent_ids
    }
    for parent in parents:
        before: str | None = None
        while True:
            page = await _call(
                http.get_public_archived_threads(int(parent["id"]), before, PAGE_SIZE),
                f"the archived threads of #{parent.get('name')}",
            )
            threads = page.get("threads") or []
            for thread in threads:
                found.setdefault(int(thread["id"]), thread)
            if not page.get("has_more") or not threads:
                break
            before = threads[-1]["thread_metadata"]["archive_timestamp"]
    return sorted(found.values(), key=lambda t: int(t["id"]))


def _anonymous_if_theirs(thread: JSON, opted_out: frozenset[int]) -> JSON:
    """A thread's name is its starter's words: an opted-out member's thread goes unnamed."""
    if int(thread.get("owner_id") or 0) in opted_out:
        return {**thread, "name": f"thread {thread['id']}", "owner_id": None}
    return thread


async def _export_channel(
    http: HTTPClient,
    request: ExportRequest,
    directory: Directory,
    channel: JSON,
    held: dict[int, Held],
    label: str,
    echo: Echo,
) -> ChannelResult:
    channel_id = int(channel["id"])
    known = held.get(channel_id, Held())
    result = ChannelResult(label)
    part: list[JSON] = []
    base = file_base(directory, channel)
    parts = known.files

    after = known.last_id

    def flush(everything: bool) -> None:
        """Write whole parts of PART_SIZE messages; with `everything`, the rest too."""
        nonlocal part, parts, after
        while part and (everything or len(part) >= PART_SIZE):
            chunk, part = part[:PART_SIZE], part[PART_SIZE:]
            parts += 1
            path = request.out_dir / f"{base} [part {parts}].json"
            while path.exists():  # a name another tool gave a file of this channel
                parts += 1
                path = request.out_dir / f"{base} [part {parts}].json"
            write_atomically(path, document(directory, channel, chunk, after=after))
            result.files.append(path)
            after = int(chunk[-1]["id"])

    try:
        async for page in pages_after(http, channel_id, known.last_id):
            result.pages += 1
            page_directory = with_mentioned_users(directory, page)
            for payload in page:
                converted = message_object(page_directory, payload)
                if converted is not None:
                    part.append(converted)
                    result.messages += 1
            flush(everything=False)
    except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as exc:
        flush(everything=True)  # what was read is kept: the next run goes on after it
        result.problem = _cannot_read(exc)
        echo(f"{label}: stopped after {result.messages:,} messages: {result.problem}")
        return result
    flush(everything=True)
    if result.messages:
        names = ", ".join(p.name for p in result.files)
        echo(f"{label}: {result.messages:,} messages in {result.pages} page(s) -> {names}")
    else:
        echo(f"{label}: nothing new" + (" since the last export" if known.last_id else ""))
    return result


async def pages_after(http: HTTPClient, channel_id: int, after: int) -> AsyncIterator[list[JSON]]:
    """The channel's messages after `after`, a page at a time, each page oldest first."""
    while True:
        page: list[Any] = await http.logs_from(channel_id, PAGE_SIZE, after=after)
        if not page:
            return
        page.sort(key=lambda m: int(m["id"]))
        yield page
        if len(page) < PAGE_SIZE:
            return
        after = int(page[-1]["id"])


def read_held(out_dir: Path) -> dict[int, Held]:
    """The newest message id, the number of files and the authors of each channel the
    directory's `.json` files hold (ours and DiscordChatExporter's alike)."""
    held: dict[int, Held] = {}
    if not out_dir.exists():
        return held
    if not out_dir.is_dir():
        raise ExportError(f"The output {out_dir} is a file, not a directory.")
    for path in sorted(out_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
            channel_id = int(data["channel"]["id"])
            ids = [int(m["id"]) for m in data["messages"]]
            authors = {int(m["author"]["id"]) for m in data["messages"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ExportError(
                f"{path} is not a DiscordChatExporter export ({type(exc).__name__}), so what "
                "the directory holds is unknown: move it out of the directory and export again."
            ) from exc
        before = held.get(channel_id, Held())
        held[channel_id] = Held(
            max([before.last_id, *ids]), before.files + 1, before.authors | authors
        )
    return held


def _warn_about_new_opt_outs(request: ExportRequest, held: dict[int, Held], echo: Echo) -> None:
    """Files written before a member opted out still hold their messages: the operator's to
    redo (a new export only leaves out what it writes)."""
    authors = frozenset[int]().union(*(h.authors for h in held.values()))
    count = len(authors & request.opted_out)
    if count:
        echo(
            f"warning: {request.out_dir} holds messages of {count} member(s) who opted out after "
            "it was written; to honour that, export into an empty directory and train again."
        )


def file_base(directory: Directory, channel: JSON) -> str:
    """DiscordChatExporter's file name: `Guild - Category - Channel [id]` (a thread's category
    is its parent channel)."""
    parent_id = int(channel.get("parent_id") or 0)
    parent = directory.channels.get(parent_id)
    names = [directory.guild["name"], *([parent["name"]] if parent else []), channel["name"]]
    return _safe(" - ".join(str(n) for n in names)) + f" [{channel['id']}]"


def write_atomically(path: Path, data: JSON) -> None:
    """The whole file or none of it: written beside, then renamed over."""
    staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with staged.open("w", encoding="utf-8") as out:
            json.dump(data, out, ensure_ascii=False, indent=2)
        os.replace(staged, path)
    except OSError as exc:
        raise ExportError(f"Cannot write {path}: {exc.strerror or exc}.") from exc
    finally:
        staged.unlink(missing_ok=True)


_UNSAFE = re.compile(r'[\x00-\x1f<>:"/\\|?*]')


def _safe(name: str) -> str:
    return _UNSAFE.sub("_", name).strip(" .")[:150] or "channel"


async def _call(request: Any, what: str) -> Any:
    """Discord's answer, or ExportError naming what could not be read."""
    try:
        return await request
    except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as exc:
        raise ExportError(f"Cannot read {what}: {_cannot_read(exc)}; nothing was written.") from exc


def _cannot_read(exc: Exception) -> str:
    if not isinstance(exc, discord.HTTPException):
        return f"lost the connection to Discord ({type(exc).__name__})"
    reason = f"Discord answered {exc.status} {exc.text or type(exc).__name__}".rstrip()
    if isinstance(exc, discord.Forbidden):
        return f"{reason} (the bot needs View Channel and Read Message History there)"
    if isinstance(exc, discord.NotFound):
        return f"{reason} (is the bot in the guild, and does the channel still exist?)"
    return reason


def _skipped(echo: Echo, label: str, problem: str) -> ChannelResult:
    echo(f"{label}: skipped, {problem}")
    return ChannelResult(label, problem=problem)


def summary_line(result: ExportResult, out_dir: Path) -> str:
    size = sum(p.stat().st_size for p in result.files)
    return (
        f"exported {result.messages:,} messages ({result.pages} pages) into "
        f"{len(result.files)} file(s) ({size / 1e6:.1f} MB) in {out_dir}, in {result.seconds:.1f} s"
    )
