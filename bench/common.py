"""What the benchmark scripts share: the model they measure and how they save their figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from models import BUNDLED_MODEL


def benchmark_model(directory: Path, chosen: Path | None = None) -> tuple[Path, str]:
    """The model to measure, and a description of it: `chosen` when given, else the bundled
    model, else an untrained 2x256 LSTM exported to `directory` (the bundled model's shape and
    vocabulary size, so speed figures compare)."""
    if chosen is not None:
        return chosen, str(chosen)
    if BUNDLED_MODEL.is_file():
        return BUNDLED_MODEL, str(BUNDLED_MODEL)
    import torch  # only here: measuring the bundled model needs no torch

    from exporter.onnx_export import export_onnx
    from models.charrnn import CharRNN, CharRNNConfig
    from models.tokenizers import CharTokenizer

    torch.manual_seed(0)
    # 65 printable characters, as many as tinyshakespeare has.
    tokenizer = CharTokenizer.fit("\n" + "".join(chr(c) for c in range(32, 96)))
    model = CharRNN(CharRNNConfig(tokenizer.vocab_size, "lstm", layers=2, hidden=256)).eval()
    path = export_onnx(model, tokenizer, {"corpus": "untrained"}, directory / "bench-2x256.onnx")
    return path, "untrained 2x256 LSTM (temporary)"


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {path}")
