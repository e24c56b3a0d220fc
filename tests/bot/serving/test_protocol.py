"""Parsing the OpenAI-compatible requests (`bot/serving/protocol.py`), without a server."""

from __future__ import annotations

from typing import Any

import pytest

from bot.generation.params import GenerationLimits, GenerationParams
from bot.serving.protocol import (
    BadRequest,
    error_status,
    parse_chat_request,
    parse_completion_request,
    with_stops,
)
from models.chat import ChatMessage

LIMITS = GenerationLimits(max_length=500)


def test_a_completion_request_becomes_the_engines_params() -> None:
    body = {
        "model": "m", "prompt": "To be", "max_tokens": 40, "temperature": 0.5, "top_p": 0.9,
        "top_k": 20, "seed": 3, "stop": "\n", "clean_end": True, "stream": True,
        "stream_options": {"include_usage": True}, "echo": True,
    }  # fmt: skip
    req = parse_completion_request(body, LIMITS)
    assert req.prompts == ("To be",)
    assert req.params == GenerationParams(
        max_length=40, temperature=0.5, top_k=20, top_p=0.9, seed=3, stop=("\n",), clean_end=True
    )
    assert (req.stream, req.include_usage, req.echo) == (True, True, True)
    plain = parse_completion_request({"model": "m", "prompt": ["a", "b"]}, LIMITS)
    # OpenAI's defaults: 16 tokens at temperature 1.
    assert plain.params == GenerationParams(max_length=16, temperature=1.0)
    assert plain.prompts == ("a", "b")


def test_a_chat_request_names_its_speakers() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "name": "ROMEO", "content": [{"type": "text", "text": "Hi"}]},
            {"role": "assistant", "content": None},
            {"role": "user", "content": "And?"},
        ],
        "max_completion_tokens": 30,
        "assistant_name": "JULIET",
    }
    req = parse_chat_request(body, LIMITS)
    assert req.messages == (
        ChatMessage(None, "Be brief."),
        ChatMessage("ROMEO", "Hi"),
        ChatMessage("assistant", ""),
        ChatMessage("user", "And?"),
    )
    assert req.assistant_name == "JULIET"
    assert req.params.max_length == 30 and req.max_tokens_given
    # Without max_tokens a chat answer runs until its turn ends, or the engine's limit.
    loose = parse_chat_request(
        {"model": "m", "messages": [{"role": "user", "content": "x"}]}, LIMITS
    )
    assert loose.params.max_length == 500 and not loose.max_tokens_given
    assert with_stops(req.params, ("\n",)).stop == ("\n",)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
         "messages[0].content"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "m", "messages": [{"role": "user", "name": "", "content": "x"}]},
         "messages[0].name"),
        ({"model": "m", "messages": ["hi"]}, "messages[0]"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "logprobs": True},
         "logprobs"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{}]}, "tools"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}],
          "response_format": {"type": "json_object"}}, "response_format"),
    ],
)  # fmt: skip
def test_a_bad_chat_field_is_named(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_chat_request(body, LIMITS)
    status, error = error_status(caught.value)
    assert status == 400 and error["error"]["param"] == param


def test_a_streamed_request_takes_one_prompt() -> None:
    with pytest.raises(BadRequest, match="one prompt"):
        parse_completion_request({"model": "m", "prompt": ["a", "b"], "stream": True}, LIMITS)


def test_json_types_are_named_as_json_names_them() -> None:
    with pytest.raises(BadRequest, match="must be a string or an array of strings, not a number"):
        parse_completion_request({"model": "m", "prompt": 5}, LIMITS)
    with pytest.raises(BadRequest, match="must be true or false, not a string"):
        parse_completion_request({"model": "m", "prompt": "a", "echo": "yes"}, LIMITS)
    with pytest.raises(BadRequest, match="must be a JSON object, not an array"):
        parse_completion_request([], LIMITS)
