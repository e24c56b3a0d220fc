"""How a Discord message's content becomes model text: the one rule the exporter trains with
(`exporter/discord_export.py`) and the bot prompts with ("Continue with charbot" on a message).

Discord writes mentions as ids and custom emoji with theirs; a model trained on exports never
saw either. A user mention `<@123>` (or `<@!123>`) becomes `@name`, a role `<@&456>` becomes
`@role name`, a channel `<#789>` becomes `#channel-name`, each with the name the caller knows for
the id, else a neutral `@user`, `@role` or `#channel`; a custom emoji `<:pepe:123>` (animated:
`<a:pepe:123>`) becomes `:pepe:`. Nothing else changes: the caller decides about line breaks,
URLs and whose names may appear.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

USER_MENTION = re.compile(r"<@!?(\d+)>")
ROLE_MENTION = re.compile(r"<@&(\d+)>")
CHANNEL_MENTION = re.compile(r"<#(\d+)>")
CUSTOM_EMOJI = re.compile(r"<a?:(\w+):\d+>")


@dataclass(frozen=True)
class DiscordNames:
    """The names a message's ids stand for, by id (as text): users (the name the server shows),
    roles and channels."""

    users: Mapping[str, str] = field(default_factory=dict)
    roles: Mapping[str, str] = field(default_factory=dict)
    channels: Mapping[str, str] = field(default_factory=dict)


def message_text(content: str, names: DiscordNames | None = None) -> str:
    """`content` with readable names for its mentions and `:name:` for its custom emoji."""
    names = names or DiscordNames()
    text = USER_MENTION.sub(lambda m: "@" + names.users.get(m.group(1), "user"), content)
    text = ROLE_MENTION.sub(lambda m: "@" + names.roles.get(m.group(1), "role"), text)
    text = CHANNEL_MENTION.sub(lambda m: "#" + names.channels.get(m.group(1), "channel"), text)
    return CUSTOM_EMOJI.sub(lambda m: f":{m.group(1)}:", text)
