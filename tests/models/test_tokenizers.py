"""Tokenizers: round trips, the unknown-token policies, JSON, and no torch on import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from models.tokenizers import (
    CharTokenizer,
    TokenizerError,
    WordTokenizer,
    fit_tokenizer,
    tokenizer_from_json,
)

TEXT = "O Romeo, Romeo! wherefore art thou Romeo?\n  Deny thy father; o'er the hill.\n"


@pytest.mark.parametrize("level", ["char", "word"])
def test_covered_text_round_trips(level: str) -> None:
    tokenizer = fit_tokenizer(TEXT, level)
    encoding = tokenizer.encode(TEXT)
    assert encoding.unknown == []
    assert tokenizer.decode(encoding.ids) == TEXT
    again = tokenizer_from_json(tokenizer.to_json())
    assert again.vocab == tokenizer.vocab and again.encode(TEXT).ids == encoding.ids


def test_word_level_splits_words_punctuation_and_whitespace() -> None:
    tokenizer = WordTokenizer.fit(TEXT)
    assert list(tokenizer.split("o'er the hill.\n  ")) == [
        "o'er",
        " ",
        "the",
        " ",
        "hill",
        ".",
        "\n  ",
    ]
    assert "Romeo" in tokenizer.vocab and "<unk>" in tokenizer.vocab


def test_unknown_words_map_to_unk_and_are_reported() -> None:
    tokenizer = WordTokenizer.fit(TEXT)
    encoding = tokenizer.encode("Romeo loves Juliet")
    assert encoding.unknown == ["loves", "Juliet"]
    assert tokenizer.decode(encoding.ids) == "Romeo <unk> <unk>"


def test_word_vocabulary_keeps_the_most_frequent() -> None:
    tokenizer = WordTokenizer.fit(TEXT, max_vocab=4)
    # " " (12 times) and "Romeo" (3), then the first of the many single ones in sorted order.
    assert set(tokenizer.vocab) == {" ", "Romeo", "\n", "<unk>"}


def test_char_level_drops_unknown_characters_by_default() -> None:
    tokenizer = CharTokenizer.fit("abc ")
    encoding = tokenizer.encode("a€b")
    assert tokenizer.decode(encoding.ids) == "ab" and encoding.unknown == ["€"]
    mapped = CharTokenizer.fit("abc", unknown="unk")
    assert mapped.decode(mapped.encode("a€").ids) == "a\ufffd"


@pytest.mark.parametrize(
    "data",
    [
        {"level": "char", "vocab": []},
        {"level": "char", "vocab": ["a", "a"]},
        {"level": "char", "vocab": ["a"], "unknown": "guess"},
        {"level": "word", "vocab": ["a"], "unknown": "unk", "unk_token": "<unk>"},
        {"level": "word", "vocab": ["a"], "unknown": "drop", "pattern": "("},
        {"level": "bytes", "vocab": ["a"]},
        {"level": "char", "vocab": "abc"},
    ],
)
def test_bad_descriptions_are_refused(data: dict[str, object]) -> None:
    with pytest.raises(TokenizerError):
        tokenizer_from_json(data)


def test_importing_tokenizers_and_contract_does_not_import_torch() -> None:
    code = (
        "import sys, models, models.tokenizers, models.contract; "
        "print('torch' in sys.modules, 'onnxruntime' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.split() == ["False", "False"]
