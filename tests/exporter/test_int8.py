"""int8 files keep the engine's guarantees: a row's logits do not depend on its batch neighbours
or on how its prompt was chunked, so a seed repeats under load as with fp32."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from bot.generation import Engine, EngineConfig, GenerationParams
from bot.generation.model import load_model
from bot.plugins.model import describe_model
from exporter.int8 import fp32_scan
from exporter.onnx_export import export_onnx, read_metadata
from exporter.quantize import quantize_int8
from exporter.train import TrainResult
from models import BUNDLED_MODEL
from models.charrnn import CharRNN, CharRNNConfig
from models.contract import CELLS, DYNAMIC_SEED_CAVEAT
from models.tokenizers import CharTokenizer
from tests.exporter.test_cli import run as run_cli
from tests.tinymodels.train import CORPUS

GUARANTEE = 1e-4  # as for fp32: a row's logits alone, in a batch, or chunked


def untrained(tmp_path: Path, cell: str, hidden: int = 32) -> Path:
    """A small model with random weights: every cell, in milliseconds."""
    tokenizer = CharTokenizer.fit(CORPUS)
    torch.manual_seed(0)
    model = CharRNN(CharRNNConfig(tokenizer.vocab_size, cell, 2, hidden, 8)).eval()
    return export_onnx(model, tokenizer, {}, tmp_path / f"{cell}.onnx")


def run(path: Path | onnx.ModelProto, tokens: np.ndarray, state: np.ndarray) -> np.ndarray:
    data = path.SerializeToString() if isinstance(path, onnx.ModelProto) else str(path)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    logits, state_out = session.run(None, {"tokens": tokens, "state": state})
    return np.concatenate(
        [logits.reshape(len(tokens), -1), state_out.swapaxes(0, 1).reshape(len(tokens), -1)], axis=1
    )


def inputs(path: Path, batch: int, time: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of very different states: a row's neighbours span a wide range of activations."""
    model = load_model(path, "cpu")
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, model.vocab_size, (batch, time)).astype(np.int64)
    spread = np.linspace(0.05, 1.0, batch, dtype=np.float32)[None, :, None]
    state = np.tanh(3 * rng.standard_normal(model.zero_state(batch).shape)).astype(np.float32)
    return tokens, state * spread


@pytest.mark.parametrize("cell", CELLS)
def test_an_int8_rows_logits_do_not_depend_on_its_neighbours_or_chunking(
    tmp_path: Path, cell: str
) -> None:
    fp32 = untrained(tmp_path, cell)
    int8 = tmp_path / f"{cell}-int8.onnx"
    quantize_int8(fp32, int8)
    tokens, state = inputs(fp32, 8, 24)
    model = load_model(int8, "cpu")  # the bot's contract check
    batch_logits, batch_state = model.run(tokens, state)
    for row in (0, 5, 7):
        alone, alone_state = model.run(tokens[row : row + 1], state[:, row : row + 1])
        assert np.abs(alone[0] - batch_logits[row]).max() <= GUARANTEE
        assert np.abs(alone_state[:, 0] - batch_state[:, row]).max() <= GUARANTEE
    # The same rows fed in chunks of 1, 7 and 16 tokens, the state carried.
    carried, pieces = state, []
    for start, end in ((0, 1), (1, 8), (8, 24)):
        logits, carried = model.run(tokens[:, start:end], carried)
        pieces.append(logits)
    assert np.abs(np.concatenate(pieces, axis=1) - batch_logits).max() <= GUARANTEE
    assert np.abs(carried - batch_state).max() <= GUARANTEE


@pytest.mark.parametrize("cell", CELLS)
def test_the_int8_rewrite_is_the_same_network_in_fp32(tmp_path: Path, cell: str) -> None:
    """The step graph it quantizes computes what the fused LSTM/GRU/RNN op does."""
    fp32 = untrained(tmp_path, cell)
    tokens, state = inputs(fp32, 3, 20)
    fused = run(fp32, tokens, state)
    stepped = run(fp32_scan(onnx.load(str(fp32)), fp32), tokens, state)
    assert np.abs(fused - stepped).max() <= 1e-4


def test_a_seed_repeats_under_load_with_the_bundled_model_in_int8(tmp_path: Path) -> None:
    """One prompt alone, then among 7 others in one batch: the same text for its seed (with
    ONNX Runtime's dynamic quantization, the two texts at 0.8 parted at the 189th character)."""
    int8 = tmp_path / "shakespeare-int8.onnx"
    quantize_int8(BUNDLED_MODEL, int8)
    prompts = ["ROMEO:", "To be, or not", "KING", "a", "The quick brown fox", "O", "Hm", "!"]

    async def texts(temperature: float) -> tuple[str, str]:
        params = [
            GenerationParams(max_length=400, temperature=temperature, seed=i) for i in range(8)
        ]
        engine = await Engine.start(int8, EngineConfig(provider="cpu", workers=1, max_batch=8))
        try:
            alone = await engine.complete(prompts[0], params[0])
            crowd = await asyncio.gather(
                *(engine.complete(p, q) for p, q in zip(prompts, params, strict=True))
            )
            return alone.text, crowd[0].text
        finally:
            await engine.close()

    for temperature in (0.0, 0.8):
        alone, in_a_batch = asyncio.run(texts(temperature))
        assert in_a_batch == alone, temperature


def test_int8_dynamic_is_an_opt_in_whose_seed_caveat_is_stated(
    tmp_path: Path, trained: TrainResult, capsys: pytest.CaptureFixture[str]
) -> None:
    """ONNX Runtime's dynamic quantization breaks the guarantee: asked for by name, and the
    card and `/model show` say that a seed then repeats only when the request runs alone."""
    files = {}
    for choice in ("int8", "int8-dynamic"):
        files[choice] = tmp_path / f"{choice}.onnx"
        argv = ["export", str(trained.best_path), "-o", str(files[choice]), "--length", "20"]
        assert run_cli(capsys, *argv, "--quantize", choice)[0] == 0
    for choice, method in (("int8", "static"), ("int8-dynamic", "dynamic")):
        quantization = read_metadata(files[choice]).quantization
        assert quantization is not None and quantization.method == method
        card = files[choice].with_suffix(".md").read_text(encoding="utf-8")
        shown = describe_model(load_model(files[choice], "cpu").info)
        said = DYNAMIC_SEED_CAVEAT in card, DYNAMIC_SEED_CAVEAT in shown
        assert said == ((True, True) if method == "dynamic" else (False, False)), choice
    # And the caveat is true of the dynamic file: a row's logits move with its neighbours.
    model = load_model(files["int8-dynamic"], "cpu")
    tokens, state = inputs(files["int8-dynamic"], 8, 24)
    together, _ = model.run(tokens, state)
    alone, _ = model.run(tokens[:1], state[:, :1])
    assert np.abs(alone[0] - together[0]).max() > GUARANTEE
