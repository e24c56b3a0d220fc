"""Loading: the contract checks (each fault named, with the file) and the provider choice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto

from bot.errors import ModelLoadError, ProviderError
from bot.generation import model as model_module
from bot.generation.model import CPU, CUDA, choose_providers, load_model
from models import contract
from tests.bot.generation.fakemodels import DELETE, build_bigram


def test_tiny_model_loads_with_its_metadata(tiny_onnx: Path) -> None:
    loaded = load_model(tiny_onnx, "cpu")
    info = loaded.info
    assert (info.name, info.kind, info.level) == ("tiny-lstm", "onnx", "char")
    assert {k: info.details[k] for k in ("cell", "layers", "hidden")} == {
        "cell": "lstm", "layers": 2, "hidden": 32,
    }  # fmt: skip
    assert info.description == "char-level LSTM, 2 × 32 units"
    assert info.vocab_size == loaded.tokenizer.vocab_size == len(loaded.pieces)
    assert info.parameters > 0 and info.training["command"] == "python -m tests.tinymodels.make"
    assert info.provider == CPU
    assert loaded.state_layers == 4
    assert loaded.pieces[loaded.start_id] == "\n"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.onnx"
    with pytest.raises(ModelLoadError, match="does not exist") as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_garbage_bytes(tmp_path: Path) -> None:
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"\x00\x01 this is not a protobuf at all \xff" * 10)
    with pytest.raises(ModelLoadError, match="is not a readable ONNX model") as info:
        load_model(path)
    assert str(path) in str(info.value)
    assert info.value.__cause__ is not None  # converted from onnxruntime's error


FAULTS: dict[str, tuple[dict[str, Any], str]] = {
    "no format": ({"metadata": {contract.META_FORMAT: DELETE}}, "lacks 'charbot.format'"),
    "no tokenizer": ({"metadata": {contract.META_TOKENIZER: DELETE}}, "lacks 'charbot.tokenizer'"),
    "no model": ({"metadata": {contract.META_MODEL: DELETE}}, "lacks 'charbot.model'"),
    "no training": ({"metadata": {contract.META_TRAINING: DELETE}}, "lacks 'charbot.training'"),
    "newer format": ({"metadata": {contract.META_FORMAT: "2"}}, "format 2, newer than"),
    "format text": ({"metadata": {contract.META_FORMAT: "one"}}, "unreadable format version"),
    "tokenizer not JSON": ({"metadata": {contract.META_TOKENIZER: "{vocab"}}, "not valid JSON"),
    "tokenizer empty": (
        {"metadata": {contract.META_TOKENIZER: '{"level": "char", "vocab": []}'}},
        "unusable tokenizer: the vocabulary is empty",
    ),
    "tokenizer level": (
        {"metadata": {contract.META_TOKENIZER: '{"level": "byte", "vocab": ["a"]}'}},
        "unusable tokenizer",
    ),
    "unknown cell": (
        {"metadata": {contract.META_MODEL: '{"cell": "transformer", "layers": 1}'}},
        "unknown cell 'transformer'",
    ),
    "no hidden": (
        {"metadata": {contract.META_MODEL: '{"cell": "gru", "layers": 1, "embedding": 4}'}},
        "'hidden' is not a positive whole number",
    ),
    "training not object": ({"metadata": {contract.META_TRAINING: "[1, 2]"}}, "not a JSON object"),
    "declared vocab": (
        {"metadata": {contract.META_MODEL: (
            '{"cell": "gru", "layers": 1, "hidden": 4, "embedding": 4, "parameters": 16, '
            '"vocab_size": 9}'
        )}},
        "declares a vocabulary of 9 tokens, but its tokenizer has 4",
    ),
    "input name": ({"tokens_name": "ids"}, "has inputs ['ids', 'state']; the contract needs"),
    "input dtype": ({"tokens_type": TensorProto.INT32}, "'tokens' of type tensor(int32)"),
    "state rank": ({"state_rank": 2}, "'state' of rank 2; the contract needs rank 3"),
    "logits vocab": (
        {"table": np.zeros((7, 7)), "logits_dims": ["batch", "time", 7]},
        "'logits' with 7 vocabulary size, but its metadata says 4",
    ),
    "state hidden": ({"hidden": 4, "metadata": {contract.META_MODEL: (
        '{"cell": "gru", "layers": 1, "hidden": 8, "embedding": 4, "parameters": 16}'
    )}}, "'state' with 4 hidden units, but its metadata says 8"),
    "state layers": ({"metadata": {contract.META_MODEL: (
        '{"cell": "lstm", "layers": 1, "hidden": 4, "embedding": 4, "parameters": 16}'
    )}}, "1 state layers (layers * k), but its metadata says 2"),
}  # fmt: skip


@pytest.mark.parametrize("fault", list(FAULTS))
def test_contract_violation_names_file_and_fault(tmp_path: Path, fault: str) -> None:
    kwargs, expected = FAULTS[fault]
    path = build_bigram(tmp_path / "broken.onnx", **kwargs)
    with pytest.raises(ModelLoadError) as info:
        load_model(path, "cpu")
    message = str(info.value)
    assert str(path) in message
    assert expected in message


def test_the_hand_built_model_itself_is_fine(bigram_onnx: Path) -> None:
    assert load_model(bigram_onnx, "cpu").info.vocab_size == 4


# -- providers -----------------------------------------------------------------------------


def test_choose_providers() -> None:
    assert choose_providers("cpu", [CUDA, CPU]) == [CPU]
    assert choose_providers("auto", [CPU]) == [CPU]
    assert choose_providers("auto", ["AzureExecutionProvider", CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers("cuda", [CUDA, CPU]) == [CUDA, CPU]
    with pytest.raises(ProviderError, match="CUDA was asked for"):
        choose_providers("cuda", [CPU])


class _ReportsCuda:
    """A real session that claims to run on CUDA, as onnxruntime-gpu's would."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def get_providers(self) -> list[str]:
        return [CUDA, CPU]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _fake_cuda_offered(monkeypatch: pytest.MonkeyPatch, claims_cuda: bool) -> list[list[str]]:
    asked: list[list[str]] = []
    real = model_module.create_session

    def create(path: Path, providers: list[str], options: Any) -> Any:
        asked.append(providers)
        session = real(path, [CPU], options)
        return _ReportsCuda(session) if claims_cuda else session

    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(model_module, "create_session", create)
    return asked


def test_auto_takes_cuda_when_offered(monkeypatch: pytest.MonkeyPatch, bigram_onnx: Path) -> None:
    asked = _fake_cuda_offered(monkeypatch, claims_cuda=True)
    assert load_model(bigram_onnx, "auto").info.provider == CUDA
    assert asked == [[CUDA, CPU]]


def test_auto_reports_the_provider_really_used(
    monkeypatch: pytest.MonkeyPatch, bigram_onnx: Path, caplog: pytest.LogCaptureFixture
) -> None:
    asked = _fake_cuda_offered(monkeypatch, claims_cuda=False)
    assert load_model(bigram_onnx, "auto").info.provider == CPU  # fell back: never assumed
    assert asked == [[CUDA, CPU]]
    # One warning, saying why (this CPU build has no CUDA provider library at all).
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "CUDA not used for bigram.onnx (this onnxruntime has no CUDA provider" in warnings[0]


def test_cuda_that_falls_back_is_an_error(
    monkeypatch: pytest.MonkeyPatch, bigram_onnx: Path
) -> None:
    _fake_cuda_offered(monkeypatch, claims_cuda=False)
    with pytest.raises(ProviderError, match=r"could not use it \(this onnxruntime has no CUDA"):
        load_model(bigram_onnx, "cuda")


def test_the_reason_names_the_missing_cuda_library(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # onnxruntime-gpu without the CUDA libraries: its provider library is there but cannot load.
    capi = tmp_path / "onnxruntime" / "capi"
    capi.mkdir(parents=True)
    (capi / "libonnxruntime_providers_cuda.so").write_bytes(b"not a shared object")
    monkeypatch.setattr(ort, "__file__", str(tmp_path / "onnxruntime" / "__init__.py"))
    assert model_module.cuda_failure_reason().startswith("its CUDA provider cannot load: ")


def test_cuda_not_offered_is_an_error(monkeypatch: pytest.MonkeyPatch, bigram_onnx: Path) -> None:
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CPU])
    with pytest.raises(ProviderError, match="only CPUExecutionProvider"):
        load_model(bigram_onnx, "cuda")
    assert load_model(bigram_onnx, "auto").info.provider == CPU


def test_cpu_for_real(bigram_onnx: Path) -> None:
    loaded = load_model(bigram_onnx, "cpu", intra_op_threads=2)
    assert loaded.info.provider == CPU == loaded.session.get_providers()[0]
