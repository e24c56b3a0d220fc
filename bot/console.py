"""The local console chat: the bundled model, no Discord needed.

A plain line is a prompt; a line starting with `/` is a command the plugins declared
(`bot.core.commands`), run by the same handler as on Discord, with the same option checks and the
same sentences, on one local channel whose settings persist like a Discord channel's (its user may
change them: it is their console). `/help` lists the commands, those only Discord runs apart. With
piped stdin it answers each line and exits at the end of the input, so it can be scripted.

Input is read as bytes on a daemon thread and decoded here, as UTF-8 with bad bytes replaced
(U+FFFD), whatever the locale: a stray byte never ends the chat or leaks into a prompt as a
surrogate. Being a daemon thread, the reader never keeps the process alive after Ctrl-C.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import io
import logging
import os
import shlex
import sys
import threading
from collections.abc import Iterator
from typing import IO, Any, TextIO

from bot.core.commands import Command, CommandGroup, Entry, options_from
from bot.core.completions import unknown_note
from bot.core.context import Context, invoke
from bot.core.services import Services
from bot.errors import CharbotError

log = logging.getLogger(__name__)

CONSOLE_CHANNEL_ID = 1  # the console's one "channel" in the settings store
READ_SIZE = 1 << 16  # bytes per read of stdin
LINES_AHEAD = 64  # lines read ahead of the chat: a long piped input is not held in memory

HELP_HEAD = "Type a line and the model continues it. Commands:"
HELP_TAIL = (
    ("/help", "this text"),
    ("/quit", "leave (or end of input)"),
)
DISCORD_HEAD = "Only on Discord (here, a plain line is a completion):"


def help_text(entries: list[Entry]) -> str:
    """`/help`, from the declared commands: those the console runs, then those only Discord
    runs."""
    here: list[tuple[str, str]] = []
    discord_only: list[tuple[str, str]] = []
    for path, command in _commands(entries):
        usage = f"/{path} {command.usage()}".rstrip()
        bounds = _hints(command, suggest=False)
        line = command.help + (f" ({bounds})" if bounds else "")
        (discord_only if command.discord_only else here).append((usage, line))
    rows = [*here, *HELP_TAIL]
    width = max(len(usage) for usage, _ in [*rows, *discord_only])
    lines = [HELP_HEAD, *_rows(rows, width)]
    if discord_only:
        lines += [DISCORD_HEAD, *_rows(discord_only, width)]
    return "\n".join(lines)


def _commands(entries: list[Entry]) -> list[tuple[str, Command]]:
    found: list[tuple[str, Command]] = []
    for entry in entries:
        if isinstance(entry, CommandGroup):
            found += [(f"{entry.name} {c.name}", c) for c in entry.commands]
        else:
            found.append((entry.name, entry))
    return found


def _usage(path: str, command: Command) -> str:
    """How to type a command, with its options' bounds or the values it suggests."""
    hints = _hints(command, suggest=True)
    return f"/{path} {command.usage()}".rstrip() + (f" ({hints})" if hints else "")


def _hints(command: Command, *, suggest: bool) -> str:
    """The options' bounds ("0 to 2"; the values suggested too, if asked), each named by its
    option where several have one."""
    hints = {}
    for option in command.options:
        hint = option.bounds_text()
        if not hint and suggest and option.suggest is not None:
            hint = "one of: " + (", ".join(option.suggest()) or "none")
        if hint:
            hints[option.name.upper()] = hint
    if len(hints) == 1:
        return next(iter(hints.values()))
    return "; ".join(f"{name}: {hint}" for name, hint in hints.items())


def _rows(rows: list[tuple[str, str]], width: int) -> list[str]:
    return [f"  {usage:<{width}}  {line}" for usage, line in rows]


class ConsoleChat:
    def __init__(self, services: Services, out: TextIO) -> None:
        self.services = services
        self.out = out

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    async def handle(self, line: str) -> bool:
        """Answer one line; False when the user asked to leave."""
        line = line.rstrip("\r\n")
        try:
            if line.startswith("/"):
                return await self.command(line)
            await self.complete(line)
        except CharbotError as exc:
            self.say(f"error: {exc}")
        return True

    async def complete(self, prompt: str) -> None:
        completions = self.services.completions
        backend = await completions.channel_backend(CONSOLE_CHANNEL_ID)
        params = await completions.channel_params(CONSOLE_CHANNEL_ID)
        completion = None
        echoed = False
        try:
            # The prompt is echoed with the first chunk: a prompt the backend refuses (too long)
            # is never shown, and its error gets a line of its own.
            async for chunk in backend.stream(prompt, params):
                if not echoed:
                    self.out.write(prompt)
                    echoed = True
                self.out.write(chunk.text)
                self.out.flush()
                completion = chunk.completion or completion
        finally:
            if echoed:
                self.out.write("\n")
                self.out.flush()
        note = None if completion is None else unknown_note(completion)
        if note is not None:
            self.say(f"({note})")

    async def command(self, line: str) -> bool:
        try:
            words = shlex.split(line[1:])
        except ValueError as exc:
            self.say(f"error: {exc}")
            return True
        name = words[0] if words else "help"
        if name in ("quit", "exit"):
            return False
        table = self.services.commands
        if name == "help":
            self.say(help_text(table.entries()))
            return True
        found = table.find(words)
        if found is None:
            self.say(f"Unknown command {line.split()[0]!r}; try /help.")
            return True
        path, command, rest = found
        if command.discord_only:
            self.say(f"/{path} works only on Discord; try /help.")
            return True
        if not command.takes(len(rest)):
            self.say(f"usage: {_usage(path, command)}")
            return True
        options = options_from(command, rest)  # a mistyped value is a CharbotError: handle's
        ctx = Context(self.services, CONSOLE_CHANNEL_ID, markdown=False)
        self.say(await invoke(command, ctx, options))
        return True


def _chunks(source: IO[Any]) -> Iterator[bytes | str]:
    """What `source` holds, as it arrives: bytes from its file descriptor when it has one (read
    without Python's buffer, whose lock a daemon thread must not hold at exit), else from the
    stream itself (bytes from a binary buffer, text from a text-only stream)."""
    try:
        fd: int | None = source.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        fd = None
    if fd is not None:
        while chunk := os.read(fd, READ_SIZE):
            yield chunk
        return
    stream = getattr(source, "buffer", source)
    while line := stream.readline():
        yield line


def _read_lines(
    source: IO[Any], loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]
) -> None:
    """On the reader thread: hand each line of `source` to the loop, then None at the end."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def put(line: str | None) -> None:
        # Waits while the chat is LINES_AHEAD lines behind. Once the loop has gone (Ctrl-C),
        # this raises or never returns, and the daemon thread dies with the process.
        asyncio.run_coroutine_threadsafe(lines.put(line), loop).result()

    try:
        pending = ""
        for chunk in _chunks(source):
            pending += chunk if isinstance(chunk, str) else decoder.decode(chunk)
            *complete, pending = pending.split("\n")
            for line in complete:
                put(line + "\n")
        pending += decoder.decode(b"", final=True)
        if pending:
            put(pending)
        put(None)
    except Exception as exc:  # the loop is closed (the chat ended first), or stdin failed
        log.debug("console input reader stopped: %s", exc)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            asyncio.run_coroutine_threadsafe(lines.put(None), loop)


def start_reader(source: IO[Any]) -> asyncio.Queue[str | None]:
    """Read `source` on a daemon thread; the queue yields its lines, then None at the end."""
    lines: asyncio.Queue[str | None] = asyncio.Queue(LINES_AHEAD)
    thread = threading.Thread(
        target=_read_lines,
        args=(source, asyncio.get_running_loop(), lines),
        name="charbot-console-input",
        daemon=True,
    )
    thread.start()
    return lines


def _is_terminal(stream: IO[Any]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


async def run_console(
    services: Services, stdin: IO[Any] | None = None, out: TextIO | None = None
) -> int:
    """Register the plugins and load the models as the Discord bot would, without Discord, then
    chat until the input ends. `stdin` and `out` default to the process's."""
    stdin = sys.stdin if stdin is None else stdin
    out = sys.stdout if out is None else out
    if isinstance(out, io.TextIOWrapper):
        # Model text the terminal's encoding cannot show is shown as "?", never a crash.
        out.reconfigure(errors="replace")
    chat = ConsoleChat(services, out)
    interactive = _is_terminal(stdin)
    # The plugins' Discord-free parts: the settings keys and backend kinds the commands use.
    services.register_plugins()
    default = services.config.models.default
    # Without its default model the chat cannot start: that failure is told here, once.
    await services.start_models(told_by_caller=[default])
    try:
        services.models.get(default)
    except CharbotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if interactive:
        chat.say(f"charbot console ({default}). /help for commands.")
    lines = start_reader(stdin)
    while True:
        if interactive:
            out.write("> ")
            out.flush()
        line = await lines.get()
        if line is None:
            break
        if not await chat.handle(line):
            break
    return 0
