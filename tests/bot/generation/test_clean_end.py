"""Answers end cleanly: a length that runs out inside a word finishes it or cuts back to a space.

The models are hand-built bigrams that cycle through one word and a space, so greedy decoding
writes a known text: "bcd abcd abcd ..." after the prompt "a".
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from bot.config import load_config
from bot.generation import Engine, EngineConfig, GenerationParams
from bot.generation.params import WORD_END_SLACK
from bot.runtime import assemble
from bot.settings import SettingsRegistry
from bot.stores import MemoryStore
from tests.bot.generation.fakemodels import build_bigram

SHORT_WORD = "abcd"  # finishing it never takes more than WORD_END_SLACK characters
LONG_WORD = "abcdefghijklmnopqrst"  # finishing it mid-way may take more


def cycling_model(path: Path, word: str) -> Path:
    """Greedy decoding writes `word`, a space, `word`, ... (each letter leads to the next)."""
    vocab = ["\n", " ", *word]
    following = {" ": word[0], "\n": word[0], word[-1]: " "}
    following |= dict(itertools.pairwise(word))
    table = np.zeros((len(vocab), len(vocab)), dtype=np.float32)
    for piece, successor in following.items():
        table[vocab.index(piece), vocab.index(successor)] = 5.0
    return build_bigram(path, table, vocab)


@pytest.fixture(scope="module")
def short_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cycling_model(tmp_path_factory.mktemp("cycle") / "short.onnx", SHORT_WORD)


@pytest.fixture(scope="module")
def long_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cycling_model(tmp_path_factory.mktemp("cycle") / "long.onnx", LONG_WORD)


async def generate(path: Path, params: GenerationParams) -> tuple[str, str, int, str]:
    """(complete's text, the streamed text, tokens, finish reason) for the prompt "a"."""
    async with await Engine.start(path, EngineConfig(provider="cpu")) as engine:
        done = await engine.complete("a", params)
        streamed = "".join([chunk.text async for chunk in engine.stream("a", params)])
    return done.text, streamed, done.tokens, done.finish_reason


@pytest.mark.parametrize(
    ("model", "length", "stop", "expected", "reason"),
    [
        ("short", 6, (), "bcd abcd", "length"),  # "bcd ab" + "cd": the word is finished
        ("short", 4, (), "bcd ", "length"),  # ends at a space already: nothing to do
        ("short", 6, ("abc",), "bcd ", "stop"),  # a stop sequence still wins
        # "...t abcde": finishing "abcdefghijklmnopqrst" would take 15 more: cut back.
        ("long", 25, (), LONG_WORD[1:], "length"),
        ("long", 5, (), "bcdef", "length"),  # no space to cut back to: left as it is
    ],
)
async def test_a_text_ends_at_a_word_boundary(
    model: str,
    length: int,
    stop: tuple[str, ...],
    expected: str,
    reason: str,
    short_model: Path,
    long_model: Path,
) -> None:
    path = short_model if model == "short" else long_model
    params = GenerationParams(max_length=length, temperature=0, stop=stop, clean_end=True)
    text, streamed, tokens, finish = await generate(path, params)
    assert (text, finish) == (expected, reason)
    assert streamed == text
    assert tokens <= length + WORD_END_SLACK + 1  # the word's letters, then its space
    # Without clean_end the length is exact, as before.
    raw = await generate(path, GenerationParams(max_length=length, temperature=0))
    assert raw[2] == length and len(raw[0]) == length


async def test_the_bots_completions_end_cleanly(tmp_path: Path, short_model: Path) -> None:
    config_path = tmp_path / "charbot.toml"
    config_path.write_text(
        f'[models.cycle]\npath = "{short_model}"\n[generation]\ntemperature = 0\n'
    )
    registry = SettingsRegistry()
    services = assemble(load_config(config_path, {}, {}), MemoryStore(registry), registry)
    services.register_plugins()
    await services.start_models()
    try:
        done = await services.completions.complete(1, "a", length=6)
    finally:
        await services.close()
    assert done.text == "bcd abcd"
