"""Discord's REST API for a command-line tool: discord.py's HTTP client, logged in with the
config's token at the config's API base, without a gateway connection. It waits out rate limits
(429 with `retry_after`) as the bot does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import discord
from discord.http import HTTPClient

from bot.config import TOKEN_ENV, Config
from bot.discord.app import point_discord_at
from bot.errors import CharbotError


@contextlib.asynccontextmanager
async def discord_rest(config: Config) -> AsyncIterator[HTTPClient]:
    """The logged-in client; a missing or refused token, or Discord out of reach, is one
    sentence (a CharbotError)."""
    token = config.discord.token
    if not token:
        raise CharbotError(f"{TOKEN_ENV} is not set: give the bot's token, as for `run`.")
    point_discord_at(config.discord.api_base, None)
    http = HTTPClient(asyncio.get_running_loop())
    try:
        try:
            await http.static_login(token)
        except discord.LoginFailure as exc:
            # discord.py's message is safe, but the token itself is never echoed.
            raise CharbotError(f"Discord refused the token in {TOKEN_ENV} (401).") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise CharbotError(f"Cannot reach Discord: {type(exc).__name__}.") from exc
        yield http
    finally:
        await http.close()
