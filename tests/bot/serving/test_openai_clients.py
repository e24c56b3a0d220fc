"""The official `openai` package's clients, sync and async, against `python -m bot serve`.
(Its RateLimitError, which needs a full queue, is in test_openai_backend.py.)"""

from __future__ import annotations

import asyncio

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.bot.serving.conftest import QUEUED, ROWS, Served


def sync_client(served: Served, **kwargs: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.v1, api_key=served.key, **kwargs)  # type: ignore[arg-type]


def async_client(served: Served, **kwargs: object) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=served.v1, api_key=served.key, **kwargs)  # type: ignore[arg-type]


def test_models_are_listed_and_described(served: Served) -> None:
    with sync_client(served) as client:
        models = client.models.list()
        assert [m.id for m in models.data] == ["tiny", "slow", "play"]
        assert all(m.object == "model" and m.owned_by == "charbot" for m in models.data)
        tiny = client.models.retrieve("tiny")
        assert tiny.id == "tiny"
        facts = tiny.model_extra["charbot"]  # type: ignore[index]
        assert facts["chat_template"] == "lines"  # its metadata names none
        assert client.models.retrieve("play").model_extra["charbot"]["chat_template"] == "play"  # type: ignore[index]
        assert facts["details"]["cell"] == "lstm"
        assert facts["replicas"] == 1
        assert facts["stats"]["active_requests"] == 0


def test_sync_completions_streamed_and_not(served: Served) -> None:
    with sync_client(served) as client:
        whole = client.completions.create(
            model="tiny", prompt="To be", max_tokens=60, temperature=0
        )
        (choice,) = whole.choices
        assert choice.index == 0 and choice.finish_reason == "length"
        assert whole.usage is not None
        assert (whole.usage.prompt_tokens, whole.usage.completion_tokens) == (5, 60)
        assert whole.usage.total_tokens == 65
        stream = client.completions.create(
            model="tiny",
            prompt="To be",
            max_tokens=60,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        # Streamed text joined equals the whole text at temperature 0.
        assert "".join(c.choices[0].text for c in chunks) == choice.text
        assert [c.choices[0].finish_reason for c in chunks][-1] == "length"
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 60
        assert all(c.usage is None for c in chunks[:-1])


def test_a_stop_string_ends_streamed_and_whole_texts_alike(served: Served) -> None:
    with sync_client(served) as client:
        for seed in range(3):
            asked = {"model": "tiny", "prompt": "To be", "max_tokens": 200, "seed": seed}
            whole = client.completions.create(**asked, stop=["the", "\n"])  # type: ignore[call-overload]
            streamed = client.completions.create(**asked, stop=["the", "\n"], stream=True)  # type: ignore[call-overload]
            text = "".join(c.choices[0].text for c in streamed)
            assert text == whole.choices[0].text
            assert "the" not in text and "\n" not in text


def test_a_seed_repeats_and_a_list_of_prompts_answers_each_in_order(served: Served) -> None:
    prompts = ["To be", "Or not", "Whether", "The slings"]
    with sync_client(served) as client:
        asked = {"model": "tiny", "max_tokens": 40, "temperature": 0.9, "seed": 7}
        first = client.completions.create(prompt="To be", **asked)  # type: ignore[call-overload]
        again = client.completions.create(prompt="To be", **asked)  # type: ignore[call-overload]
        assert first.choices[0].text == again.choices[0].text
        batch = client.completions.create(prompt=prompts, **asked)  # type: ignore[call-overload]
        assert [c.index for c in batch.choices] == [0, 1, 2, 3]
        assert batch.choices[0].text == first.choices[0].text
        for prompt, choice in zip(prompts, batch.choices, strict=True):
            alone = client.completions.create(prompt=prompt, **asked)  # type: ignore[call-overload]
            assert choice.text == alone.choices[0].text
        assert batch.usage is not None and batch.usage.completion_tokens == 4 * 40


async def test_async_chat_streamed_and_not(served: Served) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "A scene."},
        {"role": "user", "name": "HAMLET", "content": "To be, or not to be"},
    ]
    async with async_client(served) as client:
        whole = await client.chat.completions.create(
            model="tiny",
            messages=messages,
            temperature=0,
            max_tokens=300,
        )
        (choice,) = whole.choices
        assert choice.message.role == "assistant"
        text = choice.message.content
        assert text is not None and "\n" not in text  # the turn ends at the line's end
        stream = await client.chat.completions.create(
            model="tiny",
            messages=messages,
            temperature=0,
            max_tokens=300,
            stream=True,
        )
        chunks = [chunk async for chunk in stream]
        assert chunks[0].choices[0].delta.role == "assistant"
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == text
        assert chunks[-1].choices[0].finish_reason == choice.finish_reason
        # max_completion_tokens, as ChatOpenAI sends it, is max_tokens.
        short = await client.chat.completions.create(
            model="tiny",
            messages=messages,
            max_completion_tokens=3,
            stop=["\n"],
        )
        assert short.usage is not None and short.usage.completion_tokens <= 3


async def test_async_completions_side_by_side_share_batches(served: Served) -> None:
    async with async_client(served) as client:
        before = (await client.models.retrieve("tiny")).model_extra["charbot"]["stats"]  # type: ignore[index]
        answers = await asyncio.gather(
            *(
                client.completions.create(model="tiny", prompt=f"To be {i}", max_tokens=400, seed=i)
                for i in range(ROWS + QUEUED)
            )
        )
        after = (await client.models.retrieve("tiny")).model_extra["charbot"]["stats"]  # type: ignore[index]
    assert all(a.usage is not None and a.usage.completion_tokens == 400 for a in answers)
    assert after["requests_served"] - before["requests_served"] == ROWS + QUEUED
    assert after["largest_batch"] > 1


def test_errors_map_to_the_clients_exceptions(served: Served) -> None:
    with openai.OpenAI(base_url=served.v1, api_key="wrong", max_retries=0) as stranger:
        with pytest.raises(openai.AuthenticationError):
            stranger.completions.create(model="tiny", prompt="a")
        with pytest.raises(openai.AuthenticationError):
            stranger.models.list()
    with sync_client(served, max_retries=0) as client:
        with pytest.raises(openai.NotFoundError, match="no model 'nope'"):
            client.completions.create(model="nope", prompt="a")
        for bad in ({"temperature": 5}, {"max_tokens": -1}, {"n": 2}, {"best_of": 3}):
            with pytest.raises(openai.BadRequestError) as caught:
                client.completions.create(model="tiny", prompt="a", **bad)  # type: ignore[call-overload]
            assert caught.value.param == next(iter(bad))
        with pytest.raises(openai.BadRequestError, match="prompt must not be an empty array"):
            client.completions.create(model="tiny", prompt=[])
        with pytest.raises(openai.BadRequestError, match="token-id prompts"):
            client.completions.create(model="tiny", prompt=[1, 2, 3])
        with pytest.raises(openai.BadRequestError, match="frequency_penalty"):
            client.completions.create(model="tiny", prompt="a", frequency_penalty=0.5)


def test_langchains_openai_llm_invokes_and_batches(served: Served) -> None:
    """LangChain's `OpenAI` sends a list of prompts even for one `invoke`, matches the choices to
    them by position, and needs `usage`."""
    lc = pytest.importorskip("langchain_openai", reason="needs langchain-openai (the dev extra)")
    llm = lc.OpenAI(
        base_url=served.v1, api_key=served.key, model="tiny", max_tokens=40, temperature=0
    )
    with sync_client(served) as client:
        alone = {
            p: client.completions.create(model="tiny", prompt=p, max_tokens=40, temperature=0)
            .choices[0]
            .text
            for p in ("To be", "Or not", "Whether")
        }
    assert llm.invoke("To be") == alone["To be"]
    assert llm.batch(list(alone)) == list(alone.values())
    # Its batches go out as one request of several prompts: the answers come back in order.
    assert llm.generate(list(alone)).generations[2][0].text == alone["Whether"]
    # ChatOpenAI sends max_completion_tokens for max_tokens.
    chat = lc.ChatOpenAI(
        base_url=served.v1, api_key=served.key, model="play", max_tokens=5, temperature=0
    )
    reply = chat.invoke("To be")
    assert isinstance(reply.content, str) and 0 < reply.usage_metadata["output_tokens"] <= 5
