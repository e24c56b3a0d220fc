"""The model server's HTTP API as plain HTTP clients (curl, other languages) see it: OpenAI's
shapes for answers, streams and errors, and the API key."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.bot.serving.conftest import PLAY_SPEAKER, Served


async def post(
    served: Served, route: str, body: Any, *, auth: bool = True
) -> tuple[int, Any, aiohttp.ClientResponse]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **(served.auth if auth else {})}
    async with (
        aiohttp.ClientSession() as http,
        http.post(served.v1 + route, data=data, headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None), response


async def get(served: Served, path: str, *, auth: bool = True) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(headers=served.auth if auth else {}) as http,
        http.get(served.base + path, allow_redirects=False) as response,
    ):
        return response.status, await response.json(content_type=None)


def is_error(body: Any, param: str | None = None) -> bool:
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"].endswith("."), error
    return param is None or error["param"] == param


async def test_a_completion_has_openais_shape(served: Served) -> None:
    body = {"model": "tiny", "prompt": ["To be", "Or not"], "max_tokens": 12, "echo": True}
    status, answer, _ = await post(served, "/completions", body)
    assert status == 200
    assert answer["object"] == "text_completion" and answer["model"] == "tiny"
    assert answer["id"].startswith("cmpl-") and isinstance(answer["created"], int)
    assert [c["index"] for c in answer["choices"]] == [0, 1]
    first = answer["choices"][0]
    assert first["text"].startswith("To be") and first["logprobs"] is None
    assert first["finish_reason"] == "length"
    # charbot's own facts ride in an extra field: here, nothing the model did not know.
    assert first["charbot"] == {"unknown": [], "unknown_token": None}
    assert answer["usage"] == {"prompt_tokens": 11, "completion_tokens": 24, "total_tokens": 35}
    # Pieces the vocabulary lacks are named, and left out of the count of the prompt.
    status, answer, _ = await post(served, "/completions", {"model": "tiny", "prompt": "To be ☃"})
    assert status == 200 and answer["choices"][0]["charbot"]["unknown"] == ["☃"]
    assert answer["usage"]["prompt_tokens"] == 6
    assert answer["usage"]["completion_tokens"] == 16  # OpenAI's default max_tokens


async def test_a_stream_is_server_sent_events_ending_in_done(served: Served) -> None:
    body = {"model": "tiny", "prompt": "To be", "max_tokens": 30, "stream": True}
    async with (
        aiohttp.ClientSession(headers=served.auth) as http,
        http.post(served.v1 + "/completions", json=body) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        raw = (await response.read()).decode()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all(c["object"] == "text_completion" for c in chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "length"
    assert all("usage" not in c for c in chunks)  # not asked for
    assert len("".join(c["choices"][0]["text"] for c in chunks)) == 30


async def test_chat_answers_for_the_answering_speaker(served: Served) -> None:
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "To be"}],
        "assistant_name": "HAMLET",
        "temperature": 0,
        "max_tokens": 200,
    }
    status, answer, _ = await post(served, "/chat/completions", body)
    assert status == 200 and answer["object"] == "chat.completion"
    message = answer["choices"][0]["message"]
    assert message["role"] == "assistant" and "\n" not in message["content"]
    # The same turn, written by hand in the `lines` template, as a plain completion.
    plain = {
        "model": "tiny",
        "prompt": "user: To be\nHAMLET: ",
        "stop": "\n",
        "temperature": 0,
        "max_tokens": 200,
    }
    status, completion, _ = await post(served, "/completions", plain)
    assert completion["choices"][0]["text"] == message["content"]


async def test_a_play_model_answers_as_its_chat_name_until_a_blank_line(served: Served) -> None:
    messages = [
        {"role": "system", "content": "Elsinore."},
        {"role": "user", "name": "OPHELIA", "content": "My lord,\n\nhow does your honour?"},
    ]
    body = {"model": "play", "messages": messages, "temperature": 0, "max_tokens": 300}
    status, answer, _ = await post(served, "/chat/completions", body)
    assert status == 200
    text = answer["choices"][0]["message"]["content"]
    # The `play` template, by hand: headings on their own lines, no blank line in a speech, the
    # model's chat_name answering; its turn ends at a blank line.
    prompt = f"Elsinore.\n\nOPHELIA:\nMy lord,\nhow does your honour?\n\n{PLAY_SPEAKER}:\n"
    plain = {"model": "play", "prompt": prompt, "stop": "\n\n", "temperature": 0, "max_tokens": 300}
    status, completion, _ = await post(served, "/completions", plain)
    assert text == completion["choices"][0]["text"] and "\n\n" not in text


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"model": "tiny", "prompt": "a", "temperature": 5}, "temperature", "from 0 to 2"),
        ({"model": "tiny", "prompt": "a", "temperature": "hot"}, "temperature", "not a string"),
        ({"model": "tiny", "prompt": "a", "max_tokens": -1}, "max_tokens", "from 1 to"),
        ({"model": "tiny", "prompt": "a", "max_tokens": 10**6}, "max_tokens", "from 1 to"),
        ({"model": "tiny", "prompt": []}, "prompt", "empty array"),
        ({"model": "tiny", "prompt": [[1, 2]]}, "prompt", "token-id"),
        ({"model": "tiny", "prompt": {"a": 1}}, "prompt", "not an object"),
        ({"model": "tiny"}, "prompt", "needs a prompt"),
        ({"prompt": "a"}, "model", "needs model"),
        ({"model": "tiny", "prompt": "a", "clean_end": "yes"}, "clean_end", "not a string"),
        ({"model": "tiny", "prompt": "a", "stop": ["a", "b", "c", "d", "e"]}, "stop", "at most"),
        ({"model": "tiny", "prompt": "a", "stop": ("x", 1)}, "stop", "array of up to 4"),
        ({"model": "tiny", "prompt": "a", "n": 2}, "n", "must be 1"),
        ({"model": "tiny", "prompt": "a", "logprobs": 2}, "logprobs", "null or 0"),
        ({"model": "tiny", "prompt": "a", "presence_penalty": 1}, "presence_penalty", "be 0"),
        ({"model": "tiny", "prompt": "a", "logit_bias": {"1": 5}}, "logit_bias", "be {}"),
        ({"model": "tiny", "prompt": "a", "suffix": "end"}, "suffix", "be null"),
        ({"model": "tiny", "prompt": "a", "seed": -3}, "seed", "0 or more"),
        ({"model": "tiny", "prompt": "a", "stream_options": []}, "stream_options", "an array"),
    ],
)
async def test_a_bad_field_is_a_400_naming_it(
    served: Served, body: dict[str, Any], param: str, says: str
) -> None:
    status, answer, _ = await post(served, "/completions", body)
    assert status == 400, answer
    assert is_error(answer, param) and says in answer["error"]["message"], answer
    assert answer["error"]["type"] == "invalid_request_error"


async def test_defaults_and_nulls_are_accepted(served: Served) -> None:
    """What clients send at their defaults (LangChain sends most of these), and null for any
    field, mean "not given"."""
    body = {
        "model": "tiny", "prompt": ["To be"], "max_tokens": 5, "temperature": None,
        "top_p": 1, "frequency_penalty": 0, "presence_penalty": 0.0, "n": 1, "best_of": 1,
        "logit_bias": {}, "logprobs": None, "suffix": None, "seed": None, "stop": None,
        "user": "someone", "stream": False, "echo": None, "top_k": -1, "an_extra_field": 1,
    }  # fmt: skip
    status, answer, _ = await post(served, "/completions", body)
    assert status == 200, answer


async def test_bad_requests_and_routes_are_errors_in_openais_shape(served: Served) -> None:
    status, answer, _ = await post(served, "/completions", b"{not json")
    assert status == 400 and is_error(answer) and "not valid JSON" in answer["error"]["message"]
    status, answer, _ = await post(served, "/chat/completions", {"model": "tiny", "messages": []})
    assert status == 400 and is_error(answer, "messages")
    bad_role = {"model": "tiny", "messages": [{"role": "wizard", "content": "hi"}]}
    status, answer, _ = await post(served, "/chat/completions", bad_role)
    assert status == 400 and is_error(answer, "messages[0].role")
    status, answer, _ = await post(served, "/completions", {"model": "nope", "prompt": "a"})
    assert status == 404 and is_error(answer) and answer["error"]["code"] == "model_not_found"
    # No redirect to or from a trailing slash: an answer, or a 404 in the same shape.
    assert (await get(served, "/v1/models/tiny/"))[0] == 200
    status, answer = await get(served, "/v1/nothing")
    assert status == 404 and is_error(answer) and answer["error"]["code"] == "unknown_url"
    status, answer = await get(served, "/v1/completions")
    assert status == 405 and is_error(answer)
    status, answer = await get(served, "/v1/models/nope")
    assert status == 404 and is_error(answer)


async def test_the_key_is_needed_and_never_logged(served: Served) -> None:
    for path in ("/v1/models", "/v1/models/tiny", "/v1/nothing"):
        status, answer = await get(served, path, auth=False)
        assert status == 401 and is_error(answer) and answer["error"]["code"] == "invalid_api_key"
        assert served.key not in json.dumps(answer)
    status, answer, _ = await post(
        served, "/completions", {"model": "tiny", "prompt": "a"}, auth=False
    )
    assert status == 401
    status, answer = await get(served, "/healthz", auth=False)  # probes need no key
    assert status == 200 and answer == {"status": "ok", "models": ["tiny", "slow", "play"]}
    # Neither the server's output nor any of Ray's logs on this machine holds the key.
    assert served.key not in served.log.read_text()
    for logged in (served.ray_session / "logs").rglob("*"):
        if logged.is_file():
            assert served.key.encode() not in logged.read_bytes(), logged
