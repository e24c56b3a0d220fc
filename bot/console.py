"""The local console chat: the bundled model, no Discord needed.

A plain line is a prompt; `/temperature set|show|reset`, `/settings show|set|reset`,
`/model [show]`, `/model use NAME` and `/help` work as in Discord, on one local channel whose
settings persist like a Discord channel's. With piped stdin it answers each line and exits at
the end of the input, so it can be scripted.

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

from bot.core.completions import unknown_note
from bot.core.services import Services
from bot.errors import CharbotError
from bot.generation.params import MAX_TEMPERATURE
from bot.plugins import channel_settings as settings_commands
from bot.plugins import model as model_commands
from bot.plugins import temperature as temperature_commands
from bot.settings import InvalidSettingError

log = logging.getLogger(__name__)

CONSOLE_CHANNEL_ID = 1  # the console's one "channel" in the settings store
READ_SIZE = 1 << 16  # bytes per read of stdin
LINES_AHEAD = 64  # lines read ahead of the chat: a long piped input is not held in memory

HELP = f"""\
Type a line and the model continues it. Commands:
  /temperature set VALUE   set the sampling temperature (0 to {MAX_TEMPERATURE:g})
  /temperature show        show it
  /temperature reset       back to the default
  /settings show           every setting in use, and where it comes from
  /settings set KEY VALUE  set length, top_k or top_p (top_k 0 and top_p 1 are off)
  /settings reset KEY      back to the default
  /model [show]            the model in use
  /model use NAME          switch to another configured model
  /help                    this text
  /quit                    leave (or end of input)"""


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
        name, args = (words[0], words[1:]) if words else ("help", [])
        channel = CONSOLE_CHANNEL_ID
        if name in ("quit", "exit"):
            return False
        if name == "help":
            self.say(HELP)
        elif name == "temperature" and args[:1] == ["set"]:
            if len(args) != 2:
                self.say(f"usage: /temperature set VALUE (0 to {MAX_TEMPERATURE:g})")
                return True
            try:
                value = float(args[1])
            except ValueError:
                raise InvalidSettingError(
                    f"The temperature must be a number; got {args[1]!r}."
                ) from None
            stored = await temperature_commands.set_temperature(self.services, channel, value)
            self.say(f"Temperature set to {stored:g}.")
        elif name == "temperature" and args in (["show"], []):
            self.say(await temperature_commands.show_temperature(self.services, channel))
        elif name == "temperature" and args == ["reset"]:
            self.say(await temperature_commands.reset_temperature(self.services, channel))
        elif name == "settings" and args in (["show"], []):
            self.say(await settings_commands.show_settings(self.services, channel))
        elif name == "settings" and args[:1] == ["set"] and len(args) == 3:
            value = _number(args[2])
            self.say(await settings_commands.set_setting(self.services, channel, args[1], value))
        elif name == "settings" and args[:1] == ["reset"] and len(args) == 2:
            self.say(await settings_commands.reset_setting(self.services, channel, args[1]))
        elif name == "model" and args in (["show"], []):
            self.say(await model_commands.show_model(self.services, channel, markdown=False))
        elif name == "model" and args[:1] == ["use"]:
            if len(args) != 2:
                names = ", ".join(model_commands.usable_models(self.services)) or "none"
                self.say(f"usage: /model use NAME (one of: {names})")
                return True
            text = await model_commands.use_model(self.services, channel, args[1], markdown=False)
            self.say(text)
        else:
            self.say(f"Unknown command {line.split()[0]!r}; try /help.")
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


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise InvalidSettingError(f"The value must be a number; got {text!r}.") from None


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
