"""The engine end to end on real tiny models: exactness, batching, cancellation, limits, swaps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from bot.errors import (
    EngineBusyError,
    EngineClosedError,
    InvalidParamsError,
    ModelLoadError,
    RequestTimeoutError,
    WorkerError,
)
from bot.generation import (
    Completion,
    Engine,
    EngineConfig,
    GenerationBackend,
    GenerationLimits,
    GenerationParams,
    load_model,
)
from models import contract
from tests.bot.generation.conftest import SlowFactory
from tests.bot.generation.fakemodels import build_bigram

Start = Callable[..., Awaitable[Engine]]
GREEDY = GenerationParams(temperature=0, max_length=60)


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    engines: list[Engine] = []

    async def make(path: Path, **config: object) -> Engine:
        config.setdefault("provider", "cpu")
        # Some tests need requests longer than the production default allows.
        config.setdefault("limits", GenerationLimits(max_length=5000))
        engine = await Engine.start(path, EngineConfig(**config))  # type: ignore[arg-type]
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.close()


def manual_greedy(path: Path, prompt: str, n: int) -> str:
    """The reference: a bare session.run loop, prompt primed in one call, argmax each step."""
    loaded = load_model(path, "cpu")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ids = loaded.tokenizer.encode(prompt).ids or [loaded.start_id]
    state = np.zeros((loaded.state_layers, 1, loaded.hidden), np.float32)
    tokens = np.array([ids], dtype=np.int64)
    out = []
    for _ in range(n):
        logits, state = session.run(
            None, {contract.INPUT_TOKENS: tokens, contract.INPUT_STATE: state}
        )
        token = int(np.argmax(logits[0, -1]))
        out.append(token)
        tokens = np.array([[token]], dtype=np.int64)
    return loaded.tokenizer.decode(out)


async def test_greedy_is_the_manual_argmax_loop(start: Start, tiny_onnx: Path) -> None:
    engine = await start(tiny_onnx)
    result = await engine.complete("To be, or", GREEDY)
    assert result.text == manual_greedy(tiny_onnx, "To be, or", 60)
    assert (result.tokens, result.finish_reason, result.prompt) == (60, "length", "To be, or")
    assert result.model == "tiny-lstm" and result.unknown == () and result.seconds > 0


async def test_engine_is_a_generation_backend(start: Start, tiny_onnx: Path) -> None:
    engine = await start(tiny_onnx)
    backend: GenerationBackend = engine  # mypy checks the protocol here
    assert isinstance(backend, GenerationBackend)
    assert engine.info.provider == "CPUExecutionProvider"
    assert engine.info.name == "tiny-lstm" and engine.info.path == tiny_onnx.resolve()


async def test_empty_prompt_starts_from_the_start_token(start: Start, tiny_onnx: Path) -> None:
    engine = await start(tiny_onnx)
    result = await engine.complete("", GREEDY)
    assert result.text == manual_greedy(tiny_onnx, "\n", 60)


async def test_a_seed_repeats_and_seeds_differ(start: Start, tiny_onnx: Path) -> None:
    engine = await start(tiny_onnx)
    params = GenerationParams(max_length=80, temperature=1.0, seed=11)
    first, again = [await engine.complete("Whether", params) for _ in range(2)]
    other = await engine.complete("Whether", GenerationParams(max_length=80, seed=12))
    assert first.text == again.text != other.text
    unseeded = {
        (await engine.complete("Or", GenerationParams(max_length=40))).text for _ in range(3)
    }
    assert len(unseeded) > 1  # fresh entropy when no seed is given


async def test_batched_rows_see_the_same_logits_as_alone(tiny_onnx: Path) -> None:
    model = load_model(tiny_onnx, "cpu")
    prompts = ["To be", "Whether 'tis", "And by opposing end"]
    primed = [model.prime(model.tokenizer.encode(p).ids) for p in prompts]
    tokens = np.array([[int(np.argmax(logits))] for logits, _ in primed], dtype=np.int64)
    state = np.concatenate([s for _, s in primed], axis=1)  # (layers * k, 3, H)
    batched, batched_state = model.run(tokens, state)
    for i, (_, alone_state) in enumerate(primed):
        alone, alone_out = model.run(tokens[i : i + 1], alone_state)
        assert np.abs(batched[i] - alone[0]).max() <= 1e-4
        assert np.abs(batched_state[:, i] - alone_out[:, 0]).max() <= 1e-4


MIXED = [
    ("To be", GenerationParams(max_length=90, temperature=0.9, seed=1)),
    ("Whether", GenerationParams(max_length=40, temperature=0)),
    ("The slings", GenerationParams(max_length=120, temperature=1.3, top_k=5, seed=2)),
    ("", GenerationParams(max_length=10, temperature=0.5, top_p=0.8, seed=3)),
    ("Or to take", GenerationParams(max_length=70, temperature=0.2, seed=4, stop=("e",))),
    ("And", GenerationParams(max_length=1, temperature=1.0, seed=5)),
]


async def test_requests_joining_and_leaving_keep_their_own_text(
    start: Start, tiny_onnx: Path, slow_sessions: SlowFactory
) -> None:
    sessions = slow_sessions(0.001)
    engine = await start(tiny_onnx, workers=1, max_batch=8)
    alone = [await engine.complete(prompt, params) for prompt, params in MIXED]

    async def staggered(i: int, prompt: str, params: GenerationParams) -> Completion:
        await asyncio.sleep(0.004 * i)  # join at different steps, leave at different lengths
        return await engine.complete(prompt, params)

    calls = sessions[0].calls
    together = await asyncio.gather(*(staggered(i, *m) for i, m in enumerate(MIXED)))
    assert [c.text for c in together] == [c.text for c in alone]
    assert [c.tokens for c in together] == [c.tokens for c in alone]
    assert together[4].finish_reason == "stop" and not together[4].text.endswith("e")
    assert together[5].tokens == 1
    # They shared steps: far fewer model calls than one loop per request would make.
    assert sessions[0].calls - calls < 0.75 * sum(c.tokens for c in alone)


async def test_several_workers_give_the_same_texts(start: Start, tiny_onnx: Path) -> None:
    engine = await start(tiny_onnx, workers=2, max_batch=4)
    params = [GenerationParams(max_length=50 + i, seed=i) for i in range(12)]
    alone = [await engine.complete("To", p) for p in params]
    together = await asyncio.gather(*(engine.complete("To", p) for p in params))
    assert [c.text for c in together] == [c.text for c in alone]
    stats = engine.stats()
    assert stats.requests_served == 24 and stats.active_requests == 0 and stats.queue_depth == 0
    assert stats.characters_generated == 2 * sum(len(c.text) for c in alone)
    assert stats.chars_per_second > 0


async def wait_until(condition: Callable[[], bool], seconds: float = 2.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


async def test_cancelled_request_leaves_the_batch(
    start: Start, tiny_onnx: Path, slow_sessions: SlowFactory
) -> None:
    sessions = slow_sessions(0.002)
    engine = await start(tiny_onnx, workers=1)
    long = asyncio.create_task(engine.complete("To", GenerationParams(max_length=2000)))
    short = [
        asyncio.create_task(engine.complete("Or", GenerationParams(max_length=30, seed=i)))
        for i in range(3)
    ]
    await wait_until(lambda: engine.stats().active_requests == 4)
    long.cancel()
    results = await asyncio.gather(*short)
    assert all(r.tokens == 30 for r in results)
    with pytest.raises(asyncio.CancelledError):
        await long
    await wait_until(lambda: engine.stats().active_requests == 0)
    stats = engine.stats()
    assert stats.requests_served == 3 and stats.requests_failed == 1
    assert sessions[0].calls < 500  # the 2000-token request did not run on


async def test_leaving_a_stream_cancels_it(
    start: Start, tiny_onnx: Path, slow_sessions: SlowFactory
) -> None:
    slow_sessions(0.002)
    engine = await start(tiny_onnx, stream_interval=0)
    async for chunk in engine.stream("To", GenerationParams(max_length=2000)):
        assert chunk.text and chunk.completion is None
        break
    await wait_until(lambda: engine.stats().active_requests == 0)
    assert engine.stats().requests_failed == 1


async def test_stream_chunks_add_up_to_the_completion(start: Start, tiny_onnx: Path) -> None:
    engine = await start(tiny_onnx, stream_interval=0)
    chunks = [c async for c in engine.stream("To be, or", GREEDY)]
    assert all(c.completion is None for c in chunks[:-1])
    final = chunks[-1].completion
    assert final is not None and final.text == "".join(c.text for c in chunks)
    assert final.text == manual_greedy(tiny_onnx, "To be, or", 60)


async def test_stop_sequence_is_cut_and_never_streamed(start: Start, tiny_onnx: Path) -> None:
    engine = await start(tiny_onnx, stream_interval=0)
    full = (await engine.complete("To be", GREEDY)).text
    stop = full[12:15]  # three characters from the middle of the greedy text
    cut = full[: full.index(stop)]
    params = GenerationParams(temperature=0, max_length=60, stop=("zzz", stop))
    result = await engine.complete("To be", params)
    assert (result.text, result.finish_reason) == (cut, "stop")
    assert result.tokens == len(cut) + len(stop)
    streamed = [c.text async for c in engine.stream("To be", params)]
    assert "".join(streamed) == cut  # no part of the stop sequence went out, even transiently


async def test_timeout(start: Start, tiny_onnx: Path, slow_sessions: SlowFactory) -> None:
    slow_sessions(0.005)
    engine = await start(tiny_onnx, request_timeout=0.1)
    began = time.monotonic()
    with pytest.raises(RequestTimeoutError, match=r"longer than 0\.1 seconds"):
        await engine.complete("To", GenerationParams(max_length=2000))
    assert time.monotonic() - began < 1.0
    with pytest.raises(RequestTimeoutError, match=r"longer than 0\.05 seconds"):
        async for _ in engine.stream("To", GenerationParams(max_length=2000), timeout=0.05):
            pass
    ok = await engine.complete("To", GenerationParams(max_length=5), timeout=5.0)
    assert ok.tokens == 5
    await wait_until(lambda: engine.stats().active_requests == 0)
    assert engine.stats().requests_failed == 2


async def test_queue_overflow_is_refused_at_once(
    start: Start, tiny_onnx: Path, slow_sessions: SlowFactory
) -> None:
    slow_sessions(0.003)
    engine = await start(tiny_onnx, workers=1, max_batch=1, max_queue=1)
    running = [
        asyncio.create_task(engine.complete("To", GenerationParams(max_length=20, seed=i)))
        for i in range(2)
    ]
    await asyncio.sleep(0)  # both submitted: one in the batch, one queued
    began = time.monotonic()
    with pytest.raises(EngineBusyError, match="busy"):
        await engine.complete("Or", GenerationParams(max_length=20))
    assert time.monotonic() - began < 0.05
    assert engine.stats().queue_depth + engine.stats().active_requests == 2
    assert [r.tokens for r in await asyncio.gather(*running)] == [20, 20]
    assert (await engine.complete("Or", GenerationParams(max_length=3))).tokens == 3


async def test_hot_swap(
    start: Start, tiny_onnx: Path, tiny_onnx_gru: Path, slow_sessions: SlowFactory, tmp_path: Path
) -> None:
    slow_sessions(0.001)
    engine = await start(tiny_onnx, stream_interval=0)
    params = GenerationParams(max_length=150, seed=9)
    expected_old = (await engine.complete("To", params)).text

    chunks = engine.stream("To", params)
    first = await anext(chunks)  # in flight on the old model
    info = await engine.reload(tiny_onnx_gru)
    assert info.name == engine.info.name == "tiny-gru" and info.details["cell"] == "gru"
    new = await engine.complete("To", GenerationParams(max_length=20, temperature=0))
    rest = [c async for c in chunks]
    old = rest[-1].completion
    assert old is not None and old.model == "tiny-lstm"
    assert old.text == expected_old == first.text + "".join(c.text for c in rest)
    assert new.model == "tiny-gru"
    assert new.text == manual_greedy(tiny_onnx_gru, "To", 20)

    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match=r"garbage\.onnx"):
        await engine.reload(garbage)
    assert engine.info.name == "tiny-gru"
    assert (await engine.complete("To", GenerationParams(max_length=5))).model == "tiny-gru"


async def test_worker_failure_fails_its_requests_and_the_pool_lives(
    start: Start, tiny_onnx: Path, slow_sessions: SlowFactory
) -> None:
    slow_sessions(0.0, fail_on=(1, 6))  # the first priming call, and a later batch step
    engine = await start(tiny_onnx, workers=1)
    with pytest.raises(WorkerError, match="failed while generating"):
        await engine.complete("To", GenerationParams(max_length=20))
    with pytest.raises(WorkerError) as info:
        await engine.complete("To", GenerationParams(max_length=20))
    assert isinstance(info.value.__cause__, RuntimeError)
    assert (await engine.complete("To", GenerationParams(max_length=20))).tokens == 20
    assert engine.stats().requests_failed == 2


@pytest.mark.parametrize(
    "params",
    [
        GenerationParams(temperature=-1),
        GenerationParams(temperature=float("nan")),
        GenerationParams(top_p=0),
        GenerationParams(top_p=1.5),
        GenerationParams(top_k=-2),
        GenerationParams(max_length=0),
        GenerationParams(max_length=101),
    ],
)
async def test_bad_params_are_refused(
    start: Start, tiny_onnx: Path, params: GenerationParams
) -> None:
    engine = await start(tiny_onnx, limits=GenerationLimits(max_length=100))
    with pytest.raises(InvalidParamsError):
        await engine.complete("To", params)
    with pytest.raises(InvalidParamsError):
        async for _ in engine.stream("To", params):
            pass
    assert (await engine.complete("To", GenerationParams(max_length=3))).tokens == 3


async def test_prompt_over_the_limit(start: Start, tiny_onnx: Path) -> None:
    engine = await start(tiny_onnx, limits=GenerationLimits(max_prompt=10))
    with pytest.raises(InvalidParamsError, match="limit is 10"):
        await engine.complete("x" * 11)
    assert (await engine.complete("To be, or", GenerationParams(max_length=2))).tokens == 2


async def test_unknown_characters_are_reported(start: Start, tiny_onnx: Path) -> None:
    engine = await start(tiny_onnx)
    result = await engine.complete("To ☃ be, é", GREEDY)
    assert result.unknown == ("☃", "é")
    assert result.text == manual_greedy(tiny_onnx, "To  be, ", 60)  # the char model drops them
    only_unknown = await engine.complete("☃☃", GREEDY)
    assert only_unknown.unknown == ("☃", "☃")
    assert only_unknown.text == manual_greedy(tiny_onnx, "", 60)


async def test_word_model(start: Start, tiny_onnx_word: Path) -> None:
    engine = await start(tiny_onnx_word)
    assert engine.info.level == "word"
    result = await engine.complete("To be, or zyzzyva", GenerationParams(max_length=40, seed=1))
    assert result.unknown == ("zyzzyva",) and result.tokens == 40 and result.text
    hot = await engine.complete("", GenerationParams(max_length=300, temperature=2.0, seed=2))
    assert "<unk>" not in hot.text  # the unknown token is never sampled
    greedy = await engine.complete("To be", GenerationParams(max_length=30, temperature=0))
    assert greedy.text == manual_greedy(tiny_onnx_word, "To be", 30)


async def test_unknown_token_is_never_sampled(start: Start, tmp_path: Path) -> None:
    vocab = ["\n", "a", "b", "?"]
    table = np.zeros((4, 4), np.float32)
    table[:, 3] = 5.0  # the unknown token would win almost every draw
    path = build_bigram(tmp_path / "unk.onnx", table, vocab, unknown="unk", unk_token="?")
    engine = await start(path)
    for params in (
        GenerationParams(max_length=200, temperature=1.0, seed=1),
        GenerationParams(max_length=50, temperature=0),
        GenerationParams(max_length=50, temperature=2.0, top_k=2, seed=2),
        GenerationParams(max_length=50, temperature=2.0, top_p=0.9, seed=3),
    ):
        result = await engine.complete("ab?x", params)
        assert "?" not in result.text and len(result.text) == params.max_length
        assert result.unknown == ("x",)


async def test_close_drains_then_refuses(
    start: Start, tiny_onnx: Path, slow_sessions: SlowFactory
) -> None:
    slow_sessions(0.001)
    engine = await start(tiny_onnx)
    running = [
        asyncio.create_task(engine.complete("To", GenerationParams(max_length=40, seed=i)))
        for i in range(4)
    ]
    await asyncio.sleep(0)
    await engine.close()
    assert [r.tokens for r in await asyncio.gather(*running)] == [40] * 4
    with pytest.raises(EngineClosedError):
        await engine.complete("To")
    with pytest.raises(EngineClosedError):
        async for _ in engine.stream("To"):
            pass
    with pytest.raises(EngineClosedError):
        await engine.reload(tiny_onnx)
    await engine.close()  # twice is fine


async def test_close_fails_what_does_not_drain_in_time(
    start: Start, tiny_onnx: Path, slow_sessions: SlowFactory
) -> None:
    slow_sessions(0.003)
    engine = await start(tiny_onnx, drain_timeout=0.05)
    long = asyncio.create_task(engine.complete("To", GenerationParams(max_length=2000)))
    await asyncio.sleep(0)
    began = time.monotonic()
    await engine.close()
    assert time.monotonic() - began < 1.0
    with pytest.raises(EngineClosedError, match="shut down before this request finished"):
        await long


async def test_cancelling_during_a_swap_leaves_the_other_model_running(
    start: Start, tiny_onnx: Path, tiny_onnx_gru: Path, slow_sessions: SlowFactory
) -> None:
    slow_sessions(0.002)
    engine = await start(tiny_onnx, workers=1)  # one worker holds a batch per model
    old = asyncio.create_task(engine.complete("To", GenerationParams(max_length=2000)))
    await wait_until(lambda: engine.stats().active_requests == 1)
    await engine.reload(tiny_onnx_gru)
    new = asyncio.create_task(engine.complete("To", GenerationParams(max_length=2000)))
    await wait_until(lambda: engine.stats().active_requests == 2)
    new.cancel()  # empties the new model's batch while the old one runs on
    await wait_until(lambda: engine.stats().active_requests == 1)
    again = await engine.complete("To", GenerationParams(max_length=30))
    assert (again.model, again.tokens) == ("tiny-gru", 30)
    assert not old.done()
    old.cancel()
    await wait_until(lambda: engine.stats().active_requests == 0)
    assert engine.stats().requests_failed == 2
