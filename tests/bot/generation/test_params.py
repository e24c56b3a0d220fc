from __future__ import annotations

import math
from typing import Any

import pytest

from bot.errors import CharbotError, GenerationError, InvalidParamsError
from bot.generation.params import (
    AUTO,
    MAX_WORKERS,
    EngineConfig,
    GenerationLimits,
    GenerationParams,
    engine_cores,
    engine_threads,
    usable_cores,
    validate_prompt,
)

LIMITS = GenerationLimits(max_length=500, max_prompt=50, max_stop=2, max_stop_length=5)


def test_defaults_are_valid() -> None:
    params = GenerationParams()
    assert params.validate(LIMITS) is params
    assert (params.max_length, params.temperature, params.top_k, params.top_p) == (300, 0.8, 0, 1.0)
    assert params.seed is None and params.stop == ()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"temperature": math.inf}, "temperature"),
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.01}, "top_p"),
        ({"top_p": math.nan}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"max_length": 0}, "length"),
        ({"max_length": 501}, "length"),
        ({"max_length": 2.5}, "length"),
        ({"seed": -3}, "seed"),
        ({"stop": ("",)}, "stop sequence"),
        ({"stop": ("toolong",)}, "stop sequence"),
        ({"stop": ("a", "b", "c")}, "stop sequences"),
        ({"stop": ["a"]}, "Stop sequences"),
    ],
)
def test_bad_params_are_one_sentence(change: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidParamsError) as info:
        GenerationParams(**change).validate(LIMITS)
    message = str(info.value)
    assert words in message and message.endswith(".")
    assert isinstance(info.value, GenerationError) and isinstance(info.value, CharbotError)


def test_edges_are_allowed() -> None:
    GenerationParams(max_length=1, temperature=0, top_k=0, top_p=1.0, seed=0).validate(LIMITS)
    GenerationParams(
        max_length=500, temperature=2.0, top_k=1, top_p=1e-6, stop=("ab", "c")
    ).validate(LIMITS)


def test_prompt_limit() -> None:
    assert validate_prompt("", LIMITS) == ""
    assert validate_prompt("x" * 50, LIMITS)
    with pytest.raises(InvalidParamsError, match="51 characters long; the limit is 50"):
        validate_prompt("x" * 51, LIMITS)
    with pytest.raises(InvalidParamsError, match="must be text"):
        validate_prompt(b"bytes", LIMITS)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change",
    [{"provider": "tpu"}, {"workers": 0}, {"max_batch": 0}, {"max_queue": -1},
     {"request_timeout": 0}, {"drain_timeout": -1}, {"intra_op_threads": 0},
     {"workers": "many"}, {"workers": 65}, {"cores": 0}],
)  # fmt: skip
def test_bad_engine_config(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        EngineConfig(**change)


@pytest.mark.parametrize(
    ("cores", "workers", "intra", "expected"),
    [
        (1, AUTO, AUTO, (1, 1)),
        (7, AUTO, AUTO, (7, 1)),  # an 8-core host, one core kept for the event loop
        (7, 1, AUTO, (1, 7)),  # one worker: its session runs on the cores
        (7, 2, AUTO, (2, 3)),
        (7, AUTO, 2, (7, 2)),
        (7, 3, 1, (3, 1)),
        (500, AUTO, AUTO, (MAX_WORKERS, 7)),
    ],
)
def test_auto_sizes_the_engine_to_its_cores(
    cores: int, workers: Any, intra: Any, expected: tuple[int, int]
) -> None:
    threads = engine_threads(workers, intra, cores)
    assert (threads.workers, threads.intra_op_threads) == expected
    assert EngineConfig(workers=workers, intra_op_threads=intra, cores=cores).threads == threads


def test_auto_on_a_gpu_is_one_worker_whatever_the_cores() -> None:
    threads = EngineConfig(cores=7).threads_on(gpu=True)
    assert (threads.workers, threads.intra_op_threads) == (1, 1)
    assert EngineConfig(workers=3, cores=7).threads_on(gpu=True).workers == 3  # as asked


def test_auto_is_the_default_and_keeps_a_core_for_the_event_loop() -> None:
    default = EngineConfig()
    assert (default.workers, default.intra_op_threads, default.cores) == (AUTO, AUTO, None)
    assert engine_cores() == max(1, usable_cores() - 1)
    assert (default.threads.workers, default.threads.intra_op_threads) == (engine_cores(), 1)
