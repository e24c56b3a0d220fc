"""Tokenizers at character and word level, serialisable into the ONNX file's metadata.

Both round-trip: `decode(encode(text).ids) == text` for any text the vocabulary covers. Text it
does not cover follows a stated policy, never a crash or a silent change:

- `"drop"`: the piece is left out;
- `"unk"`: the piece becomes the unknown token (`unk_token`, which is in the vocabulary).

Either way `Encoding.unknown` lists the pieces that were not encoded as written, so the caller can
tell the user. This module must not import torch.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

UnknownPolicy = Literal["drop", "unk"]
UNKNOWN_POLICIES: tuple[UnknownPolicy, ...] = ("drop", "unk")

# Words (with inner apostrophes: "o'er", "don't"), single punctuation marks, and whitespace runs.
# Whitespace is a token too, so decoding is plain concatenation and the text round-trips.
WORD_PATTERN = r"\w+(?:'\w+)*|[^\w\s]|\s+"

#: The token that starts a text when the prompt is empty (or has nothing encodable): a newline
#: where the vocabulary has one (texts and turns begin after a line break), else id 0. The model
#: needs some input to give its first logits; the bot and the exporter's sampler both use this.
START_TOKEN = "\n"


class TokenizerError(ValueError):
    """A tokenizer description that cannot be used (bad JSON fields, an empty vocabulary)."""


@dataclass(frozen=True)
class Encoding:
    """Token ids for a text, and the pieces of it the vocabulary could not encode."""

    ids: list[int]
    unknown: list[str]


class Tokenizer(ABC):
    """A fixed vocabulary of string tokens; ids index `vocab`."""

    level: ClassVar[str]

    def __init__(self, vocab: Sequence[str], unknown: UnknownPolicy, unk_token: str | None) -> None:
        if not vocab:
            raise TokenizerError("the vocabulary is empty")
        if len(set(vocab)) != len(vocab):
            raise TokenizerError("the vocabulary has duplicate tokens")
        if unknown not in UNKNOWN_POLICIES:
            raise TokenizerError(f"unknown-token policy {unknown!r} is not 'drop' or 'unk'")
        if unknown == "unk" and (unk_token is None or unk_token not in vocab):
            raise TokenizerError("policy 'unk' needs an unk_token that is in the vocabulary")
        self.vocab: list[str] = list(vocab)
        self.unknown: UnknownPolicy = unknown
        self.unk_token = unk_token
        self.unk_id: int | None = (
            self.vocab.index(unk_token) if unk_token is not None and unk_token in vocab else None
        )
        self._ids: dict[str, int] = {token: i for i, token in enumerate(self.vocab)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @abstractmethod
    def split(self, text: str) -> Iterable[str]:
        """The text as a sequence of candidate tokens."""

    @property
    def start_id(self) -> int:
        """The id to prime with when a prompt encodes to nothing (see `START_TOKEN`)."""
        return self._ids.get(START_TOKEN, 0)

    def encode(self, text: str) -> Encoding:
        ids: list[int] = []
        unknown: list[str] = []
        for piece in self.split(text):
            token_id = self._ids.get(piece)
            if token_id is not None:
                ids.append(token_id)
                continue
            unknown.append(piece)
            if self.unk_id is not None and self.unknown == "unk":
                ids.append(self.unk_id)
        return Encoding(ids, unknown)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.vocab[i] for i in ids)

    def to_json(self) -> dict[str, Any]:
        """The `charbot.tokenizer` metadata: everything needed to rebuild this tokenizer."""
        return {
            "level": self.level,
            "vocab": self.vocab,
            "unknown": self.unknown,
            "unk_token": self.unk_token,
        }


class CharTokenizer(Tokenizer):
    """One token per Unicode code point."""

    level = "char"
    DEFAULT_UNK = "\ufffd"

    def split(self, text: str) -> Iterable[str]:
        return text

    @classmethod
    def fit(cls, text: str, unknown: UnknownPolicy = "drop") -> CharTokenizer:
        vocab = sorted(set(text))
        unk = cls.DEFAULT_UNK if unknown == "unk" else None
        if unk is not None and unk not in vocab:
            vocab.append(unk)
        return cls(vocab, unknown, unk)


class WordTokenizer(Tokenizer):
    """Words, punctuation marks and whitespace runs, the most frequent `max_vocab` of them."""

    level = "word"
    DEFAULT_UNK = "<unk>"

    def __init__(
        self,
        vocab: Sequence[str],
        unknown: UnknownPolicy = "unk",
        unk_token: str | None = DEFAULT_UNK,
        pattern: str = WORD_PATTERN,
    ) -> None:
        super().__init__(vocab, unknown, unk_token)
        self.pattern = pattern
        self._regex = re.compile(pattern)

    def split(self, text: str) -> Iterable[str]:
        return self._regex.findall(text)

    @classmethod
    def fit(
        cls,
        text: str,
        max_vocab: int = 10_000,
        unknown: UnknownPolicy = "unk",
        pattern: str = WORD_PATTERN,
    ) -> WordTokenizer:
        counts = Counter(re.findall(pattern, text))
        unk = cls.DEFAULT_UNK if unknown == "unk" else None
        budget = max_vocab - (1 if unk is not None else 0)
        # Most frequent first, ties broken alphabetically so a fit is deterministic.
        ranked = sorted(counts, key=lambda token: (-counts[token], token))[:budget]
        vocab = sorted(ranked)
        if unk is not None and unk not in vocab:
            vocab.append(unk)
        return cls(vocab, unknown, unk, pattern)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "pattern": self.pattern}


def fit_tokenizer(
    text: str, level: str, max_vocab: int = 10_000, unknown: UnknownPolicy | None = None
) -> Tokenizer:
    """A tokenizer fitted to a corpus, with the level's default unknown-token policy."""
    if level == "char":
        return CharTokenizer.fit(text, unknown or "drop")
    if level == "word":
        return WordTokenizer.fit(text, max_vocab, unknown or "unk")
    raise TokenizerError(f"unknown tokenizer level {level!r}; expected 'char' or 'word'")


def tokenizer_from_json(data: Mapping[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from its `to_json()` description, checked: it comes from a file."""
    if not isinstance(data, Mapping):
        raise TokenizerError("the tokenizer description is not a JSON object")
    vocab = data.get("vocab")
    if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
        raise TokenizerError("'vocab' is not a list of strings")
    unknown = data.get("unknown", "drop")
    unk_token = data.get("unk_token")
    if unk_token is not None and not isinstance(unk_token, str):
        raise TokenizerError("'unk_token' is not a string")
    level = data.get("level")
    if level == "char":
        return CharTokenizer(vocab, unknown, unk_token)
    if level == "word":
        pattern = data.get("pattern", WORD_PATTERN)
        if not isinstance(pattern, str):
            raise TokenizerError("'pattern' is not a string")
        try:
            return WordTokenizer(vocab, unknown, unk_token, pattern)
        except re.error as exc:
            raise TokenizerError(f"'pattern' is not a valid regular expression: {exc}") from exc
    raise TokenizerError(f"unknown tokenizer level {level!r}; expected 'char' or 'word'")
