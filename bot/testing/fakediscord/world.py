"""The fake guild: users, roles, channels, permissions and their Discord payloads.

Ids are fixed small snowflakes so tests can name them; messages and interactions get time-based
ids from :class:`~bot.testing.fakediscord.wire.Snowflakes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .wire import JSON


class Perm:
    """Permission bits (https://discord.com/developers/docs/topics/permissions)."""

    CREATE_INSTANT_INVITE = 1 << 0
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CHANGE_NICKNAME = 1 << 26
    USE_APPLICATION_COMMANDS = 1 << 31
    SEND_MESSAGES_IN_THREADS = 1 << 38
    # Administrators and the guild owner get every bit Discord defines.
    ALL = (1 << 51) - 1

    EVERYONE_DEFAULT = (
        CREATE_INSTANT_INVITE
        | ADD_REACTIONS
        | VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | USE_EXTERNAL_EMOJIS
        | CHANGE_NICKNAME
        | USE_APPLICATION_COMMANDS
        | SEND_MESSAGES_IN_THREADS
    )


class Intent:
    """Gateway intent bits; the privileged ones must be enabled for the application."""

    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_PRESENCES = 1 << 8
    GUILD_MESSAGES = 1 << 9
    DIRECT_MESSAGES = 1 << 12
    MESSAGE_CONTENT = 1 << 15
    PRIVILEGED = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT


class ChannelType:
    """Channel type numbers (https://discord.com/developers/docs/resources/channel)."""

    TEXT = 0
    VOICE = 2
    CATEGORY = 4
    ANNOUNCEMENT = 5
    ANNOUNCEMENT_THREAD = 10
    PUBLIC_THREAD = 11
    PRIVATE_THREAD = 12
    FORUM = 15
    THREADS = frozenset({ANNOUNCEMENT_THREAD, PUBLIC_THREAD, PRIVATE_THREAD})


class AppFlag:
    """Application flags (``GET /applications/@me`` ``flags``) that mirror the privileged
    intents enabled in the developer portal; a bot in fewer than 100 guilds gets the
    ``_LIMITED`` ones."""

    GATEWAY_PRESENCE = 1 << 12
    GATEWAY_PRESENCE_LIMITED = 1 << 13
    GATEWAY_GUILD_MEMBERS = 1 << 14
    GATEWAY_GUILD_MEMBERS_LIMITED = 1 << 15
    GATEWAY_MESSAGE_CONTENT = 1 << 18
    GATEWAY_MESSAGE_CONTENT_LIMITED = 1 << 19


def application_flags(privileged_intents: int) -> int:
    """The ``_LIMITED`` flag of each privileged intent enabled in the portal."""
    flags = 0
    if privileged_intents & Intent.GUILD_PRESENCES:
        flags |= AppFlag.GATEWAY_PRESENCE_LIMITED
    if privileged_intents & Intent.GUILD_MEMBERS:
        flags |= AppFlag.GATEWAY_GUILD_MEMBERS_LIMITED
    if privileged_intents & Intent.MESSAGE_CONTENT:
        flags |= AppFlag.GATEWAY_MESSAGE_CONTENT_LIMITED
    return flags


JOINED_AT = "2024-01-01T00:00:00+00:00"


@dataclass(frozen=True)
class FakeUser:
    id: int
    username: str
    bot: bool = False
    global_name: str | None = None

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def payload(self) -> JSON:
        return {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "bot": self.bot,
            "system": False,
            "public_flags": 0,
        }


@dataclass(frozen=True)
class FakeRole:
    id: int
    name: str
    permissions: int
    position: int = 0
    bot_id: int | None = None  # a bot's managed role

    @property
    def mention(self) -> str:
        return f"<@&{self.id}>"

    def payload(self) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": self.bot_id is not None,
            "mentionable": False,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }
        if self.bot_id is not None:
            data["tags"] = {"bot_id": str(self.bot_id)}
        return data


@dataclass(frozen=True)
class FakeMember:
    user: FakeUser
    role_ids: tuple[int, ...] = ()
    nick: str | None = None

    def payload(self, *, with_user: bool = True, permissions: int | None = None) -> JSON:
        data: JSON = {
            "roles": [str(r) for r in self.role_ids],
            "nick": self.nick,
            "avatar": None,
            "joined_at": JOINED_AT,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.user.payload()
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data


@dataclass
class FakeChannel:
    """A guild channel, or a thread (``parent_id`` set, ``type`` in ``ChannelType.THREADS``;
    a forum's posts are public threads). Threads take their parent's permissions."""

    id: int
    name: str
    position: int = 0
    type: int = ChannelType.TEXT
    topic: str | None = None
    # target id (role or member) -> (allow, deny); mutate before the bot connects.
    overwrites: dict[int, tuple[int, int]] = field(default_factory=dict)
    parent_id: int | None = None  # a category for channels, the channel for threads
    owner_id: int | None = None  # threads: who started it
    archived: bool = False  # threads
    archive_timestamp: str = JOINED_AT  # threads: when it was archived (or last unarchived)

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    @property
    def is_thread(self) -> bool:
        return self.type in ChannelType.THREADS


@dataclass
class FakeGuild:
    id: int
    name: str
    owner_id: int
    roles: list[FakeRole]
    members: list[FakeMember]
    channels: list[FakeChannel]
    threads: list[FakeChannel] = field(default_factory=list)  # active and archived

    def member(self, user_id: int) -> FakeMember | None:
        return next((m for m in self.members if m.user.id == user_id), None)

    def role(self, role_id: int) -> FakeRole | None:
        return next((r for r in self.roles if r.id == role_id), None)

    def channel(self, channel_id: int) -> FakeChannel | None:
        """A channel or a thread of this guild."""
        found = next((c for c in self.channels if c.id == channel_id), None)
        return found or next((t for t in self.threads if t.id == channel_id), None)

    def add_channel(
        self,
        channel_id: int,
        name: str,
        *,
        type_: int = ChannelType.TEXT,
        topic: str | None = None,
        parent_id: int | None = None,
    ) -> FakeChannel:
        """A new channel (a category, text, announcement or forum channel); before the bot
        connects, or it will not know of it."""
        position = sum(1 for c in self.channels if c.type == type_)
        channel = FakeChannel(
            channel_id, name, position=position, type=type_, topic=topic, parent_id=parent_id
        )
        self.channels.append(channel)
        return channel

    def add_thread(
        self,
        thread_id: int,
        parent: FakeChannel,
        name: str,
        *,
        owner: FakeUser,
        archived: bool = False,
        archive_timestamp: str = JOINED_AT,
    ) -> FakeChannel:
        """A public thread of ``parent`` (an announcement thread under an announcement channel;
        a post under a forum)."""
        kind = (
            ChannelType.ANNOUNCEMENT_THREAD
            if parent.type == ChannelType.ANNOUNCEMENT
            else ChannelType.PUBLIC_THREAD
        )
        thread = FakeChannel(
            thread_id,
            name,
            type=kind,
            parent_id=parent.id,
            owner_id=owner.id,
            archived=archived,
            archive_timestamp=archive_timestamp,
        )
        self.threads.append(thread)
        return thread

    def base_permissions(self, user_id: int) -> int:
        """Guild-level permissions: @everyone plus the member's roles; owner/admin get all."""
        member = self.member(user_id)
        if member is None:
            return 0
        if user_id == self.owner_id:
            return Perm.ALL
        everyone = self.role(self.id)
        perms = everyone.permissions if everyone else 0
        for role_id in member.role_ids:
            role = self.role(role_id)
            if role is not None:
                perms |= role.permissions
        return Perm.ALL if perms & Perm.ADMINISTRATOR else perms

    def channel_permissions(self, user_id: int, channel_id: int) -> int:
        """Discord's overwrite order: @everyone, then all role overwrites, then the member's."""
        perms = self.base_permissions(user_id)
        member = self.member(user_id)
        channel = self.channel(channel_id)
        if channel is not None and channel.is_thread and channel.parent_id is not None:
            channel = self.channel(channel.parent_id)
        if member is None or channel is None or perms == Perm.ALL:
            return perms

        def apply(perms: int, target: int) -> int:
            allow, deny = channel.overwrites.get(target, (0, 0))
            return (perms & ~deny) | allow

        perms = apply(perms, self.id)
        role_allow = role_deny = 0
        for role_id in member.role_ids:
            allow, deny = channel.overwrites.get(role_id, (0, 0))
            role_allow |= allow
            role_deny |= deny
        perms = (perms & ~role_deny) | role_allow
        perms = apply(perms, user_id)
        # Without View Channel nothing else applies.
        return perms if perms & Perm.VIEW_CHANNEL else 0

    def channel_payload(self, channel: FakeChannel, *, for_user: int | None = None) -> JSON:
        data: JSON = {
            "id": str(channel.id),
            "type": channel.type,
            "guild_id": str(self.id),
            "name": channel.name,
            "position": channel.position,
            "topic": channel.topic,
            "nsfw": False,
            "parent_id": str(channel.parent_id) if channel.parent_id is not None else None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "flags": 0,
            "permission_overwrites": [
                {
                    "id": str(target),
                    "type": 0 if self.role(target) is not None else 1,
                    "allow": str(allow),
                    "deny": str(deny),
                }
                for target, (allow, deny) in channel.overwrites.items()
            ],
        }
        if channel.is_thread:
            for key in ("position", "topic", "permission_overwrites"):
                data.pop(key)
            data["owner_id"] = str(channel.owner_id)
            data["message_count"] = data["member_count"] = 0
            data["thread_metadata"] = {
                "archived": channel.archived,
                "auto_archive_duration": 1440,
                "archive_timestamp": channel.archive_timestamp,
                "locked": False,
                "create_timestamp": JOINED_AT,
            }
        elif channel.type == ChannelType.VOICE:
            data.update(bitrate=64000, user_limit=0, rtc_region=None, video_quality_mode=1)
        elif channel.type == ChannelType.FORUM:
            data.update(available_tags=[], default_reaction_emoji=None, default_sort_order=None)
            data.update(default_forum_layout=0, default_thread_rate_limit_per_user=0)
        if for_user is not None:
            # Interaction payloads carry the invoking user's computed permissions.
            data["permissions"] = str(self.channel_permissions(for_user, channel.id))
        return data

    def payload(self, *, members: list[FakeMember]) -> JSON:
        """A GUILD_CREATE payload; Discord only sends some members (see Gateway)."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "features": [],
            "roles": [r.payload() for r in self.roles],
            "emojis": [],
            "stickers": [],
            "joined_at": JOINED_AT,
            "large": False,
            "unavailable": False,
            "member_count": len(self.members),
            "members": [m.payload() for m in members],
            "channels": [self.channel_payload(c) for c in self.channels],
            "threads": [self.channel_payload(t) for t in self.threads if not t.archived],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }


def shard_of(guild_id: int, shard_count: int) -> int:
    """Discord's rule: the shard that receives a guild's events."""
    return (guild_id >> 22) % shard_count


@dataclass
class World:
    """Everything the fake Discord knows: one application, its bot, its guilds and their people.

    ``guild``, ``general`` and ``random`` are the first guild and its channels; ``guilds`` holds
    every guild (see :func:`default_world`'s ``guilds``). The people are members of every guild.
    """

    application_id: int
    bot: FakeUser
    owner: FakeUser  # application owner and guild owner; has the Admin role too
    moderator: FakeUser  # has Manage Channels
    member: FakeUser  # plain member: no Manage Channels
    other_bot: FakeUser
    guild: FakeGuild
    general: FakeChannel
    random: FakeChannel
    guilds: list[FakeGuild] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.guilds:
            self.guilds = [self.guild]

    @property
    def users(self) -> list[FakeUser]:
        return [m.user for m in self.guild.members]

    def user(self, user_id: int) -> FakeUser | None:
        return next((u for u in self.users if u.id == user_id), None)

    def guild_by_id(self, guild_id: int) -> FakeGuild | None:
        return next((g for g in self.guilds if g.id == guild_id), None)

    def guild_of_channel(self, channel_id: int) -> FakeGuild | None:
        return next((g for g in self.guilds if g.channel(channel_id) is not None), None)

    def guilds_of_shard(self, shard_id: int, shard_count: int) -> list[FakeGuild]:
        return [g for g in self.guilds if shard_of(g.id, shard_count) == shard_id]


#: The first guild's id; guild ``i`` is ``FIRST_GUILD_ID + (i << 22)``, so consecutive guilds
#: land on consecutive shards whatever the shard count.
FIRST_GUILD_ID = 1_000_000_000_000_000_001
APPLICATION_ID = 1_000_000_000_000_000_100


def _guild(index: int, bot: FakeUser, owner: FakeUser, people: list[FakeUser]) -> FakeGuild:
    """Guild ``index`` with its roles and two text channels, ``general`` then ``random``.

    Guild 0 keeps the fixed ids of the single-guild world; the others shift them by index.
    """
    moderator, member, other_bot = people
    guild_id = FIRST_GUILD_ID + (index << 22)
    shift = index * 1000
    everyone = FakeRole(guild_id, "@everyone", Perm.EVERYONE_DEFAULT, position=0)
    admin = FakeRole(1_000_000_000_000_000_301 + shift, "Admin", Perm.ADMINISTRATOR, position=3)
    mods = FakeRole(
        1_000_000_000_000_000_302 + shift, "Moderators", Perm.MANAGE_CHANNELS, position=2
    )
    bot_role = FakeRole(
        1_000_000_000_000_000_303 + shift,
        "charbot",
        Perm.EVERYONE_DEFAULT | Perm.MANAGE_MESSAGES,
        position=1,
        bot_id=bot.id,
    )
    other_bot_role = FakeRole(
        1_000_000_000_000_000_304 + shift,
        "otherbot",
        Perm.EVERYONE_DEFAULT,
        position=1,
        bot_id=other_bot.id,
    )
    general = FakeChannel(1_000_000_000_000_000_401 + shift, "general", position=0, topic="chat")
    random = FakeChannel(1_000_000_000_000_000_402 + shift, "random", position=1)
    name = "Charbot Test Guild" + (f" {index}" if index else "")
    return FakeGuild(
        id=guild_id,
        name=name,
        owner_id=owner.id,
        roles=[everyone, admin, mods, bot_role, other_bot_role],
        members=[
            FakeMember(bot, (bot_role.id,)),
            FakeMember(owner, (admin.id,)),
            FakeMember(moderator, (mods.id,)),
            FakeMember(member),
            FakeMember(other_bot, (other_bot_role.id,)),
        ],
        channels=[general, random],
    )


def default_world(guilds: int = 1) -> World:
    """``guilds`` guilds (one by default), each with two text channels and the same five
    members (see the table in ``__init__``)."""
    if guilds < 1:
        raise ValueError("a world needs at least one guild")
    bot = FakeUser(APPLICATION_ID, "charbot", bot=True)
    owner = FakeUser(1_000_000_000_000_000_201, "owner", global_name="The Owner")
    moderator = FakeUser(1_000_000_000_000_000_202, "moderator", global_name="Mod")
    member = FakeUser(1_000_000_000_000_000_203, "member", global_name="Just A Member")
    other_bot = FakeUser(1_000_000_000_000_000_204, "otherbot", bot=True)
    all_guilds = [_guild(i, bot, owner, [moderator, member, other_bot]) for i in range(guilds)]
    first = all_guilds[0]
    return World(
        application_id=APPLICATION_ID,
        bot=bot,
        owner=owner,
        moderator=moderator,
        member=member,
        other_bot=other_bot,
        guild=first,
        general=first.channels[0],
        random=first.channels[1],
        guilds=all_guilds,
    )
