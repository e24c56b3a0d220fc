"""The Markov example as a third party would test it: through charbot's public API alone."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip(
    "charbot_markov", reason="the Markov example is not installed: pip install -e examples/markov"
)

from charbot_markov.backend import MarkovBackend

from bot.api import GenerationBackend, GenerationParams, InvalidParamsError, ModelLoadError

CORPUS = "the cat sat on the mat. the dog sat on the log. the cat saw the dog.\n" * 5


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS)
    return path


async def test_the_backend_implements_the_public_protocol(corpus: Path) -> None:
    backend = await MarkovBackend.start("chain", corpus)
    assert isinstance(backend, GenerationBackend)
    info = backend.info
    assert (info.name, info.kind, info.level) == ("chain", "markov", "word")
    assert info.description.startswith("word-level Markov chain of order 2")
    greedy = GenerationParams(max_length=12, temperature=0)
    first = await backend.complete("the cat", greedy)
    assert first.text and first.tokens == 12 and first.finish_reason == "length"
    assert (await backend.complete("the cat", greedy)).text == first.text
    chunks = [chunk async for chunk in backend.stream("the dog", GenerationParams(seed=1))]
    assert chunks[-1].completion is not None
    with pytest.raises(InvalidParamsError):
        await backend.complete("the", GenerationParams(temperature=9.0))
    await backend.close()


async def test_an_unreadable_corpus_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="Cannot build a Markov chain"):
        await MarkovBackend.start("chain", tmp_path / "missing.txt")
