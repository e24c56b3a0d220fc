"""Export a trained CharRNN to one self-describing ONNX file, and check it against PyTorch.

The file follows the contract in `models.contract`: inputs `tokens` and `state`, outputs `logits`
and `state_out`, dynamic batch and time, and metadata holding the tokenizer, the model's shape and
the training provenance, so that the bot needs nothing but this file.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnx
import onnxruntime as ort
import torch

from exporter.errors import CheckpointError, ExportError, NotOnnxError
from models import contract
from models.charrnn import CharRNN
from models.chat import ChatTemplate
from models.contract import Cell, ContractError, ContractMetadata, ModelShape
from models.ort import ORT_ERRORS
from models.tokenizers import Tokenizer

log = logging.getLogger(__name__)

OPSET = 17


def model_metadata(model: CharRNN) -> ModelShape:
    """The `charbot.model` metadata: enough to describe the network without loading it."""
    cfg = model.config
    return ModelShape(
        cell=cast(Cell, cfg.cell),  # CharRNNConfig has checked it
        layers=cfg.layers,
        hidden=cfg.hidden,
        embedding=cfg.embedding,
        parameters=model.num_parameters(),
        vocab_size=cfg.vocab_size,
        dropout=cfg.dropout,
    )


def export_onnx(
    model: CharRNN,
    tokenizer: Tokenizer,
    training: Mapping[str, Any],
    path: Path,
    chat_template: ChatTemplate | None = None,
) -> Path:
    """Write `model` to `path` as a contract ONNX file and run `onnx.checker` on it."""
    if tokenizer.vocab_size != model.config.vocab_size:
        raise ExportError(
            f"the tokenizer has {tokenizer.vocab_size} tokens but the model expects "
            f"{model.config.vocab_size}"
        )
    model = model.cpu().eval()
    tokens = torch.zeros(2, 3, dtype=torch.int64)
    state = model.initial_state(2)
    dynamic_axes = {
        contract.INPUT_TOKENS: {0: "batch", 1: "time"},
        contract.INPUT_STATE: {1: "batch"},
        contract.OUTPUT_LOGITS: {0: "batch", 1: "time"},
        contract.OUTPUT_STATE: {1: "batch"},
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # The TorchScript exporter maps nn.LSTM/GRU/RNN onto ONNX's fused recurrent ops,
            # which ONNX Runtime runs fastest; it warns that it is deprecated in favour of dynamo.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (tokens, state),
                str(path),
                input_names=list(contract.INPUT_NAMES),
                output_names=list(contract.OUTPUT_NAMES),
                dynamic_axes=dynamic_axes,
                opset_version=OPSET,
                dynamo=False,
            )
        proto = onnx.load(str(path))
        metadata = ContractMetadata(
            tokenizer, model_metadata(model), dict(training), chat_template=chat_template
        )
        onnx.helper.set_model_props(proto, metadata.to_props())
        proto.producer_name = "charbot.exporter"
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(path))
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except (onnx.checker.ValidationError, RuntimeError) as exc:
        raise ExportError(f"the ONNX export of {path} failed its check: {exc}") from exc
    log.info("exported %s (%d bytes)", path, path.stat().st_size)
    return path


@dataclass(frozen=True)
class ParityCase:
    batch: int
    time: int
    chunks: int
    max_abs_diff: float


@dataclass(frozen=True)
class ParityReport:
    cases: list[ParityCase]
    tolerance: float

    @property
    def max_abs_diff(self) -> float:
        return max(case.max_abs_diff for case in self.cases)

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def table(self) -> str:
        lines = ["batch  time  chunks  max|Δlogits|"]
        lines += [
            f"{c.batch:>5}  {c.time:>4}  {c.chunks:>6}  {c.max_abs_diff:.2e}" for c in self.cases
        ]
        verdict = "ok" if self.ok else "FAILED"
        lines.append(f"max {self.max_abs_diff:.2e} (tolerance {self.tolerance:.0e}): {verdict}")
        return "\n".join(lines)


def _run_in_chunks(
    session: ort.InferenceSession, tokens: np.ndarray, state: np.ndarray, chunks: int
) -> np.ndarray:
    """Feed `tokens` (B, T) in `chunks` calls, carrying state_out into the next state."""
    pieces = []
    for part in np.array_split(tokens, chunks, axis=1):
        logits, state = session.run(
            list(contract.OUTPUT_NAMES),
            {contract.INPUT_TOKENS: part, contract.INPUT_STATE: state},
        )
        pieces.append(logits)
    return np.concatenate(pieces, axis=1)  # (B, T, vocab)


def verify_parity(
    path: Path,
    model: CharRNN,
    batches: Sequence[int] = (1, 3, 8),
    time: int = 24,
    chunk_counts: Sequence[int] = (1, 4),
    tolerance: float = 1e-4,
    seed: int = 0,
) -> ParityReport:
    """Compare ONNX Runtime with PyTorch on random tokens and states, whole and in chunks."""
    model = model.cpu().eval()
    session = open_session(path)
    gen = torch.Generator().manual_seed(seed)
    cases = []
    for batch in batches:
        tokens = torch.randint(0, model.config.vocab_size, (batch, time), generator=gen)
        # A non-zero start state checks that `state` is wired in, not just zeros.
        state = 0.5 * torch.randn(model.state_layers, batch, model.config.hidden, generator=gen)
        with torch.no_grad():
            expected, _ = model(tokens, state)
        for chunks in chunk_counts:
            try:
                got = _run_in_chunks(session, tokens.numpy(), state.numpy(), chunks)
            except ORT_ERRORS as exc:
                raise ExportError(f"ONNX Runtime cannot run {path} on this model's inputs") from exc
            if got.shape != expected.shape:
                raise ExportError(
                    f"{path} gives logits of shape {got.shape} where the model gives "
                    f"{tuple(expected.shape)}"
                )
            diff = float(np.abs(got - expected.numpy()).max())
            cases.append(ParityCase(batch, time, chunks, diff))
    return ParityReport(cases, tolerance)


def open_session(path: Path) -> ort.InferenceSession:
    """An ONNX Runtime CPU session; a missing or unreadable file is a CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"model file {path} does not exist")
    try:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except ORT_ERRORS as exc:
        raise NotOnnxError(f"{path} is not a readable ONNX model") from exc


def read_metadata(path: Path, session: ort.InferenceSession | None = None) -> ContractMetadata:
    """The file's contract metadata, checked; any fault in it is a CheckpointError."""
    session = session or open_session(path)
    try:
        return ContractMetadata.from_props(session.get_modelmeta().custom_metadata_map, path)
    except ContractError as exc:
        raise CheckpointError(str(exc)) from exc


def set_chat_template(path: Path, template: ChatTemplate) -> ContractMetadata:
    """Name `template` in an exported file's metadata, through the contract's codec; the graph
    and its weights are left as they are. The file is replaced only once the new one is
    written and checked."""
    metadata = replace(read_metadata(path), chat_template=template)
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, metadata.to_props())
    staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        onnx.save(proto, str(staged))
        read_metadata(staged)
        os.replace(staged, path)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        staged.unlink(missing_ok=True)
    return metadata
