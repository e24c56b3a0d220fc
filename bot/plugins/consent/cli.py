"""`python -m bot history export` and `python -m bot privacy list`.

Both read the store the bot uses (the same config), and the export reads Discord with the bot's
own token (`DISCORD_TOKEN`, at `CHARBOT_DISCORD_API_BASE` when set); neither needs the bot to be
running, and both work while it is.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from bot.api import Subcommand, Subcommands, discord_rest

from . import state
from .export import ExportError, ExportRequest, export_history, summary_line

if TYPE_CHECKING:
    from bot.api import Services


def register_cli(cli: Subcommands) -> None:
    cli.add(
        Subcommand(
            "history",
            "export the channels allowed for training as DiscordChatExporter JSON",
            run_history,
            history_options,
        ),
        owner=__package__ or __name__,
    )
    cli.add(
        Subcommand("privacy", "list the members who opted out", run_privacy, privacy_options),
        owner=__package__ or __name__,
    )


def history_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=["export"],
        help="export: every allowed channel of the guild (and its threads), without the members "
        "who opted out, after what OUT already holds",
    )
    parser.add_argument("--guild", type=int, required=True, metavar="GUILD_ID", help="the guild")
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="where the .json files go"
    )
    parser.add_argument(
        "--channel",
        dest="channels",
        type=int,
        action="append",
        default=[],
        metavar="CHANNEL_ID",
        help="export only this allowed channel (repeatable; default: every allowed channel)",
    )


def privacy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action", choices=["list"], help="list: the ids of the members who opted out, one a line"
    )


async def run_history(args: argparse.Namespace, services: Services) -> int:
    store = services.settings
    request = ExportRequest(
        guild_id=args.guild,
        out_dir=args.out,
        allowed=frozenset(await state.allowed_channels(store, args.guild)),
        opted_out=frozenset(await state.opted_out(store)),
        channels=tuple(args.channels),
    )
    async with discord_rest(services.config) as http:
        result = await export_history(http, request, lambda line: print(line, flush=True))
    print(summary_line(result, request.out_dir))
    if result.problems:
        raise ExportError(
            f"{len(result.problems)} channel(s) were not exported in full (see above); the rest "
            "was written, and running the export again goes on from there."
        )
    return 0


async def run_privacy(args: argparse.Namespace, services: Services) -> int:
    for user_id in await state.opted_out(services.settings):
        print(user_id)
    return 0
