"""The ONNX model contract, version 1: tensor names, the state layout and the metadata codec.

One `.onnx` file is the whole model: weights, vocabulary and provenance. This module holds the
names both sides agree on, the state layout, and the one codec of the file's `metadata_props`
(`ContractMetadata.to_props` for the exporter, `ContractMetadata.from_props` for every reader), so
that the exporter writes exactly what the bot reads. It must not import torch or onnxruntime: the
bot, the exporter and the test fakes all import it, and it needs the standard library alone.

Tensors:
    tokens     input   int64    (batch, time)
    state      input   float32  (layers * k, batch, hidden); k = 2 for LSTM (all h, then all c)
    logits     output  float32  (batch, time, vocab)
    state_out  output  float32  same as state

Metadata (`metadata_props`, every value a string):
    charbot.format     the format version, a whole number; a reader refuses a newer one
    charbot.tokenizer  JSON object: `Tokenizer.to_json()`
    charbot.model      JSON object: cell, layers, hidden, embedding, parameters (and, as written
                       by the exporter, vocab_size and dropout)
    charbot.training   JSON object: free-form provenance (corpus, steps, loss, command, ...)
    charbot.quantization  (optional) JSON object: how the weights were quantized and what it
                       cost in validation loss (`Quantization`); absent from a float32 model
    charbot.chat_template  (optional) the name of the chat template that suits the text the
                       model was trained on, one of `models.chat.CHAT_TEMPLATES` ("lines",
                       "play"); a model without one uses "lines"

The format version goes up only when a reader of the older format would misread a file made to
the newer one. An optional key that older readers ignore (`charbot.quantization`,
`charbot.chat_template`) leaves it as it is: an older charbot serves such a file as before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import Any, Final, Literal, Protocol, TypeGuard, cast

from models.chat import CHAT_TEMPLATES, ChatTemplate, is_chat_template
from models.tokenizers import Tokenizer, TokenizerError, tokenizer_from_json

FORMAT_VERSION: Final = 1

INPUT_TOKENS: Final = "tokens"
INPUT_STATE: Final = "state"
OUTPUT_LOGITS: Final = "logits"
OUTPUT_STATE: Final = "state_out"
INPUT_NAMES: Final = (INPUT_TOKENS, INPUT_STATE)
OUTPUT_NAMES: Final = (OUTPUT_LOGITS, OUTPUT_STATE)

META_FORMAT: Final = "charbot.format"
META_TOKENIZER: Final = "charbot.tokenizer"
META_MODEL: Final = "charbot.model"
META_TRAINING: Final = "charbot.training"
REQUIRED_METADATA: Final = (META_FORMAT, META_TOKENIZER, META_MODEL, META_TRAINING)
META_QUANTIZATION: Final = "charbot.quantization"
META_CHAT_TEMPLATE: Final = "charbot.chat_template"

Cell = Literal["lstm", "gru", "rnn"]
CELLS: Final[tuple[Cell, ...]] = ("lstm", "gru", "rnn")

Source = str | PathLike[str]

#: Each tensor's ONNX type and rank, as ONNX Runtime reports them.
EXPECTED_INPUTS: Final = {INPUT_TOKENS: ("tensor(int64)", 2), INPUT_STATE: ("tensor(float)", 3)}
EXPECTED_OUTPUTS: Final = {OUTPUT_LOGITS: ("tensor(float)", 3), OUTPUT_STATE: ("tensor(float)", 3)}


class ContractError(ValueError):
    """Metadata that breaks the contract. The message is one sentence naming the file and fault.

    Each package converts it where it enters (`raise ModelLoadError(str(exc)) from exc`).
    """


def state_factor(cell: str) -> int:
    """How many state tensors a layer carries: h and c for an LSTM, h alone otherwise."""
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}; expected one of {', '.join(CELLS)}")
    return 2 if cell == "lstm" else 1


def state_shape(cell: str, layers: int, batch: int, hidden: int) -> tuple[int, int, int]:
    """Shape of the `state` input for a batch: (layers * k, batch, hidden)."""
    return (layers * state_factor(cell), batch, hidden)


def check_format(raw: str, source: Source) -> int:
    """The format version in `raw`: the one rule for every reader. A newer one is refused."""
    try:
        version = int(raw.strip())
    except ValueError:
        raise ContractError(f"{source} has an unreadable format version {raw!r}.") from None
    if version > FORMAT_VERSION:
        raise ContractError(
            f"{source} uses model format {version}, newer than the format {FORMAT_VERSION} this "
            "charbot reads: it was made by a newer charbot, so update charbot to use it."
        )
    if version < 1:
        raise ContractError(f"{source} has an invalid format version {version}.")
    return version


@dataclass(frozen=True)
class ModelShape:
    """The `charbot.model` section: the network, described without loading it."""

    cell: Cell
    layers: int
    hidden: int
    embedding: int
    parameters: int
    vocab_size: int | None = None  # optional; when given it must match the tokenizer's
    dropout: float | None = None  # training provenance only

    @property
    def state_layers(self) -> int:
        """The first dimension of the state: layers * k."""
        return self.layers * state_factor(self.cell)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "cell": self.cell,
            "layers": self.layers,
            "hidden": self.hidden,
            "embedding": self.embedding,
            "vocab_size": self.vocab_size,
            "dropout": self.dropout,
            "parameters": self.parameters,
        }
        return {key: value for key, value in data.items() if value is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: Source) -> ModelShape:
        where = f"{source} has metadata {META_MODEL!r} whose"
        cell = data.get("cell")
        if cell not in CELLS:
            raise ContractError(
                f"{source} has an unknown cell {cell!r}; expected one of {', '.join(CELLS)}."
            )
        numbers: dict[str, int] = {}
        for key in ("layers", "hidden", "embedding", "parameters", "vocab_size"):
            value = data.get(key)
            if key == "vocab_size" and value is None:
                continue
            if not _is_int(value) or value < 1:
                raise ContractError(
                    f"{where} {key!r} is not a positive whole number (got {value!r})."
                )
            numbers[key] = value
        dropout = data.get("dropout")
        if dropout is not None and not (
            isinstance(dropout, int | float) and not isinstance(dropout, bool) and 0 <= dropout < 1
        ):
            raise ContractError(f"{where} 'dropout' is not a number in [0, 1) (got {dropout!r}).")
        return cls(
            cell=cast(Cell, cell),
            layers=numbers["layers"],
            hidden=numbers["hidden"],
            embedding=numbers["embedding"],
            parameters=numbers["parameters"],
            vocab_size=numbers.get("vocab_size"),
            dropout=None if dropout is None else float(dropout),
        )


#: What a dynamically quantized model cannot promise: ONNX Runtime scales its activations over
#: each whole call, so a row's logits depend on its batch neighbours and on prompt chunking. Said
#: wherever a seed is promised (the model card, `/model show`, the docs).
DYNAMIC_SEED_CAVEAT: Final = "a seed repeats only when the request runs alone"


@dataclass(frozen=True)
class Quantization:
    """The `charbot.quantization` section of a quantized file: the method and what it cost, as
    validation loss (nats per token) of the float32 model and of this one on the same text."""

    method: str  # "static": fixed activation scales (exporter.int8); "dynamic": per call
    weights: str  # "int8"
    tool: str  # e.g. "onnxruntime 1.22.0"
    fp32_val_loss: float
    quantized_val_loss: float
    max_loss_increase: float  # the rise the exporter allowed when it wrote the file

    @property
    def loss_increase(self) -> float:
        return self.quantized_val_loss - self.fp32_val_loss

    @property
    def seed_caveat(self) -> str | None:
        """What this file does to the seed promise, if anything."""
        return DYNAMIC_SEED_CAVEAT if self.method == "dynamic" else None

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "weights": self.weights,
            "tool": self.tool,
            "fp32_val_loss": self.fp32_val_loss,
            "quantized_val_loss": self.quantized_val_loss,
            "max_loss_increase": self.max_loss_increase,
            "val_loss_unit": "nats per token",
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: Source) -> Quantization:
        where = f"{source} has metadata {META_QUANTIZATION!r} whose"
        for key in ("method", "weights", "tool"):
            if not isinstance(data.get(key), str):
                raise ContractError(f"{where} {key!r} is not a string (got {data.get(key)!r}).")
        for key in ("fp32_val_loss", "quantized_val_loss", "max_loss_increase"):
            value = data.get(key)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ContractError(f"{where} {key!r} is not a number (got {value!r}).")
        return cls(
            method=data["method"],
            weights=data["weights"],
            tool=data["tool"],
            fp32_val_loss=float(data["fp32_val_loss"]),
            quantized_val_loss=float(data["quantized_val_loss"]),
            max_loss_increase=float(data["max_loss_increase"]),
        )


@dataclass(frozen=True)
class ContractMetadata:
    """Everything a contract file says about itself besides its weights."""

    tokenizer: Tokenizer
    model: ModelShape
    training: Mapping[str, Any] = field(default_factory=dict)
    format: int = FORMAT_VERSION
    quantization: Quantization | None = None  # None: float32 weights
    chat_template: ChatTemplate | None = None  # None: the file names none (readers use "lines")

    def to_props(self) -> dict[str, str]:
        """The file's `metadata_props`."""
        props = {
            META_FORMAT: str(self.format),
            META_TOKENIZER: json.dumps(self.tokenizer.to_json(), ensure_ascii=False),
            META_MODEL: json.dumps(self.model.to_json()),
            META_TRAINING: json.dumps(dict(self.training), ensure_ascii=False),
        }
        if self.quantization is not None:
            props[META_QUANTIZATION] = json.dumps(self.quantization.to_json())
        if self.chat_template is not None:
            props[META_CHAT_TEMPLATE] = self.chat_template
        return props

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: Source) -> ContractMetadata:
        """Parse and check a file's `metadata_props`; any fault is one `ContractError`."""
        for key in REQUIRED_METADATA:
            if key not in props:
                raise ContractError(f"{source} is not a charbot model: its metadata lacks {key!r}.")
        version = check_format(props[META_FORMAT], source)
        try:
            tokenizer = tokenizer_from_json(_json_object(props, META_TOKENIZER, source))
        except TokenizerError as exc:
            raise ContractError(f"{source} has an unusable tokenizer: {exc}.") from exc
        model = ModelShape.from_json(_json_object(props, META_MODEL, source), source)
        if model.vocab_size is not None and model.vocab_size != tokenizer.vocab_size:
            raise ContractError(
                f"{source} declares a vocabulary of {model.vocab_size} tokens, but its tokenizer "
                f"has {tokenizer.vocab_size}."
            )
        training = _json_object(props, META_TRAINING, source)
        quantization = None
        if META_QUANTIZATION in props:
            quantization = Quantization.from_json(
                _json_object(props, META_QUANTIZATION, source), source
            )
        chat_template = props.get(META_CHAT_TEMPLATE)
        if chat_template is not None and not is_chat_template(chat_template):
            raise ContractError(
                f"{source} names an unknown chat template {chat_template!r}; "
                f"expected one of {', '.join(CHAT_TEMPLATES)}."
            )
        return cls(tokenizer, model, training, version, quantization, chat_template)


def _json_object(props: Mapping[str, str], key: str, source: Source) -> dict[str, Any]:
    try:
        data = json.loads(props[key])
    except json.JSONDecodeError as exc:
        raise ContractError(
            f"{source} has metadata {key!r} that is not valid JSON: {exc}."
        ) from exc
    if not isinstance(data, dict):
        raise ContractError(f"{source} has metadata {key!r} that is not a JSON object.")
    return data


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


class TensorArg(Protocol):
    """A graph input or output as ONNX Runtime describes it (`session.get_inputs()`)."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def shape(self) -> Sequence[Any]: ...


def check_tensors(
    inputs: Sequence[TensorArg],
    outputs: Sequence[TensorArg],
    metadata: ContractMetadata,
    source: Source,
) -> None:
    """The graph's inputs and outputs against the contract: names, types and ranks, and the
    static dimensions the file has against its metadata. Any fault is one `ContractError`."""
    shape = metadata.model
    for kind, args, expected in (
        ("input", inputs, EXPECTED_INPUTS),
        ("output", outputs, EXPECTED_OUTPUTS),
    ):
        names = [arg.name for arg in args]
        if sorted(names) != sorted(expected):
            raise ContractError(
                f"{source} has {kind}s {names}; the contract needs exactly {list(expected)}."
            )
        for arg in args:
            dtype, rank = expected[arg.name]
            if arg.type != dtype:
                raise ContractError(
                    f"{source} has {kind} {arg.name!r} of type {arg.type}; "
                    f"the contract needs {dtype}."
                )
            if len(arg.shape) != rank:
                raise ContractError(
                    f"{source} has {kind} {arg.name!r} of rank {len(arg.shape)}; "
                    f"the contract needs rank {rank}."
                )
            dims = list(arg.shape)
            if arg.name in (INPUT_STATE, OUTPUT_STATE):
                _check_dim(
                    source, arg.name, dims[0], shape.state_layers, "state layers (layers * k)"
                )
                _check_dim(source, arg.name, dims[2], shape.hidden, "hidden units")
            if arg.name == OUTPUT_LOGITS:
                size = metadata.tokenizer.vocab_size
                _check_dim(source, arg.name, dims[2], size, "vocabulary size")


def _check_dim(source: Source, name: str, dim: object, expected: int, what: str) -> None:
    if isinstance(dim, int) and dim != expected:
        raise ContractError(
            f"{source} has {name!r} with {dim} {what}, but its metadata says {expected}."
        )
