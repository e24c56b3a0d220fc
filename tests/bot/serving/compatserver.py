"""A small OpenAI-compatible server that behaves as common servers do where they differ from
charbot's, for the bot's `openai` backend to be tested against something that is not charbot:

- it ignores `top_k` and `clean_end` (OpenAI's own API knows neither);
- an unstreamed answer has no `usage` unless `usage` is on (llama.cpp's older servers);
- a stream ends with a chunk whose `choices` are empty and which carries `usage` (OpenAI's and
  vLLM's way with `stream_options.include_usage`), or with `data: [DONE]` alone, no finish
  reason anywhere (`done_only`);
- it answers 429 with `Retry-After` to the next `busy` requests, with an Ollama-style error body
  (`{"error": "a string"}`);
- it lists its model with a tag, as Ollama does (`llama3.2:latest`).

Its text is `TEXT` repeated, cut at `max_tokens` characters or before a stop string; a stream
sends it `PIECE` characters at a time. It records what each request sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

MODEL_ID = "llama3.2:latest"
TEXT = "All the world's a stage, and all the men and women merely players. "
PIECE = 7


@dataclass
class Quirks:
    usage: bool = False  # unstreamed answers carry usage
    done_only: bool = False  # streams end with [DONE] alone: no finish reason, no usage chunk
    busy: int = 0  # the next `busy` requests get a 429
    retry_after: str = "1"


@dataclass
class Received:
    path: str
    body: Any
    headers: dict[str, str]


@dataclass
class CompatServer:
    quirks: Quirks = field(default_factory=Quirks)
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def v1(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/completions", self._completions)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def bodies(self) -> list[Any]:
        return [r.body for r in self.received if r.path == "/v1/completions"]

    async def _models(self, request: web.Request) -> web.Response:
        self._record(request, None)
        data = [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "library"}]
        return web.json_response({"object": "list", "data": data})

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self._record(request, body)
        if self.quirks.busy:
            self.quirks.busy -= 1
            return web.json_response(
                {"error": "server busy, please retry"},
                status=429,
                headers={"Retry-After": self.quirks.retry_after},
            )
        text, reason = answer(body)
        prompt_tokens = len(body["prompt"])
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(text),
            "total_tokens": prompt_tokens + len(text),
        }
        head = {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": MODEL_ID}
        if not body.get("stream"):
            choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": reason}
            answered = {**head, "choices": [choice]}
            if self.quirks.usage:
                answered["usage"] = usage
            return web.json_response(answered)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for start in range(0, len(text), PIECE):
            piece = {"text": text[start : start + PIECE], "index": 0, "finish_reason": None}
            await _send(response, {**head, "choices": [piece]})
        if not self.quirks.done_only:
            await _send(response, {**head, "choices": [{"text": "", "finish_reason": reason}]})
            if (body.get("stream_options") or {}).get("include_usage"):
                await _send(response, {**head, "choices": [], "usage": usage})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def _record(self, request: web.Request, body: Any) -> None:
        self.received.append(Received(request.path, body, dict(request.headers)))


def answer(body: dict[str, Any]) -> tuple[str, str]:
    """The text for a request, and why it ended."""
    length = int(body.get("max_tokens") or 16)
    text = (TEXT * (length // len(TEXT) + 1))[:length]
    stops = body.get("stop") or []
    stops = [stops] if isinstance(stops, str) else stops
    cuts = [i for s in stops if (i := text.find(s)) >= 0]
    return (text[: min(cuts)], "stop") if cuts else (text, "length")


async def _send(response: web.StreamResponse, data: Any) -> None:
    await response.write(b"data: " + json.dumps(data).encode() + b"\n\n")
