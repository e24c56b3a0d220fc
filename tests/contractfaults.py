"""Contract metadata broken one field at a time, for the codec's tests and every reader's.

Each fault names a metadata key and what becomes of its value: REMOVE (the key is dropped), a
string (the new raw value), or a patch of the original JSON object (REMOVE inside a patch drops
that field). `malformed_copy` writes a copy of a real contract file with one fault applied.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from models import contract

REMOVE: Any = object()


@dataclass(frozen=True)
class Fault:
    key: str
    change: Any  # REMOVE, a raw string, or a dict patch of the JSON object
    expected: str  # what the one sentence must say


FAULTS: dict[str, Fault] = {
    "format missing": Fault(contract.META_FORMAT, REMOVE, "lacks 'charbot.format'"),
    "format not a number": Fault(contract.META_FORMAT, "one", "unreadable format version 'one'"),
    "format newer": Fault(contract.META_FORMAT, "2", "made by a newer charbot"),
    "format zero": Fault(contract.META_FORMAT, "0", "invalid format version 0"),
    "tokenizer missing": Fault(contract.META_TOKENIZER, REMOVE, "lacks 'charbot.tokenizer'"),
    "tokenizer bad JSON": Fault(contract.META_TOKENIZER, "{vocab", "is not valid JSON"),
    "tokenizer not an object": Fault(contract.META_TOKENIZER, "[1, 2]", "is not a JSON object"),
    "tokenizer vocab type": Fault(
        contract.META_TOKENIZER, {"vocab": "abc"}, "'vocab' is not a list of strings"
    ),
    "tokenizer vocab empty": Fault(contract.META_TOKENIZER, {"vocab": []}, "vocabulary is empty"),
    "tokenizer unknown level": Fault(
        contract.META_TOKENIZER, {"level": "byte"}, "unknown tokenizer level 'byte'"
    ),
    "tokenizer unknown policy": Fault(
        contract.META_TOKENIZER, {"unknown": "keep"}, "unknown-token policy 'keep'"
    ),
    "model missing": Fault(contract.META_MODEL, REMOVE, "lacks 'charbot.model'"),
    "model bad JSON": Fault(contract.META_MODEL, '{"cell": ', "is not valid JSON"),
    "model not an object": Fault(contract.META_MODEL, '"lstm"', "is not a JSON object"),
    "model unknown cell": Fault(
        contract.META_MODEL, {"cell": "transformer"}, "unknown cell 'transformer'"
    ),
    "model layers type": Fault(
        contract.META_MODEL, {"layers": "2"}, "'layers' is not a positive whole number"
    ),
    "model layers zero": Fault(
        contract.META_MODEL, {"layers": 0}, "'layers' is not a positive whole number"
    ),
    "model hidden missing": Fault(
        contract.META_MODEL, {"hidden": REMOVE}, "'hidden' is not a positive whole number"
    ),
    "model parameters bool": Fault(
        contract.META_MODEL, {"parameters": True}, "'parameters' is not a positive whole number"
    ),
    "model vocab_size differs": Fault(
        contract.META_MODEL, {"vocab_size": 9999}, "declares a vocabulary of 9999 tokens"
    ),
    "model dropout range": Fault(
        contract.META_MODEL, {"dropout": 1.5}, "'dropout' is not a number"
    ),
    "training missing": Fault(contract.META_TRAINING, REMOVE, "lacks 'charbot.training'"),
    "training bad JSON": Fault(contract.META_TRAINING, "corpus: x", "is not valid JSON"),
    "training not an object": Fault(contract.META_TRAINING, "[1]", "is not a JSON object"),
    "chat template unknown": Fault(
        contract.META_CHAT_TEMPLATE, "jinja", "unknown chat template 'jinja'; expected one of"
    ),
}


def apply_fault(props: Mapping[str, str], fault: Fault) -> dict[str, str]:
    """`props` with `fault` applied."""
    broken = dict(props)
    if fault.change is REMOVE:
        del broken[fault.key]
    elif isinstance(fault.change, str):
        broken[fault.key] = fault.change
    else:
        data = json.loads(props[fault.key])
        for field, value in fault.change.items():
            if value is REMOVE:
                data.pop(field, None)
            else:
                data[field] = value
        broken[fault.key] = json.dumps(data)
    return broken


def malformed_copy(source: Path, fault: Fault, path: Path) -> Path:
    """Write `source` to `path` with `fault` applied to its metadata_props."""
    model = onnx.load(str(source))
    props = apply_fault({p.key: p.value for p in model.metadata_props}, fault)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(path))
    return path


def assert_one_sentence(error_output: str, path: Path, fault: Fault) -> None:
    """`error_output` is one line, `error: ...`, naming the file and the fault: one sentence."""
    assert "Traceback" not in error_output
    lines = error_output.strip().splitlines()
    assert len(lines) == 1, error_output
    line = lines[0]
    assert line.startswith("error: ") and line.endswith("."), line
    assert str(path) in line and fault.expected in line, line
    # One sentence: no full stop inside it once the file's own name (with its dots) is set aside.
    assert ". " not in line.replace(str(path), "FILE"), line
