"""Application commands: the schema the bot synced, and interactions built only from it.

Discord's client never sends an option the command doesn't declare, a value of the wrong type,
or a number outside ``min_value``/``max_value``; so :func:`build_command_data` refuses to build
such an interaction and raises :class:`InvocationError` in the test instead.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .wire import JSON, Snowflakes
from .world import FakeChannel, FakeGuild, FakeMember, FakeRole, FakeUser

SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER = 3, 4, 5, 6, 7, 8, 9, 10
ATTACHMENT = 11
OPTION_TYPE_NAMES = {
    SUB_COMMAND: "subcommand",
    SUB_COMMAND_GROUP: "subcommand group",
    STRING: "string",
    INTEGER: "integer",
    BOOLEAN: "boolean",
    USER: "user",
    CHANNEL: "channel",
    ROLE: "role",
    MENTIONABLE: "mentionable",
    NUMBER: "number",
    ATTACHMENT: "attachment",
}
CHAT_INPUT = 1
NAME_RE = re.compile(r"^[-_a-z0-9]{1,32}$")


class InvocationError(AssertionError):
    """The test asked for an interaction Discord would never send to this bot."""


class CommandNotRegistered(InvocationError):
    """No synced command (or subcommand) has this name."""


class InvalidOption(InvocationError):
    """An option is unknown, missing, of the wrong type, or out of its declared bounds."""


class CommandNotPermitted(InvocationError):
    """The user could not see the command (``default_member_permissions``/``contexts``)."""


class SchemaError(ValueError):
    """A synced command Discord would refuse (400 Invalid Form Body); ``field`` names where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _check_options(options: list[JSON], where: str, depth: int) -> None:
    if len(options) > 25:
        raise SchemaError(f"{where}.options", "Must be 25 or fewer in length.")
    seen: set[str] = set()
    optional_seen = False
    for i, opt in enumerate(options):
        at = f"{where}.options.{i}"
        name = opt.get("name", "")
        if not NAME_RE.match(name):
            raise SchemaError(f"{at}.name", f"Invalid option name {name!r}.")
        if name in seen:
            raise SchemaError(f"{at}.name", f"Duplicate option name {name!r}.")
        seen.add(name)
        if not 1 <= len(opt.get("description", "")) <= 100:
            raise SchemaError(f"{at}.description", "Must be between 1 and 100 in length.")
        kind = opt.get("type")
        if kind in (SUB_COMMAND, SUB_COMMAND_GROUP):
            if depth >= (2 if kind == SUB_COMMAND_GROUP else 3):
                raise SchemaError(f"{at}.type", "Subcommands nested too deeply.")
            _check_options(opt.get("options") or [], at, depth + 1)
            continue
        if kind not in OPTION_TYPE_NAMES:
            raise SchemaError(f"{at}.type", f"Unknown option type {kind!r}.")
        if opt.get("required"):
            if optional_seen:
                raise SchemaError(
                    f"{at}.required", "Required options must be placed before non-required options."
                )
        else:
            optional_seen = True
        if len(opt.get("choices") or []) > 25:
            raise SchemaError(f"{at}.choices", "Must be 25 or fewer in length.")
        low, high = opt.get("min_value"), opt.get("max_value")
        if low is not None and high is not None and low > high:
            raise SchemaError(f"{at}.min_value", "min_value must be <= max_value.")


def validate_command(command: JSON) -> None:
    """The subset of Discord's schema checks that catches real bot mistakes."""
    name = command.get("name", "")
    kind = command.get("type", CHAT_INPUT)
    if kind == CHAT_INPUT:
        if not NAME_RE.match(name):
            raise SchemaError("name", f"Invalid command name {name!r}.")
        if not 1 <= len(command.get("description", "")) <= 100:
            raise SchemaError("description", "Must be between 1 and 100 in length.")
        _check_options(command.get("options") or [], "", 1)
    elif not 1 <= len(name) <= 32:
        raise SchemaError("name", "Must be between 1 and 32 in length.")


class CommandRegistry:
    """Synced commands per scope: a guild id, or ``None`` for global commands."""

    def __init__(self, application_id: int, snowflakes: Snowflakes) -> None:
        self._application_id = application_id
        self._snowflakes = snowflakes
        self._scopes: dict[int | None, list[JSON]] = {}
        self._ids: dict[tuple[int | None, int, str], int] = {}  # ids survive re-syncs
        self._versions = 0

    @property
    def synced(self) -> dict[int | None, list[JSON]]:
        return {scope: copy.deepcopy(cmds) for scope, cmds in self._scopes.items()}

    def commands_in(self, guild_id: int | None) -> list[JSON]:
        return copy.deepcopy(self._scopes.get(guild_id, []))

    def _stored(self, guild_id: int | None, command: JSON) -> JSON:
        validate_command(command)
        kind = int(command.get("type", CHAT_INPUT))
        key = (guild_id, kind, command["name"])
        command_id = self._ids.setdefault(key, self._snowflakes.next())
        self._versions += 1
        stored = copy.deepcopy(command)
        permissions = stored.get("default_member_permissions")
        stored.update(
            id=str(command_id),
            application_id=str(self._application_id),
            version=str(self._versions),
            type=kind,
            default_member_permissions=None if permissions is None else str(permissions),
            nsfw=bool(stored.get("nsfw", False)),
        )
        stored.setdefault("description", "")
        stored.setdefault("options", [])
        if guild_id is not None:
            stored["guild_id"] = str(guild_id)
        return stored

    def put(self, guild_id: int | None, commands: Sequence[JSON]) -> list[JSON]:
        """Bulk overwrite, as ``tree.sync()`` does; raises :class:`SchemaError` like Discord."""
        keys = [(int(c.get("type", CHAT_INPUT)), c.get("name")) for c in commands]
        if len(set(keys)) != len(keys):
            raise SchemaError("name", "Application command names must be unique.")
        if sum(1 for kind, _ in keys if kind == CHAT_INPUT) > 100:
            raise SchemaError("_", "Too many chat input commands (max 100).")
        stored = [self._stored(guild_id, c) for c in commands]
        self._scopes[guild_id] = stored
        return copy.deepcopy(stored)

    def upsert(self, guild_id: int | None, command: JSON) -> JSON:
        stored = self._stored(guild_id, command)
        scope = [c for c in self._scopes.get(guild_id, []) if c["id"] != stored["id"]]
        self._scopes[guild_id] = [*scope, stored]
        return copy.deepcopy(stored)

    def get(self, guild_id: int | None, command_id: int) -> JSON | None:
        found = next(
            (c for c in self._scopes.get(guild_id, []) if c["id"] == str(command_id)), None
        )
        return copy.deepcopy(found) if found else None

    def edit(self, guild_id: int | None, command_id: int, patch: JSON) -> JSON | None:
        current = self.get(guild_id, command_id)
        if current is None:
            return None
        current.update(patch)
        return self.upsert(guild_id, current)

    def delete(self, guild_id: int | None, command_id: int) -> bool:
        scope = self._scopes.get(guild_id, [])
        kept = [c for c in scope if c["id"] != str(command_id)]
        self._scopes[guild_id] = kept
        return len(kept) != len(scope)

    def find(self, name: str, guild_id: int) -> tuple[JSON, int | None]:
        """The chat-input command a user in ``guild_id`` sees: guild commands, then global."""
        for scope in (guild_id, None):
            for command in self._scopes.get(scope, []):
                if command["name"] == name and command["type"] == CHAT_INPUT:
                    return command, scope
        known = sorted(c["name"] for scope in (guild_id, None) for c in self._scopes.get(scope, []))
        raise CommandNotRegistered(
            f"/{name} is not registered for guild {guild_id} or globally; synced: {known}"
        )


@dataclass
class Resolved:
    """The ``resolved`` map Discord attaches for user/channel/role options."""

    guild: FakeGuild
    invoker_id: int
    users: JSON
    members: JSON
    roles: JSON
    channels: JSON

    @classmethod
    def empty(cls, guild: FakeGuild, invoker_id: int) -> Resolved:
        return cls(guild, invoker_id, {}, {}, {}, {})

    def add_user(self, user: FakeUser) -> None:
        self.users[str(user.id)] = user.payload()
        member = self.guild.member(user.id)
        if member is not None:
            perms = self.guild.base_permissions(user.id)
            self.members[str(user.id)] = member.payload(with_user=False, permissions=perms)

    def payload(self) -> JSON:
        parts = {
            "users": self.users,
            "members": self.members,
            "roles": self.roles,
            "channels": self.channels,
        }
        return {key: value for key, value in parts.items() if value}


def _snowflake_value(
    option: JSON, value: object, resolved: Resolved, guild: FakeGuild
) -> str | None:
    """The id Discord would send for a user/channel/role/mentionable value, or None if wrong."""
    kind = option["type"]
    user: FakeUser | None = None
    if isinstance(value, FakeMember):
        user = value.user
    elif isinstance(value, FakeUser):
        user = value
    if kind in (USER, MENTIONABLE) and user is not None:
        resolved.add_user(user)
        return str(user.id)
    if kind in (ROLE, MENTIONABLE) and isinstance(value, FakeRole):
        resolved.roles[str(value.id)] = value.payload()
        return str(value.id)
    if kind == CHANNEL and isinstance(value, FakeChannel):
        types = option.get("channel_types")
        if types and value.type not in types:
            return None
        # Resolved channels carry the invoking user's permissions in them.
        data = guild.channel_payload(value, for_user=resolved.invoker_id)
        resolved.channels[str(value.id)] = data
        return str(value.id)
    return None


def _check_value(option: JSON, value: object, resolved: Resolved, guild: FakeGuild) -> object:
    """Return the JSON value for ``option`` or raise :class:`InvalidOption`."""
    name, kind = option["name"], option["type"]
    type_name = OPTION_TYPE_NAMES.get(kind, str(kind))

    def wrong(reason: str) -> InvalidOption:
        return InvalidOption(f"option {name!r} ({type_name}): {reason}, got {value!r}")

    if kind in (USER, CHANNEL, ROLE, MENTIONABLE):
        snowflake = _snowflake_value(option, value, resolved, guild)
        if snowflake is None:
            raise wrong("pass a FakeUser/FakeMember, FakeChannel or FakeRole of the right kind")
        return snowflake
    if kind == ATTACHMENT:
        raise wrong("attachment options are not supported by the fake")
    if kind == STRING:
        if not isinstance(value, str):
            raise wrong("expected str")
        low, high = option.get("min_length"), option.get("max_length")
        if (low is not None and len(value) < low) or (high is not None and len(value) > high):
            raise wrong(f"length must be within [{low}, {high}]")
    elif kind == INTEGER:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("expected int")
    elif kind == NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong("expected float")
    elif kind == BOOLEAN and not isinstance(value, bool):
        raise wrong("expected bool")
    if kind in (INTEGER, NUMBER):
        assert isinstance(value, int | float)
        low, high = option.get("min_value"), option.get("max_value")
        if (low is not None and value < low) or (high is not None and value > high):
            raise wrong(f"must be within [{low}, {high}]")
    choices = option.get("choices")
    if choices and value not in [c["value"] for c in choices]:
        raise wrong(f"must be one of {[c['value'] for c in choices]}")
    return value


def _leaf_options(
    schema: list[JSON],
    values: Mapping[str, object],
    resolved: Resolved,
    guild: FakeGuild,
    validate: bool = True,
) -> list[JSON]:
    declared = {opt["name"]: opt for opt in schema}
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise InvalidOption(f"unknown option(s) {unknown}; declared: {sorted(declared)}")
    built: list[JSON] = []
    for opt in schema:  # Discord sends options in declaration order
        if opt["name"] not in values:
            if opt.get("required"):
                raise InvalidOption(f"required option {opt['name']!r} is missing")
            continue
        raw = values[opt["name"]]
        # validate=False sends the value as given: what a broken or hostile client could send.
        value = _check_value(opt, raw, resolved, guild) if validate else raw
        built.append({"name": opt["name"], "type": opt["type"], "value": value})
    return built


def build_command_data(
    command: JSON,
    path: Sequence[str],
    values: Mapping[str, object],
    *,
    guild: FakeGuild,
    scope: int | None,
    invoker_id: int,
    validate: bool = True,
) -> JSON:
    """The ``data`` of an APPLICATION_COMMAND interaction for ``/command path... values``.

    ``validate=False`` skips the type, bounds and choices checks of the values (option names are
    still checked), to test how the bot handles what Discord's client would never send.
    """
    resolved = Resolved.empty(guild, invoker_id)
    options: list[JSON] = command.get("options") or []
    nesting: list[JSON] = []  # the subcommand/group option dicts, outermost first
    trail = [command["name"]]
    for part in path:
        sub = next(
            (
                o
                for o in options
                if o["name"] == part and o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)
            ),
            None,
        )
        if sub is None:
            raise CommandNotRegistered(f"/{' '.join(trail)} has no subcommand {part!r}")
        trail.append(part)
        nesting.append(sub)
        options = sub.get("options") or []
    if any(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in options):
        names = [o["name"] for o in options]
        raise CommandNotRegistered(f"/{' '.join(trail)} needs a subcommand: one of {names}")

    built = _leaf_options(options, values, resolved, guild, validate)
    for sub in reversed(nesting):
        built = [{"name": sub["name"], "type": sub["type"], "options": built}]
    data: JSON = {
        "id": command["id"],
        "name": command["name"],
        "type": CHAT_INPUT,
        "options": built,
    }
    if scope is not None:
        data["guild_id"] = str(scope)
    extra = resolved.payload()
    if extra:
        data["resolved"] = extra
    return data
