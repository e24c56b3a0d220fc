"""Export: the ONNX contract (names, dtypes, dynamic dims, metadata), parity, verify, cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from exporter.checkpoint import build_model, build_tokenizer, load_checkpoint
from exporter.cli import main
from exporter.onnx_export import verify_parity
from exporter.train import TrainResult, train
from models import contract
from models.contract import ContractMetadata
from tests.exporter.conftest import tiny_config


@pytest.fixture(scope="module")
def exported(trained: TrainResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    assert main(["export", str(trained.best_path), "-o", str(path)]) == 0
    return path


def dims(value: onnx.ValueInfoProto) -> list[str | int]:
    """A tensor's dimensions: a name for a dynamic one, a number for a fixed one."""
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_export_follows_the_contract(trained: TrainResult, exported: Path) -> None:
    model = onnx.load(str(exported))
    onnx.checker.check_model(model, full_check=True)
    inputs = {v.name: v for v in model.graph.input}
    outputs = {v.name: v for v in model.graph.output}
    assert list(inputs) == list(contract.INPUT_NAMES)
    assert list(outputs) == list(contract.OUTPUT_NAMES)
    int64, float32 = onnx.TensorProto.INT64, onnx.TensorProto.FLOAT
    assert inputs["tokens"].type.tensor_type.elem_type == int64
    assert all(
        v.type.tensor_type.elem_type == float32 for v in [inputs["state"], *outputs.values()]
    )
    ckpt = load_checkpoint(trained.best_path)
    vocab = len(ckpt["tokenizer"]["vocab"])
    state_layers = 2 * 2  # LSTM: 2 layers, h and c
    assert dims(inputs["tokens"]) == ["batch", "time"]
    assert dims(inputs["state"]) == [state_layers, "batch", 24]
    assert dims(outputs["logits"]) == ["batch", "time", vocab]
    assert dims(outputs["state_out"]) == [state_layers, "batch", 24]

    props = {p.key: p.value for p in model.metadata_props}
    assert set(contract.REQUIRED_METADATA) <= set(props)
    meta = ContractMetadata.from_props(props, exported)
    assert meta.format == contract.FORMAT_VERSION
    assert meta.tokenizer.to_json() == ckpt["tokenizer"] and meta.tokenizer.level == "char"
    shape = meta.model
    assert (shape.cell, shape.layers, shape.hidden, shape.embedding) == ("lstm", 2, 24, 8)
    assert shape.vocab_size == vocab
    assert shape.parameters == build_model(ckpt, trained.best_path).num_parameters()
    training = meta.training
    assert training["corpus"] == "corpus.txt"
    assert training["sha256"] == ckpt["corpus"]["sha256"]
    assert training["characters"] == ckpt["corpus"]["characters"]
    assert training["steps"] == 24 and training["seconds"] >= 0
    assert training["best_val_loss"] == pytest.approx(trained.best_val_loss)
    assert training["command"]
    assert training["files"] == [
        {"name": "corpus.txt", "sha256": training["sha256"], "characters": training["characters"]}
    ]


def test_onnx_runs_with_any_batch_and_time(exported: Path) -> None:
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    for batch, time in [(1, 1), (5, 7)]:
        state = np.zeros((4, batch, 24), dtype=np.float32)
        tokens = np.zeros((batch, time), dtype=np.int64)
        logits, state_out = session.run(None, {"tokens": tokens, "state": state})
        assert logits.shape[:2] == (batch, time) and state_out.shape == state.shape


def test_export_prints_parity_and_size(
    trained: TrainResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.onnx"
    assert main(["export", str(trained.last_path), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "max|Δlogits|" in printed and ": ok" in printed
    assert f"{out.stat().st_size:,} bytes" in printed


def test_verify_passes_for_its_checkpoint_and_fails_for_another(
    trained: TrainResult,
    exported: Path,
    tmp_path: Path,
    corpus: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["verify", str(exported), str(trained.best_path)]) == 0
    assert ": ok" in capsys.readouterr().out
    other = train(tiny_config(hidden=16), [corpus], tmp_path, progress=False)
    assert main(["verify", str(exported), str(other.best_path)]) == 1
    err = capsys.readouterr().err
    assert "was not exported from" in err and "Traceback" not in err


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_every_cell_exports_with_parity(cell: str, tmp_path: Path, corpus: Path) -> None:
    result = train(tiny_config(cell=cell, max_steps=4), [corpus], tmp_path, progress=False)
    out = tmp_path / f"{cell}.onnx"
    assert main(["export", str(result.best_path), "-o", str(out)]) == 0
    ckpt = load_checkpoint(result.best_path)
    report = verify_parity(out, build_model(ckpt, result.best_path), batches=(1, 3))
    assert report.ok and report.max_abs_diff <= 1e-4
    assert {c.chunks for c in report.cases} == {1, 4}  # whole and in chunks


def test_word_level_trains_exports_and_samples(
    tmp_path: Path,
    word_corpus: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A vocabulary too small for the corpus: rare words become <unk>, and training says so.
    config = tiny_config(level="word", max_vocab=12, seq_len=8, max_steps=4)
    result = train(config, [word_corpus], tmp_path, progress=False)
    assert "mapped to '<unk>'" in caplog.text
    ckpt = load_checkpoint(result.best_path)
    tokenizer = build_tokenizer(ckpt, result.best_path)
    assert tokenizer.level == "word" and tokenizer.vocab_size == 12
    assert "<unk>" in tokenizer.vocab
    out = tmp_path / "words.onnx"
    assert main(["export", str(result.best_path), "-o", str(out)]) == 0
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    meta = ContractMetadata.from_props(props, out)
    assert meta.tokenizer.level == "word" and meta.training["level"] == "word"
    capsys.readouterr()
    for path in (result.best_path, out):
        assert main(["sample", str(path), "--prompt", "the zebra", "--length", "6"]) == 0
        err = capsys.readouterr().err
        assert "replaced by '<unk>': 'zebra'" in err


PLAY = "".join(
    f"{name}:\nA speech by {name}, and\nits second line.\n\n"
    for name in ("ROMEO", "JULIET", "First Citizen", "MERCUTIO") * 6
)


def test_the_chat_template_is_chosen_from_the_corpus_or_given(tmp_path: Path) -> None:
    play = tmp_path / "play.txt"
    play.write_text(PLAY, encoding="utf-8")
    run = train(tiny_config(max_steps=2, eval_interval=2), [play], tmp_path / "run", progress=False)

    def template_of(*options: str) -> str | None:
        out = tmp_path / "m.onnx"
        assert main(["export", str(run.best_path), "-o", str(out), *options]) == 0
        props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
        meta = ContractMetadata.from_props(props, out)
        assert "chat_template" not in meta.training  # its own key, not provenance
        return meta.chat_template

    assert template_of() == "play"  # speaker headings open the paragraphs
    assert template_of("--chat-template", "lines") == "lines"


def test_chat_template_names_it_in_a_file_and_leaves_the_weights(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(exported.read_bytes())
    assert main(["chat-template", str(copy), "play"]) == 0
    assert "chat template play (was lines)" in capsys.readouterr().out
    before, after = onnx.load(str(exported)), onnx.load(str(copy))
    props = {p.key: p.value for p in after.metadata_props}
    assert ContractMetadata.from_props(props, copy).chat_template == "play"
    assert (
        props[contract.META_TRAINING]
        == {p.key: p.value for p in before.metadata_props}[contract.META_TRAINING]
    )
    for graph in (before, after):
        del graph.metadata_props[:]
    assert before.SerializeToString() == after.SerializeToString()
    assert main(["chat-template", str(copy), "jinja"]) == 2  # not one of the set
