"""Train tiny models in seconds with the exporter (needs torch): `make.py` commits them as files,
and the exporter's tests train on CORPUS."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from exporter.onnx_export import export_onnx
from models.charrnn import CharRNN, CharRNNConfig
from models.tokenizers import Tokenizer, fit_tokenizer

CORPUS = (
    "To be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\n"
    "Or to take arms against a sea of troubles\n"
    "And by opposing end them. To die: to sleep;\n"
) * 8


def train_tiny(
    cell: str = "lstm",
    level: str = "char",
    hidden: int = 32,
    embedding: int = 16,
    steps: int = 60,
    seed: int = 0,
) -> tuple[CharRNN, Tokenizer]:
    """A small model fitted to CORPUS for `steps` Adam steps: enough to produce non-random text."""
    # One thread: on 2 busy cores, torch's default threading makes tiny models far slower.
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    tokenizer = fit_tokenizer(CORPUS, level)
    data = torch.tensor(tokenizer.encode(CORPUS).ids)
    model = CharRNN(
        CharRNNConfig(tokenizer.vocab_size, cell=cell, layers=2, hidden=hidden, embedding=embedding)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    seq = 32
    for _ in range(steps):
        starts = torch.randint(0, len(data) - seq - 1, (16,))
        x = torch.stack([data[s : s + seq] for s in starts])
        y = torch.stack([data[s + 1 : s + seq + 1] for s in starts])
        logits, _ = model(x, model.initial_state(16))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        optimizer.zero_grad()
        torch.autograd.backward(loss)
        optimizer.step()
    return model.eval(), tokenizer


def export_tiny(path: Path, cell: str = "lstm", level: str = "char", **kwargs: int) -> Path:
    model, tokenizer = train_tiny(cell, level, **kwargs)
    training = {
        "corpus": "tests/tinymodels/train.py",
        "sha256": hashlib.sha256(CORPUS.encode()).hexdigest(),
        "characters": len(CORPUS),
        "command": "python -m tests.tinymodels.make",
    }
    return export_onnx(model, tokenizer, training, path)
