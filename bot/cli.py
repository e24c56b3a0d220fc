"""`python -m bot [run|chat|serve|store copy|...]`: the Discord bot when DISCORD_TOKEN is set,
else the console chat; `serve` runs the model server (see `bot.serving.cli`); `store copy` copies
everything a store keeps into another (`bot.stores.copy`); plugins add more
(`bot.core.subcommands`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import discord

from bot.config import DEFAULT_PLUGINS, Config, load_config
from bot.console import run_console
from bot.core.plugins import allowed_plugins
from bot.core.subcommands import Subcommand, Subcommands, discover, left_out
from bot.discord.app import CharBot, point_discord_at
from bot.errors import CharbotError
from bot.ops.logs import LogFormat, configure_logging
from bot.runtime import build_bot, build_services
from bot.serving import cli as serving_cli
from bot.stores.copy import copy_store

log = logging.getLogger(__name__)

#: Gateway close codes discord.py does not retry, each as the fix an operator makes.
FATAL_CLOSES = {
    4010: "Discord refused shard {shard} (4010: invalid shard): it is already running in another "
    "process, or the processes disagree on the count; give each process its own --shard-ids "
    "(discord.shard_ids) and all of them the same --shard-count (discord.shard_count).",
    4011: "Discord requires more shards (4011: sharding required, too many guilds on shard "
    "{shard}): raise --shard-count (discord.shard_count; left unset, it is Discord's "
    "recommended count).",
    4012: "Discord refused the gateway version (4012): upgrade discord.py.",
    4013: "Discord refused the gateway intents (4013: invalid intents): check the intents that "
    "the plugins ask for.",
    4014: "Discord refused a privileged intent (4014: disallowed intents): enable it for the bot "
    "in the Discord developer portal, or unload the plugin that asks for it.",
}


def fatal_close(code: int, shard: int | None) -> str:
    """The sentence for a gateway close that ends the process."""
    template = FATAL_CLOSES.get(code, "Discord closed the gateway with {code} (shard {shard}).")
    return template.format(code=code, shard=0 if shard is None else shard)


def report(sentence: str, fmt: LogFormat = "text") -> None:
    """A fatal error for the operator: an `error:` line on stderr, or under JSON logs one JSON
    line, so that every line a log collector reads is JSON."""
    if fmt == "json":
        log.critical("%s", sentence)
    else:
        print(f"error: {sentence}", file=sys.stderr)


def _add_common(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--config", type=Path, default=default, help="a TOML config file")
    _add_logging(parser, default)
    parser.add_argument(
        "--model", default=default, help="the default model's name (from the config)"
    )


def _add_logging(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        default=default,
        help="logging level",
    )
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=default,
        help="log lines as text or one JSON object each",
    )


#: The subcommands python -m bot has itself; a plugin's may not take these names.
BUILT_IN = ("run", "chat", "serve", "store")


def plugin_subcommands(argv: Sequence[str] | None) -> Subcommands:
    """The subcommands of the plugins the config allows. Read before the command line is parsed
    (it names them), so with the config file alone: a config that does not load leaves the
    built-in plugins, and the real load reports its fault."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--config", type=Path)
    known, _ = early.parse_known_args(argv)
    try:
        config = load_config(known.config, os.environ, {})
    except CharbotError:
        config = Config()
    plugins = config.plugins
    allowed = allowed_plugins(list(plugins.enabled), plugins.entry_points)
    found = discover(allowed.values(), BUILT_IN)
    modules = {source.module for source in allowed.values()}
    off = [module for module in DEFAULT_PLUGINS if module not in modules]
    left_out(found, allowed_plugins(off, use_entry_points=False).values())
    return found


def parse_args(
    argv: Sequence[str] | None, plugins: Subcommands | None = None
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="charbot: a Discord bot that writes like the text it was trained on.",
    )
    _add_common(parser, None)
    # The same options after the command (`chat --config f.toml`); SUPPRESS keeps a command
    # from resetting what was given before it.
    common = argparse.ArgumentParser(add_help=False)
    _add_common(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", parents=[common], help="run the Discord bot (needs DISCORD_TOKEN)")
    run.add_argument(
        "--sync-global", action="store_true", help="sync slash commands globally on start"
    )
    run.add_argument(
        "--shard-count",
        type=int,
        metavar="N",
        help="total shards across every process (default: Discord's recommendation)",
    )
    run.add_argument(
        "--shard-ids", metavar="0,1", help="this process's shards, comma-separated (default: all)"
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve /metrics, /healthz and /readyz on this port (0: off, the default)",
    )
    sub.add_parser("chat", parents=[common], help="chat with the model in this terminal")
    store = sub.add_parser("store", help="manage the store (settings, state, records)")
    store_sub = store.add_subparsers(dest="store_command", required=True)
    copy = store_sub.add_parser(
        "copy",
        help="copy everything a store keeps into another (idempotent); a relative SQLite "
        "path is in CHARBOT_DATA_DIR",
    )
    copy.add_argument("--from", dest="source", required=True, metavar="URL", help="read here")
    copy.add_argument("--to", dest="target", required=True, metavar="URL", help="write here")
    _add_logging(copy, argparse.SUPPRESS)
    serving_cli.add_parser(sub)
    # Every command takes the log options after its name, as `run` and `chat` do.
    _add_logging(sub.choices["serve"], argparse.SUPPRESS)
    for subcommand in plugins.all() if plugins is not None else []:
        added = sub.add_parser(subcommand.name, parents=[common], help=subcommand.help)
        if subcommand.add_options is not None:
            subcommand.add_options(added)
        added.set_defaults(plugin_subcommand=subcommand)
    return parser.parse_args(argv)


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if args.log_level:
        overrides["logging.level"] = args.log_level
    overrides["logging.format"] = args.log_format
    overrides["metrics.port"] = getattr(args, "metrics_port", None)
    if args.model:
        overrides["models.default"] = args.model
    if getattr(args, "sync_global", False):
        overrides["discord.sync_global"] = True
    overrides["discord.shard_count"] = getattr(args, "shard_count", None)
    overrides["discord.shard_ids"] = getattr(args, "shard_ids", None)
    return overrides


async def run_discord(config: Config) -> int:
    token = config.discord.token
    if not token:
        report("DISCORD_TOKEN is not set; `python -m bot chat` needs none.", config.logging.format)
        return 2
    point_discord_at(config.discord.api_base, config.discord.gateway_url)
    bot = await build_bot(config)
    return await serve(bot, token)


async def serve(bot: CharBot, token: str) -> int:
    """Run until closed; SIGINT and SIGTERM shut down gracefully (see `CharBot.close`)."""
    loop = asyncio.get_running_loop()
    fmt = bot.config.logging.format
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _shutdown, bot, sig)
    try:
        async with bot:
            await bot.start(token)
        # start() returns once the gateway is closed, while the shutdown sequence may still be
        # closing the models and the store: wait for all of it.
        await bot.close()
    except discord.LoginFailure:
        # discord.py's message is safe, but the token itself is never echoed.
        report("Discord refused the token in DISCORD_TOKEN (401).", fmt)
        return 1
    except discord.PrivilegedIntentsRequired as exc:
        report(fatal_close(4014, exc.shard_id), fmt)
        return 1
    except discord.ConnectionClosed as exc:
        report(fatal_close(exc.code, exc.shard_id), fmt)
        return 1
    except (aiohttp.ClientError, OSError, discord.GatewayNotFound) as exc:
        report(f"cannot reach Discord: {type(exc).__name__}.", fmt)
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


def _shutdown(bot: CharBot, sig: signal.Signals) -> None:
    log.info("received %s: shutting down", sig.name)
    asyncio.get_running_loop().create_task(bot.close())


async def run_chat(config: Config) -> int:
    services = await build_services(config)
    try:
        return await run_console(services)
    finally:
        await services.close()


async def run_plugin_subcommand(
    subcommand: Subcommand, args: argparse.Namespace, config: Config
) -> int:
    """A plugin's subcommand, with the services built from the config and every plugin's
    `register` done; no model is loaded unless the subcommand loads them."""
    services = await build_services(config)
    try:
        services.register_plugins()
        return await subcommand.run(args, services)
    finally:
        await services.close()


async def run_store_copy(args: argparse.Namespace) -> int:
    print(await copy_store(args.source, args.target))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv, plugin_subcommands(argv))
    except SystemExit as exc:  # argparse has printed its usage and one-line error (or --help)
        return exc.code if isinstance(exc.code, int) else 2
    fmt: LogFormat = "text"
    try:
        if args.command == "store":
            # Needs no config: the two stores are named on the command line.
            fmt = args.log_format or "text"
            configure_logging(args.log_level or "WARNING", fmt)
            return asyncio.run(run_store_copy(args))
        config = load_config(args.config, os.environ, overrides_from(args))
        command = args.command or ("run" if config.discord.token else "chat")
        subcommand: Subcommand | None = getattr(args, "plugin_subcommand", None)
        # The chat and the plugins' subcommands share the terminal with their user: only
        # warnings, unless asked for more.
        quiet = (command == "chat" or subcommand is not None) and not args.log_level
        fmt = config.logging.format
        configure_logging("WARNING" if quiet else config.logging.level, fmt)
        if quiet:
            # discord.py warns about voice support at start-up: noise in a text chat.
            logging.getLogger("discord").setLevel(logging.ERROR)
        if command == "serve":
            return serving_cli.run_serve(config, args)
        if subcommand is not None:
            return asyncio.run(run_plugin_subcommand(subcommand, args, config))
        runner = run_discord if command == "run" else run_chat
        return asyncio.run(runner(config))
    except CharbotError as exc:
        report(str(exc), fmt)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (`chat | head -1`): stop quietly, as `cat` does, and
        # point stdout at /dev/null so that Python's flush at exit does not fail again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
