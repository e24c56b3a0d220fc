"""Interaction responses: the callback, the @original message, followups.

Discord's rules that bots trip over are enforced: one callback per interaction, within
``server.callback_deadline`` (3 s); no followup before the callback; an expired token is
"Unknown Webhook". A deferred response creates a "thinking" message (flag LOADING) that the
first edit or followup replaces.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from .components import UPDATE_MESSAGE, UPDATE_TYPES, update_refusal
from .messages import (
    CHAT_INPUT_COMMAND_TYPE,
    DEFAULT_TYPE,
    SETTABLE_FLAGS,
    apply_edit,
    validate_body,
)
from .records import (
    EPHEMERAL,
    LOADING,
    ActionKind,
    InteractionAction,
    InteractionHandle,
    MessageVia,
    RecordedMessage,
    Reply,
    ReplyKind,
)
from .surface import MessageRoutes, Server
from .wire import JSON, Call, error_reply, form_error, json_reply, no_content

log = logging.getLogger(__name__)

CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, MODAL = 4, 5, 9


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true")


class InteractionRoutes:
    def __init__(self, server: Server, rest: MessageRoutes) -> None:
        self.s = server
        self.rest = rest

    def _record_action(
        self, handle: InteractionHandle, action: ActionKind, type_: int | None, data: JSON | None
    ) -> None:
        record = InteractionAction(handle.id, action, type_, data)
        handle.actions.append(record)
        self.s.interaction_responses.append(record)

    def _reply(self, handle: InteractionHandle, kind: ReplyKind, message: RecordedMessage) -> None:
        handle.replies.append(
            Reply(
                kind=kind,
                content=message.content,
                flags=message.flags,
                allowed_mentions=message.allowed_mentions,
                embeds=message.embeds,
                message_id=message.id,
                request=(message.edits[-1] if message.edits else message.request) or {},
                at=asyncio.get_running_loop().time(),
            )
        )

    def _interaction_message(
        self, handle: InteractionHandle, body: JSON, call: Call, *, flags: int, via: MessageVia
    ) -> RecordedMessage:
        world = self.s.world
        owners = {"0": str(self.rest.channel_guild(handle.channel_id).id)}
        metadata = {
            "id": str(handle.id),
            "type": handle.type,
            "user": handle.user.payload(),
            "authorizing_integration_owners": owners,
            "name": handle.command.lstrip("/"),
        }
        extra: JSON = {
            "webhook_id": str(world.application_id),
            "application_id": str(world.application_id),
            "interaction_metadata": metadata,
            "interaction": {
                "id": str(handle.id),
                "type": handle.type,
                "name": handle.command.lstrip("/"),
                "user": handle.user.payload(),
            },
        }
        return self.rest.new_message(
            channel_id=handle.channel_id,
            author=world.bot,
            body=body,
            call_body=call.body,
            via=via,
            flags=flags,
            type_=CHAT_INPUT_COMMAND_TYPE if via == "interaction" else DEFAULT_TYPE,
            extra=extra,
            interaction_id=handle.id,
        )

    def _handle_for_callback(
        self, call: Call
    ) -> tuple[InteractionHandle | None, web.Response | None]:
        handle = self.s.interaction_by_id(call.int("interaction_id"))
        unknown = error_reply(404, 10062, "Unknown interaction")
        if handle is None or handle.token != call.params["token"] or handle.expired:
            return None, unknown
        if handle.responded:
            return None, error_reply(400, 40060, "Interaction has already been acknowledged.")
        deadline = self.s.callback_deadline
        age = asyncio.get_running_loop().time() - handle.created_at
        if deadline is not None and age > deadline:
            # Discord forgets an unacknowledged interaction after 3 s.
            handle.error = f"callback after {age:.2f}s (deadline {deadline:g}s)"
            log.warning("fakediscord: %s for interaction %s", handle.error, handle.id)
            return None, unknown
        return handle, None

    async def callback(self, call: Call) -> web.Response:
        handle, error = self._handle_for_callback(call)
        if handle is None:
            assert error is not None
            return error
        body = call.json
        kind = body.get("type")
        data: JSON = body.get("data") or {}
        self._record_action(handle, "callback", kind, data)
        if kind not in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, MODAL, *UPDATE_TYPES):
            return form_error(
                "type", "INTERACTION_RESPONSE_TYPE_INVALID", f"Invalid type {kind!r}."
            )
        message: RecordedMessage | None = None
        if kind in UPDATE_TYPES:
            updated, error = await self._update_component_message(handle, kind, data, call)
            if error is not None:
                return error
            handle.callback_type, handle.callback_data = kind, data
            return self._callback_reply(handle, kind, call, updated)
        if kind == CHANNEL_MESSAGE:
            if (error := validate_body(data, call.body.files, creating=True)) is not None:
                return error
            flags = int(data.get("flags") or 0) & SETTABLE_FLAGS
            message = self._interaction_message(handle, data, call, flags=flags, via="interaction")
            self._reply(handle, "message", message)
        elif kind == DEFERRED_CHANNEL_MESSAGE:
            flags = (int(data.get("flags") or 0) & EPHEMERAL) | LOADING
            message = self._interaction_message(handle, {}, call, flags=flags, via="interaction")
        handle.callback_type, handle.callback_data = kind, data
        if message is not None:
            handle.original_message_id = message.id
            await self.rest.broadcast_message("MESSAGE_CREATE", message)
        return self._callback_reply(handle, kind, call, message)

    def _callback_reply(
        self, handle: InteractionHandle, kind: int, call: Call, message: RecordedMessage | None
    ) -> web.Response:
        if not _truthy(call.query.get("with_response")):
            return no_content()
        resource: JSON = {"type": kind}
        if message is not None:
            resource["message"] = message.payload
        return json_reply(
            {
                "interaction": {
                    "id": str(handle.id),
                    "type": handle.type,
                    "response_message_id": str(message.id) if message else None,
                    "response_message_loading": kind == DEFERRED_CHANNEL_MESSAGE,
                    "response_message_ephemeral": bool(message and message.ephemeral),
                },
                "resource": resource,
            }
        )

    async def _update_component_message(
        self, handle: InteractionHandle, kind: int, data: JSON, call: Call
    ) -> tuple[RecordedMessage | None, web.Response | None]:
        """UPDATE_MESSAGE edits the component's message (returned); DEFERRED_UPDATE_MESSAGE
        edits nothing yet. Either way ``@original`` names that message from now on."""
        if (refusal := update_refusal(handle)) is not None:
            return None, refusal
        assert handle.message_id is not None
        message = self.s.messages.get(handle.message_id)
        if message is None or message.deleted:
            return None, error_reply(404, 10008, "Unknown Message")
        handle.original_message_id = message.id
        if kind != UPDATE_MESSAGE:
            return None, None
        if (error := validate_body(data, call.body.files, creating=False)) is not None:
            return None, error
        apply_edit(message, data, guild=self.rest.channel_guild(message.channel_id))
        self._reply(handle, "update", message)
        await self.rest.broadcast_message("MESSAGE_UPDATE", message)
        return message, None

    def _webhook_handle(self, call: Call) -> tuple[InteractionHandle | None, web.Response | None]:
        handle = self.s.interaction_by_token(call.params["token"])
        if (
            handle is None
            or handle.expired
            or call.params["app_id"] != str(self.s.world.application_id)
        ):
            return None, error_reply(404, 10015, "Unknown Webhook")
        return handle, None

    def _webhook_message(
        self, handle: InteractionHandle, message_id: str
    ) -> RecordedMessage | None:
        if message_id == "@original":
            if handle.original_message_id is None:
                return None
            found = self.s.messages.get(handle.original_message_id)
        else:
            found = self.s.messages.get(int(message_id)) if message_id.isdigit() else None
        # A component interaction's @original is the message the component is on.
        ours = found is not None and found.interaction_id == handle.id
        if found is None or found.deleted or not (ours or found.id == handle.message_id):
            return None
        return found

    async def get_message(self, call: Call) -> web.Response:
        handle, error = self._webhook_handle(call)
        if handle is None:
            assert error is not None
            return error
        message = self._webhook_message(handle, call.params["message"])
        return (
            json_reply(message.payload) if message else error_reply(404, 10008, "Unknown Message")
        )

    async def edit_message(self, call: Call) -> web.Response:
        handle, error = self._webhook_handle(call)
        if handle is None:
            assert error is not None
            return error
        original = call.params["message"] == "@original"
        self._record_action(
            handle, "edit_original" if original else "edit_followup", None, call.json
        )
        message = self._webhook_message(handle, call.params["message"])
        if message is None:
            return error_reply(404, 10008, "Unknown Message")
        if (error := validate_body(call.json, call.body.files, creating=False)) is not None:
            return error
        apply_edit(message, call.json, guild=self.rest.channel_guild(message.channel_id))
        self._reply(handle, "edit", message)
        await self.rest.broadcast_message("MESSAGE_UPDATE", message)
        return json_reply(message.payload)

    async def delete_message(self, call: Call) -> web.Response:
        handle, error = self._webhook_handle(call)
        if handle is None:
            assert error is not None
            return error
        self._record_action(handle, "delete_original", None, None)
        message = self._webhook_message(handle, call.params["message"])
        if message is None:
            return error_reply(404, 10008, "Unknown Message")
        await self.rest.delete(message)
        return no_content()

    async def create_followup(self, call: Call) -> web.Response:
        handle, error = self._webhook_handle(call)
        if handle is None:
            assert error is not None
            return error
        self._record_action(handle, "followup", None, call.json)
        if not handle.responded:
            return error_reply(404, 10015, "Unknown Webhook")  # no followups before the callback
        if (error := validate_body(call.json, call.body.files, creating=True)) is not None:
            return error
        original = self._webhook_message(handle, "@original")
        if original is not None and original.flags & LOADING:
            # The first followup after a defer replaces the "thinking..." message.
            apply_edit(original, call.json, guild=self.rest.channel_guild(original.channel_id))
            message = original
            await self.rest.broadcast_message("MESSAGE_UPDATE", message)
        else:
            flags = int(call.json.get("flags") or 0) & SETTABLE_FLAGS
            message = self._interaction_message(
                handle, call.json, call, flags=flags, via="followup"
            )
            await self.rest.broadcast_message("MESSAGE_CREATE", message)
        self._reply(handle, "followup", message)
        if not _truthy(call.query.get("wait")):
            return no_content()
        return json_reply(message.payload)
