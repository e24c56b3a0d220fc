"""Sample text from a checkpoint (.pt) or an exported model (.onnx), to judge it before serving.

Generation follows docs/architecture.md ("Generation semantics"): the whole prompt is primed in
one call, the last logits give the first new token, then one token per call with the state
carried. Both backends hand numpy logits to one numpy sampler, so a seed gives the same text from
the `.pt` and from the `.onnx` it was exported to (up to float error in near ties).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort
import torch

from exporter.checkpoint import build_model, build_tokenizer, load_checkpoint
from exporter.errors import CheckpointError, ConfigError, NotOnnxError
from exporter.onnx_export import open_session, read_metadata
from models import contract
from models.charrnn import CharRNN
from models.contract import ContractError
from models.sampling import banned_token, check_temperature, sample_one
from models.tokenizers import Encoding, Tokenizer

#: How a file made by `torch.save` begins (a zip archive); an ONNX file (protobuf) never does.
CHECKPOINT_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.8  # 0 = greedy
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1.0 = off
    seed: int | None = None  # None = a fresh random run

    def __post_init__(self) -> None:
        try:
            check_temperature(self.temperature)  # the bot's bound: text the bot could write
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        if self.top_k < 0:
            raise ConfigError("--top-k must be 0 (off) or more")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError("--top-p must be in (0, 1]")


class Sampler:
    """Picks one token from a row of logits: greedy, or temperature, top-k then top-p."""

    def __init__(self, params: SamplingParams) -> None:
        self.params = params
        self.rng = np.random.default_rng(params.seed)

    def pick(self, logits: np.ndarray) -> int:
        """logits (vocab,) -> a token id, by the same rule the bot uses."""
        p = self.params
        return sample_one(logits, p.temperature, p.top_k, p.top_p, self.rng)


class Backend(Protocol):
    """A loaded model: tokens (1, T) int64 and state -> logits (1, T, vocab) and state."""

    tokenizer: Tokenizer

    def initial_state(self) -> np.ndarray: ...

    def __call__(self, tokens: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class TorchBackend:
    def __init__(self, model: CharRNN, tokenizer: Tokenizer) -> None:
        self.model = model.cpu().eval()
        self.tokenizer = tokenizer

    def initial_state(self) -> np.ndarray:
        return self.model.initial_state(1).numpy()  # (layers * k, 1, H)

    @torch.inference_mode()
    def __call__(self, tokens: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, state_out = self.model(torch.from_numpy(tokens), torch.from_numpy(state))
        return logits.numpy(), state_out.numpy()


class OnnxBackend:
    def __init__(self, path: Path, session: ort.InferenceSession | None = None) -> None:
        self.session = session or open_session(path)
        self.metadata = read_metadata(path, self.session)
        try:
            inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
            contract.check_tensors(inputs, outputs, self.metadata, path)
        except ContractError as exc:
            raise CheckpointError(str(exc)) from exc
        self.tokenizer = self.metadata.tokenizer
        shape = self.metadata.model
        self.shape = (shape.state_layers, 1, shape.hidden)

    def initial_state(self) -> np.ndarray:
        return np.zeros(self.shape, dtype=np.float32)

    def __call__(self, tokens: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, state_out = self.session.run(
            list(contract.OUTPUT_NAMES),
            {contract.INPUT_TOKENS: tokens, contract.INPUT_STATE: state},
        )
        return logits, state_out


def open_backend(path: Path) -> Backend:
    """A training checkpoint or an ONNX file, told apart by content, whatever the suffix."""
    if not path.exists():
        raise CheckpointError(f"model file {path} does not exist")
    if not _is_checkpoint(path):
        try:
            return OnnxBackend(path, open_session(path))
        except NotOnnxError:
            if path.suffix == ".onnx":
                raise
            # Neither kind: the checkpoint reader's error says what is wrong with the file.
    checkpoint = load_checkpoint(path)
    return TorchBackend(build_model(checkpoint, path), build_tokenizer(checkpoint, path))


def _is_checkpoint(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(len(CHECKPOINT_MAGIC)) == CHECKPOINT_MAGIC
    except OSError:
        return False  # a directory or an unreadable file: the reader says which


def encode_prompt(tokenizer: Tokenizer, prompt: str) -> tuple[list[int], Encoding]:
    """The ids to prime with, and the prompt's encoding (whose `unknown` the caller reports).

    An empty prompt (or one with nothing encodable) is primed with the tokenizer's start token
    (`models.tokenizers.START_TOKEN`): the model needs some input to give its first logits.
    """
    encoding = tokenizer.encode(prompt)
    ids = encoding.ids or [tokenizer.start_id]
    return ids, encoding


def generate(
    backend: Backend, prompt_ids: list[int], length: int, params: SamplingParams
) -> Iterator[int]:
    """Yield `length` new token ids after priming with `prompt_ids` (non-empty). The unknown
    token is never sampled (`models.sampling.banned_token`), as in the bot."""
    sampler = Sampler(params)
    banned = banned_token(backend.tokenizer)
    tokens = np.asarray([prompt_ids], dtype=np.int64)  # (1, T)
    logits, state = backend(tokens, backend.initial_state())  # (1, T, vocab)
    for i in range(length):
        row = logits[0, -1]  # (vocab,)
        if banned is not None:
            row = row.copy()  # a backend's output buffer may be reused
            row[banned] = -np.inf
        token = sampler.pick(row)
        yield token
        if i + 1 < length:
            logits, state = backend(np.asarray([[token]], dtype=np.int64), state)
