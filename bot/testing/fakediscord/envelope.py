"""The INTERACTION_CREATE payload around an interaction's ``data``, as Discord sends it in a guild
channel: slash commands, context menus and component presses share it."""

from __future__ import annotations

import secrets

from .commands import InvocationError
from .surface import Server
from .wire import JSON
from .world import FakeUser


def interaction_payload(
    server: Server,
    *,
    kind: int,
    data: JSON,
    user: FakeUser,
    channel_id: int,
    locale: str = "en-US",
) -> JSON:
    """An INTERACTION_CREATE payload around ``data``, as Discord sends it in a guild channel."""
    world = server.world
    guild = world.guild_of_channel(channel_id)
    member = None if guild is None else guild.member(user.id)
    channel = None if guild is None else guild.channel(channel_id)
    if guild is None or member is None or channel is None:
        raise InvocationError(f"{user.username} / channel {channel_id} is not in a guild")
    perms = guild.channel_permissions(user.id, channel_id)
    return {
        "id": str(server.snowflakes.next()),
        "application_id": str(world.application_id),
        "type": kind,
        "data": data,
        "guild_id": str(guild.id),
        "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
        "channel_id": str(channel_id),
        "channel": guild.channel_payload(channel, for_user=user.id),
        "member": member.payload(permissions=perms),
        "token": "fake-interaction-" + secrets.token_urlsafe(24),
        "version": 1,
        "app_permissions": str(guild.channel_permissions(world.bot.id, channel_id)),
        "locale": locale,
        "guild_locale": "en-US",
        "entitlements": [],
        "entitlement_sku_ids": [],
        "authorizing_integration_owners": {"0": str(guild.id)},
        "context": 0,
        "attachment_size_limit": 10 * 1024 * 1024,
    }
