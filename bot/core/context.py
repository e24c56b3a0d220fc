"""What a command's handler is given (`Context`), and the one way both surfaces run a handler
(`invoke`): its options checked first, whatever sent them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.core.commands import Command
from bot.core.services import Services
from bot.errors import CommandError


@dataclass(frozen=True)
class Context:
    """Where a command runs: the services, the channel whose settings it reads or changes, and
    how the reply is shown (Discord renders markdown; the console shows text as written)."""

    services: Services
    channel_id: int
    guild_id: int | None = None
    user_id: int | None = None
    markdown: bool = True

    def bold(self, text: str) -> str:
        return f"**{text}**" if self.markdown else text


async def invoke(command: Command, ctx: Context, options: Mapping[str, object]) -> str:
    """Run a command's handler with its options checked: the one way in for both surfaces."""
    if command.run is None:
        raise CommandError(f"/{command.name} works only on Discord.")
    return await command.run(ctx, **command.check(options))
