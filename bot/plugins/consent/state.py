"""Consent as the store keeps it, in its scoped state (every driver alike, copied by
`python -m bot store copy`):

- per guild, `training.allowed`: the ids of the channels that may train a model, ascending;
- per user, `privacy.opted_out`: when they opted out (an ISO 8601 time, UTC). A user's state
  holds across every guild, so one opt-out covers them all.

Every write is one store operation that has committed when it returns (the command answers
after it), and changes to a guild's list are atomic read-modify-writes, so two admins allowing
channels at once both count.
"""

from __future__ import annotations

import datetime
from typing import Any

from bot.api import Scope, Store

ALLOWED = "training.allowed"
OPTED_OUT = "privacy.opted_out"


async def allowed_channels(store: Store, guild_id: int) -> list[int]:
    """The guild's channels allowed for training, ascending."""
    return _ids(await store.get_state(Scope.GUILD, guild_id, ALLOWED))


async def allow(store: Store, guild_id: int, channel_id: int) -> bool:
    """Allow a channel; False when it already was."""
    before = await allowed_channels(store, guild_id)
    await store.update_state(
        Scope.GUILD, guild_id, ALLOWED, lambda ids: sorted({*_ids(ids), channel_id})
    )
    return channel_id not in before


async def deny(store: Store, guild_id: int, channel_id: int) -> bool:
    """No longer allow a channel; False when it was not allowed."""
    before = await allowed_channels(store, guild_id)
    await store.update_state(
        Scope.GUILD,
        guild_id,
        ALLOWED,
        lambda ids: sorted(set(_ids(ids)) - {channel_id}) or None,
    )
    return channel_id in before


async def opted_out_since(store: Store, user_id: int) -> str | None:
    """When the user opted out (ISO 8601), or None when they have not."""
    value = await store.get_state(Scope.USER, user_id, OPTED_OUT)
    return str(value) if value else None


async def opt_out(store: Store, user_id: int) -> str:
    """Opt the user out of every export (keeping the first time they did); when, ISO 8601."""
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    since = await store.update_state(Scope.USER, user_id, OPTED_OUT, lambda value: value or now)
    return str(since)


async def opt_in(store: Store, user_id: int) -> bool:
    """Undo an opt-out; False when the user had not opted out."""
    was = await opted_out_since(store, user_id) is not None
    await store.delete_state(Scope.USER, user_id, OPTED_OUT)
    return was


async def opted_out(store: Store) -> list[int]:
    """Every user who opted out, ascending."""
    return sorted(await store.state_holders(Scope.USER, OPTED_OUT))


def _ids(value: Any) -> list[int]:
    return sorted({int(i) for i in value}) if isinstance(value, list) else []
