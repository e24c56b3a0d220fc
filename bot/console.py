"""The local console chat: the bundled model, no Discord needed.

A plain line is a prompt; `/temperature set|show|reset`, `/model [show]`, `/model use NAME` and
`/help` work as in Discord, on one local channel whose settings persist like a Discord channel's.
With piped stdin it answers each line and exits at the end of the input, so it can be scripted.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import sys
from typing import TextIO

from bot.errors import CharbotError
from bot.generation.params import MAX_TEMPERATURE
from bot.plugins import models as model_commands
from bot.plugins import temperature as temperature_commands
from bot.services import Services
from bot.settings import InvalidSettingError

log = logging.getLogger(__name__)

CONSOLE_CHANNEL_ID = 1  # the console's one "channel" in the settings store

HELP = f"""\
Type a line and the model continues it. Commands:
  /temperature set VALUE   set the sampling temperature (0 to {MAX_TEMPERATURE:g})
  /temperature show        show it
  /temperature reset       back to the default
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
        self.out.write(prompt)
        completion = None
        async for chunk in backend.stream(prompt, params):
            self.out.write(chunk.text)
            self.out.flush()
            completion = chunk.completion or completion
        self.out.write("\n")
        if completion is not None and completion.unknown:
            pieces = "".join(sorted(set(completion.unknown)))
            self.say(f"(the model does not know {pieces!r}; it was left out)")
        self.out.flush()

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
        elif name == "temperature" and args[:1] == ["set"] and len(args) == 2:
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
        elif name == "model" and args in (["show"], []):
            self.say(await model_commands.show_model(self.services, channel, markdown=False))
        elif name == "model" and args[:1] == ["use"] and len(args) == 2:
            self.say(await model_commands.use_model(self.services, channel, args[1]))
        else:
            self.say(f"Unknown command {line.split()[0]!r}; try /help.")
        return True


async def run_console(
    services: Services, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout
) -> int:
    """Register the plugins and load the models as the Discord bot would, without Discord, then
    chat until the input ends."""
    chat = ConsoleChat(services, out)
    interactive = stdin.isatty()
    # The plugins' Discord-free parts: the settings keys and backend kinds the commands use.
    services.register_plugins()
    await services.start_models()
    default = services.config.models.default
    try:
        services.models.get(default)
    except CharbotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if interactive:
        chat.say(f"charbot console ({default}). /help for commands.")
    loop = asyncio.get_running_loop()
    while True:
        if interactive:
            out.write("> ")
            out.flush()
        # Reading stdin blocks, so it happens in a thread, never on the event loop.
        line = await loop.run_in_executor(None, stdin.readline)
        if not line:
            break
        if not await chat.handle(line):
            break
    return 0
