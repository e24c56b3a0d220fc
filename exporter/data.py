"""Corpora in, token tensors out, and the two ways of cutting the training tokens into batches.

All the text lives in one int64 tensor; a batch is one fancy-indexing gather from it, so the data
pipeline costs next to nothing next to the model.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from exporter.discord_export import DiscordOptions, looks_like_export, read_export
from exporter.errors import CorpusError
from models.chat import ChatTemplate, detect_chat_template
from models.tokenizers import Tokenizer


@dataclass(frozen=True)
class CorpusFile:
    name: str  # the file name, for the model's provenance
    path: str  # absolute, so that `--resume` can find it again
    sha256: str  # of the file's bytes, as `sha256sum` prints it
    characters: int  # of the training text made from it
    format: str = "text"  # "text" or "discord"
    messages: dict[str, Any] | None = None  # discord: {"kept": n, "skipped": {reason: n}}


@dataclass(frozen=True)
class Corpus:
    files: tuple[CorpusFile, ...]
    texts: tuple[str, ...]
    sha256: str  # of all the files' bytes in order (the one file's sha256 if there is one)

    @property
    def text(self) -> str:
        return "".join(self.texts)

    @property
    def characters(self) -> int:
        return sum(f.characters for f in self.files)

    @property
    def chat_template(self) -> ChatTemplate:
        """The chat template the text suits: `lines` for a Discord export (one message per
        line), else `play` when speaker headings open its paragraphs, else `lines`."""
        if any(f.format == "discord" for f in self.files):
            return "lines"
        return detect_chat_template(self.text)

    def provenance(self) -> dict[str, Any]:
        """Where the training text came from: stored in checkpoints (and, but for the chat
        template, which has a key of its own, in the ONNX metadata)."""
        return {
            "corpus": ", ".join(f.name for f in self.files),
            "sha256": self.sha256,
            "characters": self.characters,
            "files": [asdict(f) for f in self.files],
            "summary": self.summary(),
            "chat_template": self.chat_template,
        }

    def summary(self) -> dict[str, Any]:
        """Files, Discord messages kept and skipped (with reasons), characters, distinct ones."""
        skipped: Counter[str] = Counter()
        kept = 0
        for f in self.files:
            if f.messages is not None:
                kept += f.messages["kept"]
                skipped.update(f.messages["skipped"])
        return {
            "files": len(self.files),
            "messages_kept": kept,
            "messages_skipped": dict(sorted(skipped.items())),
            "characters": self.characters,
            "distinct_characters": len(set(self.text)),
        }


def describe_summary(summary: dict[str, Any]) -> str:
    """The corpus summary in one line, as `exporter train` prints it."""
    text = f"corpus: {summary['files']} file(s)"
    skipped = summary.get("messages_skipped") or {}
    if summary.get("messages_kept") or skipped:
        reasons = ", ".join(f"{n:,} {why}" for why, n in skipped.items())
        text += f", {summary['messages_kept']:,} messages kept"
        text += f", {sum(skipped.values()):,} skipped ({reasons})" if skipped else ", none skipped"
    return (
        f"{text}; {summary['characters']:,} characters, {summary['distinct_characters']:,} distinct"
    )


def read_corpora(
    paths: list[Path], corpus_format: str = "auto", discord: DiscordOptions | None = None
) -> Corpus:
    """Read UTF-8 text files and Discord exports; a missing, unreadable, empty or malformed one
    is a CorpusError."""
    if not paths:
        raise CorpusError("no corpus file was given")
    files, texts = [], []
    combined = hashlib.sha256()
    seen: set[str] = set()  # Discord message ids read so far: overlapping exports count once
    for path in paths:
        if not path.exists():
            raise CorpusError(f"corpus file {path} does not exist")
        if path.is_dir():
            raise CorpusError(f"corpus {path} is a directory, not a text file")
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise CorpusError(f"cannot read corpus file {path}: {exc.strerror or exc}") from exc
        try:
            # utf-8-sig: a byte-order mark (Windows editors write one) is not text to learn.
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise CorpusError(
                f"corpus file {path} is not UTF-8 text (bad byte at offset {exc.start})"
            ) from exc
        if not text:
            raise CorpusError(f"corpus file {path} is empty")
        combined.update(raw)
        digest = hashlib.sha256(raw).hexdigest()
        kind, messages = "text", None
        if corpus_format == "discord" or (
            corpus_format == "auto" and looks_like_export(path, text)
        ):
            text, stats = read_export(path, text, discord or DiscordOptions(), seen)
            kind, messages = "discord", stats.to_dict()
        files.append(CorpusFile(path.name, str(path.resolve()), digest, len(text), kind, messages))
        texts.append(text)
    sha = files[0].sha256 if len(files) == 1 else combined.hexdigest()
    return Corpus(tuple(files), tuple(texts), sha)


@dataclass(frozen=True)
class Splits:
    train: torch.Tensor  # (N,) int64 token ids
    val: torch.Tensor  # (M,) int64 token ids
    unknown: int  # pieces of the corpus the tokenizer could not encode as written
    unknown_examples: list[str]  # a few of them, most frequent first


def encode_splits(corpus: Corpus, tokenizer: Tokenizer, val_fraction: float) -> Splits:
    """Encode each corpus file and hold out its last `val_fraction` of tokens for validation."""
    train: list[int] = []
    val: list[int] = []
    unknown: dict[str, int] = {}
    for text in corpus.texts:
        encoding = tokenizer.encode(text)
        cut = int(len(encoding.ids) * (1.0 - val_fraction))
        train += encoding.ids[:cut]
        val += encoding.ids[cut:]
        for piece in encoding.unknown:
            unknown[piece] = unknown.get(piece, 0) + 1
    examples = sorted(unknown, key=lambda piece: -unknown[piece])[:5]
    return Splits(
        torch.tensor(train, dtype=torch.int64),
        torch.tensor(val, dtype=torch.int64),
        sum(unknown.values()),
        examples,
    )


@dataclass(frozen=True)
class Batch:
    x: torch.Tensor  # (B, T) input ids
    y: torch.Tensor  # (B, T) target ids: x shifted left by one
    fresh: bool  # the windows do not continue the previous batch's: start from a zero state


class Batches(Protocol):
    def next(self, step: int) -> Batch: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def tokens_needed(batch_size: int, seq_len: int, carry_state: bool) -> int:
    """The fewest training tokens that make one batch."""
    return batch_size * seq_len + 1 if carry_state else seq_len + 1


class RandomWindows:
    """Windows at uniformly random offsets, each read from a zero state.

    The data position is the state of a private generator, saved with the checkpoint.
    """

    def __init__(self, data: torch.Tensor, batch_size: int, seq_len: int, seed: int) -> None:
        assert len(data) >= tokens_needed(batch_size, seq_len, False)
        self.data = data
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.offsets = torch.arange(seq_len + 1)  # (T+1,)

    def next(self, step: int) -> Batch:
        high = len(self.data) - len(self.offsets) + 1
        starts = torch.randint(0, high, (self.batch_size, 1), generator=self.generator)
        window = self.data[starts + self.offsets]  # (B, T+1)
        return Batch(window[:, :-1], window[:, 1:], fresh=True)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


class StreamWindows:
    """`batch_size` contiguous streams through the data, each window continuing the previous one.

    The N tokens are cut into B streams of L = (N - 1) // B; step s reads window j = s mod W
    (W = L // T) of every stream, so row b of consecutive batches is consecutive text and the
    recurrent state can be carried across windows (truncated BPTT). Each epoch shifts the window
    grid by a seeded offset in [0, L - W*T] so that epochs do not cut the text at the same places.
    The data position is a function of the step, so nothing but the step needs saving.
    """

    def __init__(self, data: torch.Tensor, batch_size: int, seq_len: int, seed: int) -> None:
        assert len(data) >= tokens_needed(batch_size, seq_len, True)
        self.data = data
        self.seed = seed
        self.seq_len = seq_len
        self.stream_len = (len(data) - 1) // batch_size  # L
        self.windows = self.stream_len // seq_len  # W, windows per epoch
        # (B, T+1): where each stream's first window starts, plus the offsets inside a window.
        self.grid = (torch.arange(batch_size) * self.stream_len)[:, None] + torch.arange(
            seq_len + 1
        )
        self._epoch = -1
        self._shift = 0

    def _epoch_shift(self, epoch: int) -> int:
        slack = self.stream_len - self.windows * self.seq_len
        if slack == 0:
            return 0
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return int(torch.randint(0, slack + 1, (1,), generator=gen))

    def next(self, step: int) -> Batch:
        epoch, j = divmod(step, self.windows)
        if epoch != self._epoch:
            self._epoch, self._shift = epoch, self._epoch_shift(epoch)
        window = self.data[self.grid + (self._shift + j * self.seq_len)]  # (B, T+1)
        return Batch(window[:, :-1], window[:, 1:], fresh=j == 0)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def make_batches(
    data: torch.Tensor, batch_size: int, seq_len: int, carry_state: bool, seed: int
) -> Batches:
    have, need = len(data), tokens_needed(batch_size, seq_len, carry_state)
    if have < need:
        how = (
            f"--batch-size {batch_size} streams × --seq-len {seq_len} + 1"
            if carry_state
            else f"--seq-len {seq_len} + 1"
        )
        # Advise only the options that can still shrink.
        shrinkable = [("--seq-len", seq_len)] + ([("--batch-size", batch_size)] * carry_state)
        smaller = "/".join(flag for flag, value in shrinkable if value > 1)
        raise CorpusError(
            f"the corpus is too short: one training batch needs {need} tokens ({how}) but the "
            f"training split has {have}; use a longer corpus"
            + (f" or smaller {smaller}" if smaller else "")
        )
    if carry_state:
        return StreamWindows(data, batch_size, seq_len, seed)
    return RandomWindows(data, batch_size, seq_len, seed)


def eval_streams(data: torch.Tensor, max_streams: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """The validation tokens as S contiguous streams: inputs and targets, each (S, L).

    Read with the state carried, this measures the loss the way the model is used: on long text.
    A periodic validation reads the first columns only (a fixed sample); the final one reads all.
    """
    if len(data) < 2:
        raise CorpusError(
            f"the validation split has {len(data)} token(s) but needs at least 2; "
            "use a longer corpus or a larger --val-fraction"
        )
    # Streams of at least 64 tokens where there is enough text, so few tokens start from zero.
    streams = max(1, min(max_streams, (len(data) - 1) // 64))
    length = (len(data) - 1) // streams
    x = data[: streams * length].view(streams, length)
    y = data[1 : streams * length + 1].view(streams, length)
    return x, y
