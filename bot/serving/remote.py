"""The `remote` backend kind: a model served by `python -m bot serve`, reached over HTTP.

    [models.big]
    backend = "remote"
    url = "http://gpu-host:8000/v1/models/big"

It implements `GenerationBackend` with aiohttp, on the format of `bot.serving.wire`. A connection
that fails before any text arrived is tried once more; a timeout closes the connection, which
cancels the request on the server. A server that cannot be reached (at start or later) makes the
model unavailable: `/model` and `/complete` say so in one sentence while a background task asks
the server again, with a growing pause, until it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from bot.errors import (
    CharbotError,
    GenerationError,
    ModelUnavailableError,
    RequestTimeoutError,
    WorkerError,
)
from bot.generation.backend import BackendStats, CharRate, Completion, ModelInfo, StreamChunk
from bot.generation.params import GenerationParams
from bot.serving import wire

log = logging.getLogger(__name__)

REMOTE_KIND = "remote"
PROBE_FIRST_SECONDS = 0.5  # the first pause before asking a server that did not answer again
PROBE_MAX_SECONDS = 5.0  # the longest pause between two such questions

# Errors of a connection that was never made or broke before the server answered: safe to retry.
_CONNECTION_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)


class RemoteBackend:
    """A model on a model server. Use `await RemoteBackend.start(name, url, timeout)`."""

    def __init__(self, name: str, url: str, timeout: float, session: aiohttp.ClientSession):
        self.name = name
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = session
        self._info = ModelInfo(
            name, REMOTE_KIND, f"served at {self.url}", provider=f"not reached yet ({self.url})"
        )
        self._unavailable: str | None = None
        self._probe: asyncio.Task[None] | None = None
        self._closed = False
        self._active = 0
        self._served = 0
        self._failed = 0
        self._generated = CharRate()

    @classmethod
    async def start(cls, name: str, url: str, timeout: float) -> RemoteBackend:
        """Ask the server for the model's metadata; one that does not answer is asked again in
        the background (the backend is returned, unavailable until then)."""
        backend = cls(name, url, timeout, aiohttp.ClientSession())
        try:
            await backend.refresh()
        except CharbotError as exc:
            backend._mark_unavailable(str(exc))
        return backend

    # -- GenerationBackend -----------------------------------------------------------------

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def unavailable(self) -> str | None:
        return self._unavailable

    async def complete(
        self, prompt: str, params: GenerationParams | None = None, *, timeout: float | None = None
    ) -> Completion:
        body = wire.request_body(prompt, params or GenerationParams())
        self._active += 1
        try:
            for attempt in (1, 2):
                try:
                    async with self._post("complete", body, timeout) as response:
                        data = await self._json(response)
                    completion = wire.parse_completion(data["completion"])
                    break
                except _CONNECTION_ERRORS as exc:
                    self._retry_or_raise(exc, attempt, received=False)
        except (CharbotError, wire.WireFormatError, KeyError):
            self._failed += 1
            raise
        finally:
            self._active -= 1
        self._count(completion)
        return completion

    async def stream(
        self, prompt: str, params: GenerationParams | None = None, *, timeout: float | None = None
    ) -> AsyncIterator[StreamChunk]:
        body = wire.request_body(prompt, params or GenerationParams())
        self._active += 1
        try:
            for attempt in (1, 2):
                received = False
                try:
                    async with self._post("stream", body, timeout) as response:
                        async for line in response.content:
                            chunk = self._chunk(line)
                            received = True
                            yield chunk
                            if chunk.completion is not None:
                                self._count(chunk.completion)
                                return
                    raise WorkerError(
                        f"The model server at {self.url} ended the text before it was complete."
                    )
                except _CONNECTION_ERRORS as exc:
                    self._retry_or_raise(exc, attempt, received)
        except (CharbotError, wire.WireFormatError, KeyError):
            self._failed += 1
            raise
        finally:
            self._active -= 1

    async def reload(self, path: Path | str) -> ModelInfo:
        raise GenerationError(
            f"Model {self.name!r} is served at {self.url}; reload it there "
            "(run `python -m bot serve` again with the new file)."
        )

    def stats(self) -> BackendStats:
        return BackendStats(
            queue_depth=0,
            active_requests=self._active,
            requests_served=self._served,
            characters_generated=self._generated.total,
            chars_per_second=self._generated.per_second(),
            requests_failed=self._failed,
        )

    async def close(self) -> None:
        self._closed = True
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        await self._session.close()

    # -- the server ------------------------------------------------------------------------

    async def refresh(self) -> dict[str, Any]:
        """Fetch the model's description (metadata, provider, replicas, the replica's stats)."""
        try:
            async with self._request("GET", "", None, None) as response:
                data = await self._json(response)
            info = wire.parse_info(data["info"])
        except _CONNECTION_ERRORS as exc:
            raise self._connection_failed(exc, mark=False) from exc
        except (wire.WireFormatError, KeyError) as exc:
            raise WorkerError(f"The model server at {self.url} sent a malformed answer.") from exc
        replicas = data.get("replicas")
        self._info = _remote_info(info, self.name, self.url, replicas)
        return dict(data)

    @contextlib.asynccontextmanager
    async def _post(
        self, route: str, body: dict[str, Any], timeout: float | None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        async with self._request("POST", "/" + route, body, timeout) as response:
            yield response

    @contextlib.asynccontextmanager
    async def _request(
        self, method: str, route: str, body: dict[str, Any] | None, timeout: float | None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One HTTP request; a failure status raises the bot's error for it."""
        limit = self.timeout if timeout is None else timeout
        try:
            async with self._session.request(
                method, self.url + route, json=body, timeout=aiohttp.ClientTimeout(total=limit)
            ) as response:
                if response.status >= 400:
                    try:
                        error_body = await response.json(content_type=None)
                    except (ValueError, aiohttp.ClientError):
                        error_body = None
                    raise wire.parse_error(response.status, error_body)
                yield response
        except TimeoutError as exc:
            raise RequestTimeoutError(
                f"The model server at {self.url} took longer than {limit:g} seconds; "
                "the request was cancelled."
            ) from exc

    async def _json(self, response: aiohttp.ClientResponse) -> Any:
        try:
            return await response.json(content_type=None)
        except ValueError as exc:
            raise WorkerError(f"The model server at {self.url} sent a malformed answer.") from exc

    def _chunk(self, line: bytes) -> StreamChunk:
        try:
            data = json.loads(line)
            if "error" in data:
                raise wire.parse_error(500, data)
            completion = data.get("completion")
            return StreamChunk(
                data["text"], None if completion is None else wire.parse_completion(completion)
            )
        except (ValueError, KeyError, TypeError, wire.WireFormatError) as exc:
            raise WorkerError(f"The model server at {self.url} sent a malformed line.") from exc

    def _count(self, completion: Completion) -> None:
        self._served += 1
        self._generated.add(len(completion.text))

    def _retry_or_raise(self, exc: Exception, attempt: int, received: bool) -> None:
        """After a connection error: return to try once more, or raise the bot's error. Only a
        request that has received no text yet, on its first attempt, is tried again."""
        if received or not _retryable(exc):
            raise self._broken(exc) from exc
        if attempt == 2:
            raise self._connection_failed(exc) from exc
        log.info("%s: retrying after a connection error: %s", self.url, exc)

    def _broken(self, exc: Exception) -> WorkerError:
        return WorkerError(
            f"The connection to the model server at {self.url} broke before the text was "
            f"complete ({_reason(exc)}); try again."
        )

    def _connection_failed(self, exc: Exception, *, mark: bool = True) -> ModelUnavailableError:
        """The sentence for a server that cannot be reached; unreachable ones are probed."""
        reason = _reason(exc)
        error = ModelUnavailableError(
            f"The model server at {self.url} cannot be reached ({reason}); try again later."
        )
        if mark and isinstance(exc, aiohttp.ClientConnectorError):
            self._mark_unavailable(str(error))
        return error

    def _mark_unavailable(self, why: str) -> None:
        self._unavailable = why
        log.warning("model %r is unavailable: %s", self.name, why)
        if self._probe is None and not self._closed:
            self._probe = asyncio.create_task(self._reconnect(), name=f"probe {self.url}")

    async def _reconnect(self) -> None:
        """Ask the server again, with a growing pause, until it answers."""
        pause = PROBE_FIRST_SECONDS
        try:
            while True:
                await asyncio.sleep(pause)
                try:
                    await self.refresh()
                except CharbotError as exc:
                    self._unavailable = str(exc)
                    pause = min(pause * 2, PROBE_MAX_SECONDS)
                    continue
                self._unavailable = None
                log.info("model %r is back: %s", self.name, self._info.provider)
                return
        finally:
            self._probe = None


def _remote_info(info: ModelInfo, name: str, url: str, replicas: Any) -> ModelInfo:
    """The server's description under the bot's name for the model, saying where it runs."""
    where = f"{replicas} replica(s) at {url}" if isinstance(replicas, int) else url
    return dataclasses.replace(
        info, name=name, kind=REMOTE_KIND, path=None, provider=f"{info.provider}, {where}"
    )


def _retryable(exc: Exception) -> bool:
    return isinstance(exc, aiohttp.ClientConnectionError)


def _reason(exc: Exception) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError) and exc.os_error.errno:
        return os.strerror(exc.os_error.errno).lower()  # "connection refused"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "it closed the connection"
    return type(exc).__name__
