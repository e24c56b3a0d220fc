"""Load a contract `.onnx` file into an ONNX Runtime session, checking it against the contract.

Everything the engine needs comes from the file: the tokenizer, the network's shape and the
training provenance (`models.contract`). A file that breaks the contract is refused with one
sentence naming the file and the fault (`ModelLoadError`); a provider that cannot be had is a
`ProviderError`. The execution provider reported is the one ONNX Runtime says it uses.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from bot.errors import ModelLoadError, ProviderError
from bot.generation.backend import ModelInfo
from bot.generation.params import Provider
from models import contract
from models.chat import DEFAULT_CHAT_TEMPLATE
from models.contract import ContractError, ContractMetadata
from models.ort import ORT_ERRORS
from models.sampling import banned_token
from models.tokenizers import Tokenizer

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def cuda_failure_reason() -> str:
    """Why ONNX Runtime's CUDA provider did not start, as far as can be told without a GPU run.

    onnxruntime-gpu lists CUDA as available whether or not the CUDA libraries and a GPU are
    there; the provider library fails to load when the libraries are missing, and that error
    names the first missing one.
    """
    library = Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_cuda.so"
    if not library.is_file():
        return "this onnxruntime has no CUDA provider library"
    try:
        ctypes.CDLL(str(library))
    except OSError as exc:
        return f"its CUDA provider cannot load: {exc}"
    return "its CUDA provider loads, but found no usable GPU"


@contextlib.contextmanager
def _quiet_cuda_probe(trying_cuda: bool) -> Iterator[None]:
    """ONNX Runtime prints its own multi-line complaint when CUDA fails to start; the caller
    says it once, with the reason, through logging instead."""
    if not trying_cuda:
        yield
        return
    ort.set_default_logger_severity(4)  # fatal only
    try:
        yield
    finally:
        ort.set_default_logger_severity(2)  # ONNX Runtime's default: warnings


def choose_providers(requested: Provider, available: Sequence[str]) -> list[str]:
    """The provider list to ask ONNX Runtime for: CUDA first where wanted and offered."""
    if requested == "cpu":
        return [CPU]
    if CUDA in available:
        return [CUDA, CPU]
    if requested == "cuda":
        raise ProviderError(
            "CUDA was asked for, but this ONNX Runtime offers only "
            f"{', '.join(available) or 'no providers'}; install onnxruntime-gpu or use 'cpu'."
        )
    return [CPU]


def session_options(intra_op_threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: a CUDA fallback is reported by us, not stderr
    return options


def create_session(
    path: Path, providers: list[str], options: ort.SessionOptions
) -> ort.InferenceSession:
    """Open an ONNX Runtime session (a seam: tests replace it to fake or slow a session)."""
    return ort.InferenceSession(str(path), sess_options=options, providers=providers)


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A session with its tokenizer: one model file, ready to prime and step.

    `eq=False`: identity is what tells batches of different models apart during a hot swap.
    """

    session: Any  # ort.InferenceSession (or a test's stand-in)
    tokenizer: Tokenizer
    info: ModelInfo
    state_layers: int  # layers * k: the first dimension of the state
    hidden: int  # hidden units: the last dimension of the state
    start_id: int
    banned_id: int | None  # the unknown token, never sampled
    pieces: tuple[str, ...]  # the text of each token id

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    def zero_state(self, batch: int) -> np.ndarray:
        """The start of a text: (layers * k, batch, hidden) zeros."""
        return np.zeros((self.state_layers, batch, self.hidden), dtype=np.float32)

    def run(self, tokens: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """tokens (B, T) int64, state (layers * k, B, H) -> logits (B, T, V), state_out."""
        logits, state_out = self.session.run(
            contract.OUTPUT_NAMES,
            {contract.INPUT_TOKENS: tokens, contract.INPUT_STATE: state},
        )
        return logits, state_out

    def prime(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Feed a prompt from the zero state in one call: last logits (V,), state (L*k, 1, H)."""
        tokens = np.asarray(ids, dtype=np.int64).reshape(1, -1)
        logits, state = self.run(tokens, self.zero_state(1))
        return logits[0, -1], state


def load_model(
    path: Path | str, provider: Provider = "auto", intra_op_threads: int = 1
) -> LoadedModel:
    """Open `path` and check it against the contract. Blocking: call it off the event loop."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"The model file {path} does not exist.")
    providers = choose_providers(provider, ort.get_available_providers())
    try:
        with _quiet_cuda_probe(CUDA in providers):
            session = create_session(path, providers, session_options(intra_op_threads))
    except ORT_ERRORS as exc:
        raise ModelLoadError(f"{path} is not a readable ONNX model: {_first_line(exc)}") from exc

    in_use = session.get_providers()[0]
    if CUDA in providers and in_use != CUDA:
        why = cuda_failure_reason()
        if provider == "cuda":
            raise ProviderError(
                f"CUDA was asked for {path}, but ONNX Runtime could not use it ({why}); "
                "install the CUDA and cuDNN libraries onnxruntime-gpu needs, or use 'cpu'."
            )
        log.warning("CUDA not used for %s (%s): running on %s", path.name, why, in_use)

    try:
        meta = ContractMetadata.from_props(session.get_modelmeta().custom_metadata_map, path)
        contract.check_tensors(session.get_inputs(), session.get_outputs(), meta, path)
    except ContractError as exc:
        raise ModelLoadError(str(exc)) from exc
    tokenizer = meta.tokenizer
    training = dict(meta.training)
    cell, layers, hidden = meta.model.cell, meta.model.layers, meta.model.hidden
    embedding, parameters = meta.model.embedding, meta.model.parameters
    state_layers = meta.model.state_layers

    info = ModelInfo(
        name=path.stem,
        kind="onnx",
        description=f"{tokenizer.level}-level {cell.upper()}, {layers} × {hidden} units",
        path=path.resolve(),
        level=tokenizer.level,
        vocab_size=tokenizer.vocab_size,
        parameters=parameters,
        details={
            "cell": cell,
            "layers": layers,
            "hidden": hidden,
            "embedding": embedding,
            "chat_template": meta.chat_template or DEFAULT_CHAT_TEMPLATE,
        },
        training=training,
        provider=in_use,
        notes=_notes(meta),
    )
    pieces = tuple(tokenizer.vocab)
    start_id = tokenizer.start_id
    banned = banned_token(tokenizer)
    log.info(
        "loaded %s: %s %dx%d, %s-level vocabulary of %d, %d parameters, on %s",
        path, cell, layers, hidden, tokenizer.level, tokenizer.vocab_size, parameters, in_use,
    )  # fmt: skip
    return LoadedModel(session, tokenizer, info, state_layers, hidden, start_id, banned, pieces)


def _notes(meta: ContractMetadata) -> tuple[str, ...]:
    """What `/model show` adds about the file: an int8-dynamic file's seed caveat."""
    quantization = meta.quantization
    if quantization is None or quantization.seed_caveat is None:
        return ()
    return (f"int8, {quantization.method} quantization: {quantization.seed_caveat}.",)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
