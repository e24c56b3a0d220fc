"""The model server's HTTP format, shared by the server (`bot.serving.app`) and the bot's remote
backend (`bot.serving.remote`), so the two cannot drift apart. No Ray, no HTTP library here.

    POST /v1/models/NAME/complete   {"prompt": "ROMEO:", "max_length": 200, "temperature": 0.8,
                                     "top_k": 0, "top_p": 1.0, "seed": 1, "stop": ["\\n\\n"]}
        -> 200 {"completion": {"text": ..., "prompt": ..., "tokens": ..., "finish_reason": ...,
                               "unknown": [...], "model": ..., "seconds": ...}}
    POST /v1/models/NAME/stream     (the same body)
        -> 200 NDJSON: {"text": "..."} per chunk; the last line also has "completion" (as above);
           a failure after the first line is a line {"error": {...}}
    any failure -> 4xx/5xx {"error": {"type": "busy", "message": "a sentence"}}

Only `prompt` is required; a missing parameter takes `GenerationParams`'s default.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from bot.errors import (
    CharbotError,
    EngineBusyError,
    EngineClosedError,
    GenerationError,
    InvalidParamsError,
    ModelUnavailableError,
    RequestTimeoutError,
    UnknownModelError,
    WorkerError,
)
from bot.generation.backend import BackendStats, Completion, ModelInfo
from bot.generation.params import GenerationParams

API_PREFIX = "/v1/models"
RETRY_AFTER_SECONDS = 1  # what a 429 asks the client to wait

#: Each error type: its HTTP status and its name on the wire. Order matters: subclasses first.
ERRORS: tuple[tuple[type[CharbotError], int, str], ...] = (
    (InvalidParamsError, 400, "invalid_params"),
    (UnknownModelError, 404, "unknown_model"),
    (EngineBusyError, 429, "busy"),
    (EngineClosedError, 503, "closed"),
    (ModelUnavailableError, 503, "unavailable"),
    (RequestTimeoutError, 504, "timeout"),
    (WorkerError, 500, "worker"),
)
_PARAM_FIELDS = {f.name for f in dataclasses.fields(GenerationParams)}


class WireFormatError(ValueError):
    """A body that does not follow this format (the server answers it with a 400)."""


# -- requests ----------------------------------------------------------------------------------


def request_body(prompt: str, params: GenerationParams) -> dict[str, Any]:
    body = dataclasses.asdict(params)
    body["stop"] = list(params.stop)
    return {"prompt": prompt, **body}


def parse_request(body: Any) -> tuple[str, GenerationParams]:
    """The prompt and params of a request body; types and bounds are checked by the engine."""
    if not isinstance(body, Mapping):
        raise InvalidParamsError("The request body must be a JSON object.")
    unknown = sorted(set(body) - _PARAM_FIELDS - {"prompt"})
    if unknown:
        raise InvalidParamsError(f"Unknown request field {unknown[0]!r}.")
    if "prompt" not in body:
        raise InvalidParamsError("The request needs a prompt.")
    fields = {k: v for k, v in body.items() if k in _PARAM_FIELDS}
    if "stop" in fields:
        if not isinstance(fields["stop"], list):
            raise InvalidParamsError("Stop sequences must be given as a list of texts.")
        fields["stop"] = tuple(fields["stop"])
    return body["prompt"], GenerationParams(**fields)


def loads(data: bytes | str) -> Any:
    """JSON, where a body that is not JSON is the client's fault (400)."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidParamsError("The request body is not valid JSON.") from exc


# -- results -----------------------------------------------------------------------------------


def completion_json(completion: Completion) -> dict[str, Any]:
    data = dataclasses.asdict(completion)
    data["unknown"] = list(completion.unknown)
    return data


def parse_completion(data: Any) -> Completion:
    try:
        return Completion(**{**data, "unknown": tuple(data["unknown"])})
    except (TypeError, KeyError) as exc:
        raise WireFormatError(f"not a completion: {data!r:.200}") from exc


def chunk_line(text: str, completion: Completion | None = None) -> bytes:
    """One NDJSON line of a stream; the last one carries the completion."""
    line: dict[str, Any] = {"text": text}
    if completion is not None:
        line["completion"] = completion_json(completion)
    return json.dumps(line).encode() + b"\n"


def info_json(info: ModelInfo) -> dict[str, Any]:
    data = dataclasses.asdict(info)
    data["path"] = None  # where the server keeps its file means nothing to a client
    data["training"] = dict(info.training)
    data["details"] = dict(info.details)
    return data


def parse_info(data: Any) -> ModelInfo:
    try:
        return ModelInfo(**data)
    except TypeError as exc:
        raise WireFormatError(f"not a model description: {data!r:.200}") from exc


def stats_json(stats: BackendStats) -> dict[str, Any]:
    return dataclasses.asdict(stats)


def parse_stats(data: Any) -> BackendStats:
    try:
        return BackendStats(**data)
    except TypeError as exc:
        raise WireFormatError(f"not engine statistics: {data!r:.200}") from exc


# -- errors ------------------------------------------------------------------------------------


def error_status(exc: CharbotError) -> tuple[int, dict[str, Any]]:
    """The status and JSON body that report `exc`."""
    for cls, status, kind in ERRORS:
        if isinstance(exc, cls):
            return status, error_json(kind, str(exc))
    kind = "generation" if isinstance(exc, GenerationError) else "error"
    return 500, error_json(kind, str(exc))


def error_json(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message}}


def parse_error(status: int, body: Any) -> CharbotError:
    """The bot's error for a failed response: by the body's type, else by the status."""
    error = body.get("error") if isinstance(body, Mapping) else None
    kind = error.get("type") if isinstance(error, Mapping) else None
    message = error.get("message") if isinstance(error, Mapping) else None
    if not isinstance(message, str) or not message:
        message = f"The model server answered with HTTP status {status}."
    for cls, _, name in ERRORS:
        if kind == name:
            return cls(message)
    for cls, code, _ in ERRORS:
        if status == code:
            return cls(message)
    if 400 <= status < 500:
        return InvalidParamsError(message)
    return WorkerError(message)
