"""Message components and message context menus: what the bot sends, and what users do with them.

- :func:`validate_components` answers Discord's 400 for the component mistakes bots make: more
  than 5 action rows or 5 buttons a row, a custom id over 100 characters or repeated, a label
  over 80, a link button with a custom id (or a button without one).
- :func:`press_interaction` builds a MESSAGE_COMPONENT interaction (type 3) carrying the message as
  the user's client shows it and the button's ``custom_id``; a button that is not on the message,
  or is disabled, cannot be pressed (:class:`~.commands.InvocationError`).
- :func:`message_command_interaction` builds a message context-menu interaction (an application
  command of type 3, with ``target_id`` and the resolved message).

Only component interactions may answer with UPDATE_MESSAGE (7), which edits the message the
component is on, or DEFERRED_UPDATE_MESSAGE (6), which edits nothing yet; either way
``@original`` then names that message for the bot's later edits (see ``interaction_routes``).
"""

from __future__ import annotations

import copy

from aiohttp import web

from .commands import CommandNotRegistered, InvalidOption, InvocationError
from .envelope import interaction_payload
from .records import InteractionHandle, RecordedMessage
from .surface import Server
from .wire import JSON, form_error
from .world import FakeUser

APPLICATION_COMMAND_INTERACTION, MESSAGE_COMPONENT_INTERACTION = 2, 3
MESSAGE_COMMAND = 3  # an application command's type: the message context menu
ACTION_ROW, BUTTON = 1, 2
SELECTS = (3, 5, 6, 7, 8)
LINK_STYLE, PREMIUM_STYLE = 5, 6
DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE = 6, 7
UPDATE_TYPES = (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE)
MAX_ROWS, MAX_ROW_ITEMS, MAX_CUSTOM_ID, MAX_LABEL = 5, 5, 100, 80
IS_COMPONENTS_V2 = 1 << 15


# -- what the bot sends ---------------------------------------------------------------------------


def validate_components(components: object, flags: int = 0) -> web.Response | None:
    """Discord's 400 for a message's ``components``; None when they are valid (or absent)."""
    if components is None or flags & IS_COMPONENTS_V2:
        return None  # components v2 layouts are not checked by the fake
    if not isinstance(components, list):
        return form_error("components", "BASE_TYPE_ARRAY", "Must be an array.")
    if len(components) > MAX_ROWS:
        return form_error(
            "components", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_ROWS} or fewer in length."
        )
    seen: set[str] = set()
    for i, row in enumerate(components):
        at = f"components.{i}"
        if not isinstance(row, dict) or row.get("type") != ACTION_ROW:
            return form_error(f"{at}.type", "UNION_TYPE_CHOICES", "Value must be an action row.")
        items = row.get("components") or []
        if not 1 <= len(items) <= MAX_ROW_ITEMS:
            return form_error(
                f"{at}.components",
                "BASE_TYPE_BAD_LENGTH",
                f"Must be between 1 and {MAX_ROW_ITEMS} in length.",
            )
        if any(item.get("type") in SELECTS for item in items) and len(items) > 1:
            return form_error(
                f"{at}.components", "COMPONENT_LAYOUT_WIDTH_EXCEEDED", "A select fills its row."
            )
        for j, item in enumerate(items):
            if (error := _check_item(item, f"{at}.components.{j}", seen)) is not None:
                return error
    return None


def _check_item(item: JSON, at: str, seen: set[str]) -> web.Response | None:
    kind = item.get("type")
    if kind != BUTTON and kind not in SELECTS:
        return form_error(f"{at}.type", "UNION_TYPE_CHOICES", f"Unknown component type {kind!r}.")
    custom_id = item.get("custom_id")
    if kind == BUTTON:
        label = item.get("label")
        if label is not None and len(label) > MAX_LABEL:
            return form_error(
                f"{at}.label", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_LABEL} or fewer in length."
            )
        style = item.get("style")
        if style not in range(1, 7):
            return form_error(f"{at}.style", "BASE_TYPE_CHOICES", f"Unknown style {style!r}.")
        if style == LINK_STYLE:
            if custom_id is not None or not item.get("url"):
                return form_error(
                    f"{at}.url", "BUTTON_COMPONENT_INVALID_URL", "A link button needs a url only."
                )
            return None
        if style == PREMIUM_STYLE:
            return None
    if not isinstance(custom_id, str) or not custom_id:
        return form_error(f"{at}.custom_id", "BASE_TYPE_REQUIRED", "This field is required.")
    if len(custom_id) > MAX_CUSTOM_ID:
        return form_error(
            f"{at}.custom_id",
            "BASE_TYPE_MAX_LENGTH",
            f"Must be {MAX_CUSTOM_ID} or fewer in length.",
        )
    if custom_id in seen:
        return form_error(
            f"{at}.custom_id",
            "COMPONENT_CUSTOM_ID_DUPLICATED",
            "Component custom id cannot be duplicated.",
        )
    seen.add(custom_id)
    return None


def update_refusal(handle: InteractionHandle) -> web.Response | None:
    """Discord's 400 for UPDATE_MESSAGE or DEFERRED_UPDATE_MESSAGE outside a component
    interaction; None when allowed."""
    if handle.type == MESSAGE_COMPONENT_INTERACTION and handle.message_id is not None:
        return None
    return form_error(
        "type", "INTERACTION_RESPONSE_TYPE_INVALID", "Only a component can update its message."
    )


def buttons_of(message: RecordedMessage) -> list[JSON]:
    """The buttons on a message, row by row."""
    return [
        item
        for row in message.payload.get("components") or []
        for item in row.get("components") or []
        if item.get("type") == BUTTON
    ]


# -- what users do --------------------------------------------------------------------------------


def _handle(
    server: Server, payload: JSON, *, name: str, user: FakeUser, message_id: int | None
) -> InteractionHandle:
    return InteractionHandle(
        id=int(payload["id"]),
        token=payload["token"],
        command=name,
        options={},
        user=user,
        channel_id=int(payload["channel_id"]),
        payload=payload,
        created_at=0.0,  # set when dispatched
        _signal=server.signal,
        type=int(payload["type"]),
        message_id=message_id,
    )


def _visible_message(server: Server, message_id: int, user: FakeUser) -> RecordedMessage:
    message = server.messages.get(message_id)
    if message is None or message.deleted:
        raise InvocationError(f"there is no message {message_id} to act on")
    if message.ephemeral and message.interaction_id is not None:
        handle = server.interaction_by_id(message.interaction_id)
        if handle is None or handle.user.id != user.id:
            raise InvocationError(
                f"message {message_id} is ephemeral: {user.username} can't see it"
            )
    return message


def press_interaction(
    server: Server,
    message_id: int,
    *,
    label: str | None = None,
    custom_id: str | None = None,
    user: FakeUser,
) -> InteractionHandle:
    """A user's press on the button (by ``label`` or ``custom_id``) of a bot message, as their
    client shows the message now; not yet dispatched (see ``FakeDiscord.dispatch_interaction``)."""
    message = _visible_message(server, message_id, user)
    if message.author_id != server.world.bot.id:
        raise InvocationError(f"message {message_id} is not the bot's: its buttons are not ours")
    found = [
        b
        for b in buttons_of(message)
        if (label is None or b.get("label") == label)
        and (custom_id is None or b.get("custom_id") == custom_id)
    ]
    if len(found) != 1:
        shown = [(b.get("label"), b.get("custom_id")) for b in buttons_of(message)]
        raise InvalidOption(f"no single button {label or custom_id!r} on the message: {shown}")
    button = found[0]
    if button.get("disabled"):
        raise InvocationError(
            f"the button {button.get('label')!r} is disabled: it can't be pressed"
        )
    if button.get("style") == LINK_STYLE:
        raise InvocationError("a link button opens its url; it sends no interaction")
    data: JSON = {"custom_id": button["custom_id"], "component_type": BUTTON}
    payload = interaction_payload(
        server,
        kind=MESSAGE_COMPONENT_INTERACTION,
        data=data,
        user=user,
        channel_id=message.channel_id,
    )
    payload["message"] = copy.deepcopy(message.payload)
    name = f"button {button.get('label') or button['custom_id']}"
    return _handle(server, payload, name=name, user=user, message_id=message.id)


def message_command_interaction(
    server: Server, name: str, message_id: int, *, user: FakeUser
) -> InteractionHandle:
    """A user's choice of the message context-menu command ``name`` on a message."""
    message = _visible_message(server, message_id, user)
    guild = server.rest.channel_guild(message.channel_id)
    command, scope = _find_message_command(server, name, guild.id)
    server.check_visible(command, user, message.channel_id)
    data: JSON = {
        "id": command["id"],
        "name": command["name"],
        "type": MESSAGE_COMMAND,
        "target_id": str(message.id),
        "resolved": {"messages": {str(message.id): copy.deepcopy(message.payload)}},
    }
    if scope is not None:
        data["guild_id"] = str(scope)
    payload = interaction_payload(
        server,
        kind=APPLICATION_COMMAND_INTERACTION,
        data=data,
        user=user,
        channel_id=message.channel_id,
    )
    return _handle(server, payload, name=name, user=user, message_id=None)


def _find_message_command(server: Server, name: str, guild_id: int) -> tuple[JSON, int | None]:
    for scope in (guild_id, None):
        for command in server.commands.commands_in(scope):
            if command["name"] == name and command["type"] == MESSAGE_COMMAND:
                return command, scope
    raise CommandNotRegistered(f"no message command {name!r} is registered for the guild")
