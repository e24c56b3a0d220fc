"""The contract metadata codec: a round trip, and one sentence for each malformed field."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from models import contract
from models.contract import ContractError, ContractMetadata, ModelShape, Quantization
from models.tokenizers import CharTokenizer
from tests.contractfaults import FAULTS, apply_fault

SOURCE = Path("models/some.onnx")
METADATA = ContractMetadata(
    CharTokenizer.fit("abc\n"),
    ModelShape("lstm", layers=2, hidden=8, embedding=4, parameters=100, vocab_size=4, dropout=0),
    {"corpus": "hand-made", "steps": 3},
)


def test_round_trip() -> None:
    props = METADATA.to_props()
    assert set(props) == set(contract.REQUIRED_METADATA)
    assert props[contract.META_FORMAT] == str(contract.FORMAT_VERSION)
    back = ContractMetadata.from_props(props, SOURCE)
    assert back.tokenizer.to_json() == METADATA.tokenizer.to_json()
    assert (back.model, back.training, back.format) == (METADATA.model, METADATA.training, 1)
    assert back.model.state_layers == 4


def test_the_quantization_entry_round_trips_and_is_checked() -> None:
    entry = Quantization("dynamic", "int8", "onnxruntime 1.0", 1.5, 1.51, 0.02)
    props = replace(METADATA, quantization=entry).to_props()
    assert set(props) == {*contract.REQUIRED_METADATA, contract.META_QUANTIZATION}
    back = ContractMetadata.from_props(props, SOURCE)
    assert back.quantization == entry and back.quantization.loss_increase == pytest.approx(0.01)
    assert ContractMetadata.from_props(METADATA.to_props(), SOURCE).quantization is None
    props[contract.META_QUANTIZATION] = '{"method": "dynamic", "weights": "int8"}'
    with pytest.raises(ContractError, match=r"quantization' whose 'tool' is not a string"):
        ContractMetadata.from_props(props, SOURCE)


def test_the_chat_template_round_trips_and_is_optional() -> None:
    props = replace(METADATA, chat_template="play").to_props()
    assert props[contract.META_CHAT_TEMPLATE] == "play"
    assert ContractMetadata.from_props(props, SOURCE).chat_template == "play"
    # Optional: a file without one (any file made before the key existed) reads as before, and
    # the format version stays, since older readers ignore the key.
    assert contract.META_CHAT_TEMPLATE not in METADATA.to_props()
    assert ContractMetadata.from_props(METADATA.to_props(), SOURCE).chat_template is None
    assert props[contract.META_FORMAT] == "1"


def test_the_bundled_model_names_the_play_template() -> None:
    """tinyshakespeare is a play: `NAME:` headings, speeches, blank lines between them."""
    import onnxruntime as ort

    from models import BUNDLED_MODEL

    session = ort.InferenceSession(str(BUNDLED_MODEL), providers=["CPUExecutionProvider"])
    props = session.get_modelmeta().custom_metadata_map
    assert ContractMetadata.from_props(props, BUNDLED_MODEL).chat_template == "play"


@pytest.mark.parametrize("name", list(FAULTS))
def test_each_malformed_field_is_one_contract_error(name: str) -> None:
    fault = FAULTS[name]
    with pytest.raises(ContractError) as info:
        ContractMetadata.from_props(apply_fault(METADATA.to_props(), fault), SOURCE)
    message = str(info.value)
    assert message.startswith(str(SOURCE)) and fault.expected in message
    assert message.endswith(".") and "\n" not in message


def test_the_format_rule_refuses_a_newer_format() -> None:
    assert contract.check_format("1", SOURCE) == 1
    with pytest.raises(ContractError, match="made by a newer charbot"):
        contract.check_format(str(contract.FORMAT_VERSION + 1), SOURCE)


def test_the_codec_and_the_ort_errors_import_no_torch() -> None:
    code = (
        "import sys, models.contract; print('torch' in sys.modules, 'onnxruntime' in sys.modules);"
        "import models.ort; print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False", "False"]
