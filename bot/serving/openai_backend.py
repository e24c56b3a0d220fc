"""The `openai` backend kind: a model on any OpenAI-compatible server, reached over HTTP.

    [models.big]
    backend = "openai"
    url = "http://gpu-host:8000/v1"   # the server's /v1 base: charbot's, vLLM's, Ollama's...
    model = "big"                     # the server's model id (default: the table's name)
    api_key_env = "BIG_KEY"           # the environment variable holding its key, if any

It implements `GenerationBackend` with aiohttp on `/v1/completions`: the whole text, or a stream
of Server-Sent Events. It sends the standard fields, plus `top_k` when it is on and `clean_end`
(charbot's server honours both; others ignore them), and reads `usage` when the server sends it
(else it counts characters). charbot's server also says which prompt pieces its model did not
know (`choices[].charbot`), which the bot shows as it does for a local model.

A connection that fails before any text arrived is tried once more, and a 429 is tried once more
after its `Retry-After` (when that is short); a timeout closes the connection, which cancels the
request on the server. A server that cannot be reached (at start or later) makes the model
unavailable: `/model` and `/complete` say so in one sentence while a background task asks the
server again, with a growing pause, until it answers. The URL is shown with its password masked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp

from bot.errors import (
    CharbotError,
    EngineBusyError,
    GenerationError,
    InvalidParamsError,
    ModelUnavailableError,
    RequestTimeoutError,
    UnknownModelError,
    WorkerError,
)
from bot.generation.backend import (
    BackendStats,
    CharRate,
    Completion,
    FinishReason,
    ModelInfo,
    StreamChunk,
)
from bot.generation.params import GenerationParams
from bot.serving import protocol
from bot.stores.urls import mask_url

log = logging.getLogger(__name__)

OPENAI_KIND = "openai"
PROBE_FIRST_SECONDS = 0.5  # the first pause before asking a server that did not answer again
PROBE_MAX_SECONDS = 5.0  # the longest pause between two such questions
#: The longest `Retry-After` a 429 may ask for and still be tried once more; longer is "busy".
RETRY_AFTER_MAX_SECONDS = 5.0

# Errors of a connection that was never made or broke before the server answered: safe to retry.
_CONNECTION_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)


class _Busy(Exception):
    """A 429 that may be tried once more after `wait` seconds."""

    def __init__(self, error: EngineBusyError, wait: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait = wait


class OpenAIBackend:
    """A model on an OpenAI-compatible server. Use `await OpenAIBackend.start(...)`."""

    def __init__(
        self,
        name: str,
        url: str,
        model: str,
        timeout: float,
        session: aiohttp.ClientSession,
        api_key: str | None = None,
    ) -> None:
        self.name = name
        self.base = url.rstrip("/")
        self.url = mask_url(self.base)  # the only form of the URL that is shown or logged
        self.model = model
        self.timeout = timeout
        self._session = session
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._info = _info(name, model, self.url, None)
        self._unavailable: str | None = None
        self._probe: asyncio.Task[None] | None = None
        self._closed = False
        self._active = 0
        self._served = 0
        self._failed = 0
        self._generated = CharRate()

    @classmethod
    async def start(
        cls,
        name: str,
        url: str,
        timeout: float,
        model: str | None = None,
        api_key: str | None = None,
    ) -> OpenAIBackend:
        """Ask the server for the model; one that does not answer is asked again in the
        background (the backend is returned, unavailable until then)."""
        backend = cls(name, url, model or name, timeout, aiohttp.ClientSession(), api_key)
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
        params = params or GenerationParams()
        body = self._body(prompt, params, stream=False)
        started = time.monotonic()
        self._active += 1
        try:
            data = await self._with_retries(lambda: self._complete_once(body, timeout))
            completion = self._completion(prompt, data, started)
        except (CharbotError, KeyError, TypeError, IndexError, ValueError) as exc:
            self._failed += 1
            if isinstance(exc, CharbotError):
                raise
            raise self._malformed() from exc
        finally:
            self._active -= 1
        self._count(completion)
        return completion

    async def stream(
        self, prompt: str, params: GenerationParams | None = None, *, timeout: float | None = None
    ) -> AsyncIterator[StreamChunk]:
        params = params or GenerationParams()
        body = self._body(prompt, params, stream=True)
        started = time.monotonic()
        self._active += 1
        try:
            for attempt in (1, 2):
                received = False
                try:
                    async with self._request("POST", "/completions", body, timeout) as response:
                        reader = _StreamReader(self, prompt, params, started)
                        async for chunk in reader.read(response):
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
                except _Busy as busy:
                    if attempt == 2 or not await self._wait_to_retry(busy):
                        raise busy.error from None
        except CharbotError:
            self._failed += 1
            raise
        finally:
            self._active -= 1

    async def reload(self, path: Path | str) -> ModelInfo:
        raise GenerationError(
            f"Model {self.name!r} is served at {self.url}; load the new file on that server "
            "(for charbot's own, run `python -m bot serve` again)."
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
        """Find the model in the server's `/v1/models` list (every compatible server has that
        route); charbot's server describes it there too."""
        try:
            async with self._request("GET", "/models", None, None) as response:
                data = await self._json(response)
            listed = data["data"]
            ids = [entry["id"] for entry in listed]
        except _CONNECTION_ERRORS as exc:
            raise self._connection_failed(exc, mark=False) from exc
        except _Busy as busy:
            raise busy.error from None
        except (KeyError, TypeError) as exc:
            raise self._malformed() from exc
        entry = next((e for e in listed if e["id"] in (self.model, f"{self.model}:latest")), None)
        if entry is None:
            served = ", ".join(str(i) for i in ids[:10]) or "none"
            raise UnknownModelError(
                f"The model server at {self.url} has no model {self.model!r} (it serves: "
                f"{served}); set the table's model to one of those."
            )
        self._info = _info(self.name, self.model, self.url, entry.get(protocol.EXTRA))
        return dict(entry)

    async def describe(self) -> dict[str, Any]:
        """charbot's server only: the model with the answering replica's engine figures."""
        async with self._request("GET", f"/models/{self.model}", None, None) as response:
            data: dict[str, Any] = await self._json(response)
        return data

    def _body(self, prompt: str, params: GenerationParams, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": prompt,
            "max_tokens": params.max_length,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.top_k:
            body["top_k"] = params.top_k
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        if params.clean_end:
            body["clean_end"] = True
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def _complete_once(self, body: dict[str, Any], timeout: float | None) -> Any:
        async with self._request("POST", "/completions", body, timeout) as response:
            return await self._json(response)

    async def _with_retries(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """`call()`, tried once more after a connection error or a short 429."""
        for attempt in (1, 2):
            try:
                return await call()
            except _CONNECTION_ERRORS as exc:
                self._retry_or_raise(exc, attempt, received=False)
            except _Busy as busy:
                if attempt == 2 or not await self._wait_to_retry(busy):
                    raise busy.error from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _wait_to_retry(self, busy: _Busy) -> bool:
        if busy.wait is None or busy.wait > RETRY_AFTER_MAX_SECONDS:
            return False
        log.info("%s: busy; trying again in %g s", self.url, busy.wait)
        await asyncio.sleep(busy.wait)
        return True

    @contextlib.asynccontextmanager
    async def _request(
        self, method: str, route: str, body: dict[str, Any] | None, timeout: float | None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One HTTP request; a failure status raises the bot's error for it."""
        limit = self.timeout if timeout is None else timeout
        try:
            async with self._session.request(
                method,
                self.base + route,
                json=body,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=limit),
            ) as response:
                if response.status >= 400:
                    try:
                        error_body = await response.json(content_type=None)
                    except (ValueError, aiohttp.ClientError):
                        error_body = None
                    error = self._error(response.status, error_body)
                    if isinstance(error, EngineBusyError):
                        raise _Busy(error, _retry_after(response.headers))
                    raise error
                yield response
        except TimeoutError as exc:
            raise RequestTimeoutError(
                f"The model server at {self.url} took longer than {limit:g} seconds; "
                "the request was cancelled."
            ) from exc

    def _error(self, status: int, body: Any) -> CharbotError:
        """The bot's error for a failed answer, by its status, with the server's message."""
        message = _message(body)
        if status == 401 or status == 403:
            return ModelUnavailableError(
                f"The model server at {self.url} refused the key ({message or status}); "
                "check the variable the model's api_key_env names."
            )
        if message is None:
            message = f"The model server at {self.url} answered with HTTP status {status}."
        if status == 404:
            return UnknownModelError(message)
        if status == 429:
            return EngineBusyError(message)
        if status == 503:
            return ModelUnavailableError(message)
        if status == 504:
            return RequestTimeoutError(message)
        if 400 <= status < 500:
            return InvalidParamsError(message)
        return WorkerError(message)

    async def _json(self, response: aiohttp.ClientResponse) -> Any:
        try:
            return await response.json(content_type=None)
        except ValueError as exc:
            raise self._malformed() from exc

    def _malformed(self) -> WorkerError:
        return WorkerError(f"The model server at {self.url} sent a malformed answer.")

    def _completion(self, prompt: str, data: Any, started: float) -> Completion:
        choice = data["choices"][0]
        text = choice["text"]
        if not isinstance(text, str):
            raise TypeError("text")
        return self._finished(
            prompt, text, choice.get("finish_reason"), data.get("usage"), choice, started
        )

    def _finished(
        self,
        prompt: str,
        text: str,
        reason: object,
        usage: object,
        choice: Mapping[str, Any],
        started: float,
        max_length: int | None = None,
    ) -> Completion:
        """The completion, from what the server said (or could leave out: usage, facts)."""
        facts = choice.get(protocol.EXTRA)
        facts = facts if isinstance(facts, Mapping) else {}
        unknown = facts.get("unknown")
        pieces = unknown if isinstance(unknown, list) else []
        unknown_token = facts.get("unknown_token")
        tokens = _usage(usage, "completion_tokens")
        if tokens is None:
            tokens = len(text)  # a server that does not say: characters
        # A server that gives no reason ran out of length if it wrote that many tokens.
        ran_out = reason is None and max_length is not None and tokens >= max_length
        finish: FinishReason = "length" if reason == "length" or ran_out else "stop"
        return Completion(
            text=text,
            prompt=prompt,
            tokens=tokens,
            finish_reason=finish,
            unknown=tuple(u for u in pieces if isinstance(u, str)),
            model=self.name,
            seconds=time.monotonic() - started,
            unknown_token=unknown_token if isinstance(unknown_token, str) else None,
            prompt_tokens=_usage(usage, "prompt_tokens") or 0,
        )

    def _count(self, completion: Completion) -> None:
        self._served += 1
        self._generated.add(len(completion.text))

    def _retry_or_raise(self, exc: Exception, attempt: int, received: bool) -> None:
        """After a connection error: return to try once more, or raise the bot's error. Only a
        request that has received no text yet, on its first attempt, is tried again."""
        if received or not isinstance(exc, aiohttp.ClientConnectionError):
            raise self._broken(exc) from exc
        if attempt == 2:
            raise self._connection_failed(exc) from exc
        log.info("%s: retrying after a connection error: %s", self.url, _reason(exc))

    def _broken(self, exc: Exception) -> WorkerError:
        return WorkerError(
            f"The connection to the model server at {self.url} broke before the text was "
            f"complete ({_reason(exc)}); try again."
        )

    def _connection_failed(self, exc: Exception, *, mark: bool = True) -> ModelUnavailableError:
        """The sentence for a server that cannot be reached; unreachable ones are probed."""
        error = ModelUnavailableError(
            f"The model server at {self.url} cannot be reached ({_reason(exc)}); try again later."
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


class _StreamReader:
    """Reads one streamed answer's Server-Sent Events: text chunks, then the completion.

    Servers end a stream differently: charbot's puts the finish reason and usage on the last
    text chunk; OpenAI's and vLLM's send a last chunk with no choices and the usage; some send
    `data: [DONE]` alone, with no finish reason at all. All end at [DONE] (or at the end of the
    body once a finish reason came)."""

    def __init__(
        self, backend: OpenAIBackend, prompt: str, params: GenerationParams, started: float
    ) -> None:
        self.backend = backend
        self.prompt = prompt
        self.params = params
        self.started = started
        self.parts: list[str] = []
        self.reason: object = None
        self.usage: object = None
        self.choice: Mapping[str, Any] = {}

    async def read(self, response: aiohttp.ClientResponse) -> AsyncIterator[StreamChunk]:
        data_lines: list[str] = []
        async for raw in response.content:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if line:
                if line.startswith("data:"):
                    data_lines.append(line[5:].removeprefix(" "))
                continue  # comments (":"), event names and ids carry nothing here
            if not data_lines:
                continue
            data, data_lines = "\n".join(data_lines), []
            if data.strip() == "[DONE]":
                yield self.last()
                return
            text = self.event(data)
            if text:
                self.parts.append(text)
                yield StreamChunk(text)
        if (data_lines and data_lines[-1].strip() == "[DONE]") or self.reason is not None:
            yield self.last()

    def event(self, data: str) -> str:
        """One event's new text; it records the finish reason, usage and charbot's facts."""
        b = self.backend
        try:
            event = json.loads(data)
            if "error" in event:
                raise b._error(_status_of(event), event)
            if event.get("usage"):
                self.usage = event["usage"]
            choices = event.get("choices") or []
            if not choices:
                return ""
            choice = choices[0]
            if choice.get("finish_reason") is not None:
                self.reason = choice["finish_reason"]
                self.choice = choice
            text = choice.get("text") or ""
            if not isinstance(text, str):
                raise TypeError("text")
            return text
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise WorkerError(f"The model server at {b.url} sent a malformed event.") from exc

    def last(self) -> StreamChunk:
        completion = self.backend._finished(
            self.prompt,
            "".join(self.parts),
            self.reason,
            self.usage,
            self.choice,
            self.started,
            self.params.max_length,
        )
        return StreamChunk("", completion)


def _info(name: str, model: str, url: str, facts: object) -> ModelInfo:
    """What `/model show` says: the server's model id and URL, and charbot's description of
    the model when the server is charbot's."""
    where = f"model {model!r} at {url}"
    if not isinstance(facts, Mapping):
        description = "a model on an OpenAI-compatible server"
        return ModelInfo(name, OPENAI_KIND, description, provider=where)
    replicas = facts.get("replicas")
    if isinstance(replicas, int):
        where = f"{replicas} replica(s), {where}"
    provider = facts.get("provider")
    return ModelInfo(
        name=name,
        kind=OPENAI_KIND,
        description=str(facts.get("description") or "a model on charbot's model server"),
        level=str(facts.get("level") or "char"),
        vocab_size=_int(facts.get("vocab_size")),
        parameters=_int(facts.get("parameters")),
        details=dict(facts.get("details") or {}),
        training=dict(facts.get("training") or {}),
        provider=f"{provider}, {where}" if isinstance(provider, str) else where,
    )


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _usage(usage: object, key: str) -> int | None:
    value = usage.get(key) if isinstance(usage, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _message(body: object) -> str | None:
    """The error's sentence in the shapes servers use: OpenAI's {"error": {"message"}},
    Ollama's {"error": "..."}, FastAPI's {"detail": "..."}."""
    if not isinstance(body, Mapping):
        return None
    error = body.get("error", body.get("detail"))
    if isinstance(error, Mapping):
        error = error.get("message")
    return error if isinstance(error, str) and error else None


def _status_of(event: Mapping[str, Any]) -> int:
    """The status an error event stands for, by its code (charbot's server names one)."""
    error = event.get("error")
    code = error.get("code") if isinstance(error, Mapping) else None
    return next((status for _, status, _, c in protocol.ERRORS if c and c == code), 500)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return max(0.0, float(headers.get("Retry-After", "")))
    except ValueError:
        return None


def _reason(exc: Exception) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError) and exc.os_error.errno:
        return os.strerror(exc.os_error.errno).lower()  # "connection refused"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "it closed the connection"
    return type(exc).__name__
