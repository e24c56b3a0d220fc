"""A reply that shows a slow completion as it arrives (large or remote models).

A completion that ends within `STREAM_AFTER_SECONDS` of its first text is sent once, as a single
message. A slower one is sent as soon as that time has passed with the text so far (measured from
the first text: a request still queued has nothing to show), then edited with the text as it
grows, never sooner than `EDIT_INTERVAL_SECONDS` after the previous edit finished (Discord
rate-limits edits, and a message that changes faster is hard to read); the last edit holds the
whole answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable

from bot.api import Completion, StreamChunk, WorkerError

STREAM_AFTER_SECONDS = 1.0
EDIT_INTERVAL_SECONDS = 1.0

#: Sends (or edits in) a message's content; the completion comes with the last one only.
Send = Callable[[str, Completion | None], Awaitable[object]]


async def reply_as_it_arrives(
    chunks: AsyncGenerator[StreamChunk, None],
    *,
    send: Send,
    edit: Send,
    partial: Callable[[str], str],
    final: Callable[[Completion], str],
    after: float = STREAM_AFTER_SECONDS,
    interval: float = EDIT_INTERVAL_SECONDS,
) -> Completion:
    """Consume `chunks`; `send` the first message, `edit` it later. `partial(text so far)` and
    `final(completion)` give the message's content."""
    loop = asyncio.get_running_loop()
    started: float | None = None  # when the first text arrived
    parts: list[str] = []
    shown_at: float | None = None  # when the last send or edit finished
    completion: Completion | None = None
    # Closed on the way out, whatever happens: a stream left behind would hold its batch row.
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            parts.append(chunk.text)
            if chunk.completion is not None:
                completion = chunk.completion
                continue  # the last chunk: the stream ends here
            if not any(parts):
                continue
            now = loop.time()
            started = now if started is None else started
            due = started + after if shown_at is None else shown_at + interval
            if now < due:
                continue
            await (send if shown_at is None else edit)(partial("".join(parts)), None)
            shown_at = loop.time()
    if completion is None:
        raise WorkerError("The model stopped before the text was complete.")
    if shown_at is None:
        await send(final(completion), completion)
    else:
        await asyncio.sleep(shown_at + interval - loop.time())
        await edit(final(completion), completion)
    return completion
