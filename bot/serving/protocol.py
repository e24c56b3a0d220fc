"""The OpenAI-compatible HTTP API as charbot speaks it: request parsing and the answer's shapes.

No Ray, no HTTP library here: the model server (`bot.serving.server`) parses and answers with
these functions, and the bot's `openai` backend (`bot.serving.openai_backend`) reads the same
error table. The routes, and what each field means, are in docs/serving.md.

What real clients do decides much of it: `null` means "not given" for every field; LangChain's
`OpenAI` sends `prompt` as a list even for one text and reads choices by position, and fails
without `usage`; fields clients send at their defaults (`frequency_penalty` 0, `logit_bias` {},
`best_of` 1...) are accepted, and a value the model cannot honour is a 400 naming the field. Fields
this module does not know are ignored, as vLLM and llama.cpp's server do.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from bot.errors import (
    CharbotError,
    EngineBusyError,
    EngineClosedError,
    InvalidParamsError,
    ModelUnavailableError,
    RequestTimeoutError,
    UnknownModelError,
    WorkerError,
)
from bot.generation.backend import Completion
from bot.generation.params import MAX_TEMPERATURE, GenerationLimits, GenerationParams
from models.chat import ChatMessage

API_PREFIX: Final = "/v1"
RETRY_AFTER_SECONDS: Final = 1  # what a 429 asks the client to wait (the openai client honours it)
#: OpenAI's default length of a completion, in tokens, when the request gives none.
DEFAULT_MAX_TOKENS: Final = 16
#: OpenAI's default temperature.
DEFAULT_TEMPERATURE: Final = 1.0
MAX_STOP: Final = 4  # stop sequences per request, as OpenAI allows
MAX_PROMPTS: Final = 128  # prompts in one /v1/completions request
OWNER: Final = "charbot"
#: The extra field carrying charbot's own facts about a model or an answer.
EXTRA: Final = "charbot"

#: Each error type: its HTTP status, OpenAI's error `type` and a `code`. Subclasses first.
ERRORS: Final[tuple[tuple[type[CharbotError], int, str, str | None], ...]] = (
    (InvalidParamsError, 400, "invalid_request_error", None),
    (UnknownModelError, 404, "invalid_request_error", "model_not_found"),
    (EngineBusyError, 429, "rate_limit_error", "engine_busy"),
    (EngineClosedError, 503, "service_unavailable", "engine_closed"),
    (ModelUnavailableError, 503, "service_unavailable", "model_unavailable"),
    (RequestTimeoutError, 504, "timeout", "timeout"),
    (WorkerError, 500, "server_error", None),
)


class BadRequest(InvalidParamsError):
    """A request field that cannot be used; `param` names it (OpenAI's `error.param`)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ServerDraining(CharbotError):
    """A request that reached a server shutting down (503): in flight ones finish, new ones go."""


class AuthenticationFailed(CharbotError):
    """A request without the server's key (401)."""


class RouteNotFound(CharbotError):
    """A path (or method) the API does not have (404, 405)."""

    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.status = status


def error_body(message: str, kind: str, param: str | None = None, code: str | None = None) -> Any:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_status(exc: CharbotError) -> tuple[int, dict[str, Any]]:
    """The status and OpenAI-shaped body that report `exc`."""
    if isinstance(exc, AuthenticationFailed):
        return 401, error_body(str(exc), "invalid_request_error", code="invalid_api_key")
    if isinstance(exc, RouteNotFound):
        return exc.status, error_body(str(exc), "invalid_request_error", code="unknown_url")
    if isinstance(exc, ServerDraining):
        return 503, error_body(str(exc), "service_unavailable", code="server_shutting_down")
    param = exc.param if isinstance(exc, BadRequest) else None
    for cls, status, kind, code in ERRORS:
        if isinstance(exc, cls):
            return status, error_body(str(exc), kind, param, code)
    return 500, error_body(str(exc), "server_error")


# -- reading fields ----------------------------------------------------------------------------


def json_type(value: object) -> str:
    """The JSON name of a value's type, as messages show it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return "a value JSON does not have"


class _Fields:
    """A request body's fields, each read once with its type checked; `null` is "not given"."""

    def __init__(self, body: object) -> None:
        if not isinstance(body, Mapping):
            raise BadRequest(f"The request body must be a JSON object, not {json_type(body)}.")
        self.body = body

    def get(self, name: str) -> Any:
        return self.body.get(name)

    def _wrong(self, name: str, wanted: str) -> BadRequest:
        return BadRequest(f"{name} must be {wanted}, not {json_type(self.body[name])}.", name)

    def string(self, name: str, *, required: bool = False) -> str | None:
        value = self.body.get(name)
        if value is None:
            if required:
                raise BadRequest(f"The request needs {name}.", name)
            return None
        if not isinstance(value, str):
            raise self._wrong(name, "a string")
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.body.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._wrong(name, "true or false")
        return value

    def integer(self, name: str) -> int | None:
        value = self.body.get(name)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._wrong(name, "a whole number")
        return value

    def number(self, name: str) -> float | None:
        value = self.body.get(name)
        if value is None:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self._wrong(name, "a number")
        if not math.isfinite(value):
            raise BadRequest(f"{name} must be a finite number.", name)
        return float(value)

    def at_default(self, name: str, default: object, why: str) -> None:
        """A field charbot cannot honour: accepted at its default (or null), else a 400."""
        value = self.body.get(name)
        if value is None or value == default:
            return
        if isinstance(value, bool) or (isinstance(default, dict) and not isinstance(value, dict)):
            raise self._wrong(name, json_type(default))
        raise BadRequest(f"{name} must be {_shown(default)}: {why}.", name)


def _shown(value: object) -> str:
    if isinstance(value, dict):
        return "{}"
    return "null" if value is None else str(value)


# -- requests ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompletionRequest:
    """A parsed `/v1/completions` (or `/v1/chat/completions`) request."""

    model: str
    prompts: tuple[str, ...]
    params: GenerationParams
    stream: bool = False
    include_usage: bool = False
    echo: bool = False


@dataclass(frozen=True)
class ChatRequest:
    """A parsed `/v1/chat/completions` request; the server renders its messages into a prompt
    by the model's chat template. `params.max_length` is None's stand-in when `max_tokens` is
    not given (`max_tokens_given` False): the answer then runs until its turn ends."""

    model: str
    messages: tuple[ChatMessage, ...]
    assistant_name: str | None
    params: GenerationParams
    max_tokens_given: bool
    stream: bool = False
    include_usage: bool = False


def parse_completion_request(body: object, limits: GenerationLimits) -> CompletionRequest:
    """A `/v1/completions` body, every field checked; raises `BadRequest` naming the field."""
    fields = _Fields(body)
    model = _model(fields)
    prompts = _prompts(fields)
    for name, default, why in (
        ("best_of", 1, "the server generates one text per prompt"),
        ("suffix", None, "charbot models write forwards only (no insertion)"),
    ):
        fields.at_default(name, default, why)
    logprobs = fields.integer("logprobs")
    if logprobs is not None and logprobs != 0:
        raise BadRequest(
            "logprobs must be null or 0: charbot does not return logprobs.", "logprobs"
        )
    max_tokens = fields.integer("max_tokens")
    params = _sampling(fields, limits, DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens)
    stream, include_usage = _stream(fields)
    if stream and len(prompts) > 1:
        raise BadRequest("A streamed request takes one prompt; send the others apart.", "prompt")
    return CompletionRequest(model, prompts, params, stream, include_usage, fields.boolean("echo"))


def parse_chat_request(body: object, limits: GenerationLimits) -> ChatRequest:
    """A `/v1/chat/completions` body, every field checked; raises `BadRequest` naming the field.
    `max_completion_tokens` (which ChatOpenAI sends) is taken as `max_tokens`."""
    fields = _Fields(body)
    model = _model(fields)
    messages = _messages(fields)
    if fields.boolean("logprobs"):
        raise BadRequest("logprobs must be false: charbot does not return logprobs.", "logprobs")
    fields.at_default("top_logprobs", 0, "charbot does not return logprobs")
    tools = fields.get("tools")
    if tools is not None and tools != []:
        raise BadRequest("tools must be empty: charbot models cannot call tools.", "tools")
    response_format = fields.get("response_format")
    if response_format is not None and response_format != {"type": "text"}:
        raise BadRequest(
            'response_format must be {"type": "text"}: charbot models write plain text.',
            "response_format",
        )
    max_tokens = fields.integer("max_completion_tokens")
    if max_tokens is None:
        max_tokens = fields.integer("max_tokens")
    params = _sampling(fields, limits, limits.max_length if max_tokens is None else max_tokens)
    stream, include_usage = _stream(fields)
    return ChatRequest(
        model,
        messages,
        fields.string("assistant_name"),
        params,
        max_tokens is not None,
        stream,
        include_usage,
    )


def _model(fields: _Fields) -> str:
    model = fields.string("model", required=True)
    assert model is not None
    return model


def _prompts(fields: _Fields) -> tuple[str, ...]:
    prompt = fields.get("prompt")
    if prompt is None:
        raise BadRequest("The request needs a prompt (a string, or an array of strings).", "prompt")
    if isinstance(prompt, str):
        return (prompt,)
    if not isinstance(prompt, list):
        raise BadRequest(
            f"prompt must be a string or an array of strings, not {json_type(prompt)}.", "prompt"
        )
    if not prompt:
        raise BadRequest("prompt must not be an empty array.", "prompt")
    for item in prompt:
        if isinstance(item, int | list) and not isinstance(item, bool):
            raise BadRequest("prompt must be text: token-id prompts are not supported.", "prompt")
        if not isinstance(item, str):
            raise BadRequest(f"prompt's items must be strings, not {json_type(item)}.", "prompt")
    if len(prompt) > MAX_PROMPTS:
        raise BadRequest(
            f"prompt holds {len(prompt)} texts; at most {MAX_PROMPTS} go in one request.", "prompt"
        )
    return tuple(prompt)


_ROLES: Final = ("system", "developer", "user", "assistant")


def _messages(fields: _Fields) -> tuple[ChatMessage, ...]:
    messages = fields.get("messages")
    if not isinstance(messages, list):
        if messages is None:
            raise BadRequest("The request needs messages (an array of objects).", "messages")
        raise BadRequest(f"messages must be an array, not {json_type(messages)}.", "messages")
    if not messages:
        raise BadRequest("messages must not be an empty array.", "messages")
    out = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise BadRequest(f"{where} must be an object, not {json_type(message)}.", where)
        role = message.get("role")
        if role not in _ROLES:
            raise BadRequest(
                f"{where}.role must be one of {', '.join(_ROLES)}; got {role!r}.", f"{where}.role"
            )
        name = message.get("name")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise BadRequest(f"{where}.name must be a non-empty string.", f"{where}.name")
        content = _content(message.get("content"), f"{where}.content")
        if role in ("system", "developer"):
            out.append(ChatMessage(None, content))
        else:
            out.append(ChatMessage((name or role).strip(), content))
    return tuple(out)


def _content(content: object, where: str) -> str:
    """A message's text: a string, or an array of text parts (as the openai client may send)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not (isinstance(part, Mapping) and part.get("type") == "text"):
                raise BadRequest(f"{where} may hold text parts only.", where)
            text = part.get("text")
            if not isinstance(text, str):
                raise BadRequest(f"{where}'s text parts need a string text.", where)
            texts.append(text)
        return "".join(texts)
    raise BadRequest(
        f"{where} must be a string or an array of parts, not {json_type(content)}.", where
    )


def _sampling(fields: _Fields, limits: GenerationLimits, max_tokens: int) -> GenerationParams:
    """The sampling fields both routes share, as the engine's params."""
    n = fields.integer("n")
    if n is not None and n != 1:
        raise BadRequest("n must be 1: the server generates one text per prompt.", "n")
    for name in ("frequency_penalty", "presence_penalty"):
        penalty = fields.number(name)
        if penalty is not None and penalty != 0:
            raise BadRequest(f"{name} must be 0: charbot models take no penalties.", name)
    fields.at_default("logit_bias", {}, "charbot does not bias tokens")
    fields.string("user")  # accepted and ignored
    if not 1 <= max_tokens <= limits.max_length:
        raise BadRequest(
            f"max_tokens must be from 1 to {limits.max_length}; got {max_tokens}.", "max_tokens"
        )
    temperature = fields.number("temperature")
    temperature = DEFAULT_TEMPERATURE if temperature is None else temperature
    if not 0 <= temperature <= MAX_TEMPERATURE:
        raise BadRequest(
            f"temperature must be from 0 to {MAX_TEMPERATURE:g}; got {temperature:g}.",
            "temperature",
        )
    top_p = fields.number("top_p")
    top_p = 1.0 if top_p is None else top_p
    if not 0 < top_p <= 1:
        raise BadRequest(f"top_p must be above 0 and at most 1; got {top_p:g}.", "top_p")
    top_k = fields.integer("top_k")
    # 0 is off, as charbot has it; -1 is off in vLLM's spelling.
    top_k = 0 if top_k is None or top_k == -1 else top_k
    if top_k < 0:
        raise BadRequest(f"top_k must be 0 (off) or more; got {top_k}.", "top_k")
    seed = fields.integer("seed")
    if seed is not None and seed < 0:
        raise BadRequest(f"seed must be 0 or more; got {seed}.", "seed")
    params = GenerationParams(
        max_length=max_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
        stop=_stop(fields, limits),
        clean_end=fields.boolean("clean_end"),
    )
    try:
        return params.validate(limits)
    except InvalidParamsError as exc:  # a bound the checks above do not spell out
        raise BadRequest(str(exc)) from exc


def _stop(fields: _Fields, limits: GenerationLimits) -> tuple[str, ...]:
    stop = fields.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise BadRequest("stop must be a string or an array of up to 4 strings.", "stop")
    if len(stop) > MAX_STOP:
        raise BadRequest(f"stop holds {len(stop)} strings; at most {MAX_STOP} are allowed.", "stop")
    if any(not s or len(s) > limits.max_stop_length for s in stop):
        raise BadRequest(
            f"Each stop string must have 1 to {limits.max_stop_length} characters.", "stop"
        )
    return tuple(stop)


def _stream(fields: _Fields) -> tuple[bool, bool]:
    stream = fields.boolean("stream")
    options = fields.get("stream_options")
    if options is None:
        return stream, False
    if not isinstance(options, Mapping):
        raise BadRequest(
            f"stream_options must be an object, not {json_type(options)}.", "stream_options"
        )
    usage = options.get("include_usage")
    if usage is not None and not isinstance(usage, bool):
        raise BadRequest(
            "stream_options.include_usage must be true or false.", "stream_options.include_usage"
        )
    return stream, bool(usage)


def with_stops(params: GenerationParams, stops: Sequence[str]) -> GenerationParams:
    """`params` also ending at `stops` (a chat template's end of turn)."""
    return replace(params, stop=tuple(dict.fromkeys((*params.stop, *stops))))


# -- answers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerIds:
    """The id and creation time one answer (and each of its stream's chunks) carries."""

    id: str
    created: int
    model: str

    @classmethod
    def new(cls, prefix: str, model: str) -> AnswerIds:
        return cls(f"{prefix}-{secrets.token_hex(12)}", int(time.time()), model)


def usage(completions: Sequence[Completion]) -> dict[str, int]:
    prompt = sum(c.prompt_tokens for c in completions)
    generated = sum(c.tokens for c in completions)
    total = prompt + generated
    return {"prompt_tokens": prompt, "completion_tokens": generated, "total_tokens": total}


def facts(completion: Completion) -> dict[str, Any]:
    """charbot's own facts about an answer: the prompt pieces the model did not know."""
    return {EXTRA: {"unknown": list(completion.unknown), "unknown_token": completion.unknown_token}}


def text_completion(
    ids: AnswerIds, completions: Sequence[Completion], echo: bool = False
) -> dict[str, Any]:
    """A `/v1/completions` answer: one choice per prompt, in the prompts' order."""
    choices = [
        {
            "text": (c.prompt if echo else "") + c.text,
            "index": i,
            "logprobs": None,
            "finish_reason": c.finish_reason,
            **facts(c),
        }
        for i, c in enumerate(completions)
    ]
    return {
        "id": ids.id,
        "object": "text_completion",
        "created": ids.created,
        "model": ids.model,
        "choices": choices,
        "usage": usage(completions),
    }


def text_chunk(
    ids: AnswerIds, text: str, last: Completion | None = None, include_usage: bool = False
) -> dict[str, Any]:
    """One chunk of a streamed `/v1/completions` answer; the last carries its finish_reason."""
    choice: dict[str, Any] = {
        "text": text,
        "index": 0,
        "logprobs": None,
        "finish_reason": None if last is None else last.finish_reason,
    }
    if last is not None:
        choice |= facts(last)
    chunk = {
        "id": ids.id,
        "object": "text_completion",
        "created": ids.created,
        "model": ids.model,
        "choices": [choice],
    }
    if last is not None and include_usage:
        chunk["usage"] = usage([last])
    return chunk


def chat_completion(ids: AnswerIds, completion: Completion) -> dict[str, Any]:
    """A `/v1/chat/completions` answer: the answering speaker's turn."""
    return {
        "id": ids.id,
        "object": "chat.completion",
        "created": ids.created,
        "model": ids.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": completion.text},
                "logprobs": None,
                "finish_reason": completion.finish_reason,
                **facts(completion),
            }
        ],
        "usage": usage([completion]),
    }


def chat_chunk(
    ids: AnswerIds,
    delta: Mapping[str, str],
    last: Completion | None = None,
    include_usage: bool = False,
) -> dict[str, Any]:
    """One chunk of a streamed chat answer: the first has `delta.role`, the last its
    finish_reason (and an empty delta)."""
    choice: dict[str, Any] = {
        "index": 0,
        "delta": dict(delta),
        "logprobs": None,
        "finish_reason": None if last is None else last.finish_reason,
    }
    if last is not None:
        choice |= facts(last)
    chunk = {
        "id": ids.id,
        "object": "chat.completion.chunk",
        "created": ids.created,
        "model": ids.model,
        "choices": [choice],
    }
    if last is not None and include_usage:
        chunk["usage"] = usage([last])
    return chunk
