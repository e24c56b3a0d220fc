"""Small corpora and tiny training configs: every training run here takes well under a second."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from exporter.config import TrainConfig
from exporter.train import TrainResult, train
from tests.tinymodels.train import CORPUS


def tiny_config(**changes: object) -> TrainConfig:
    """A 2-layer LSTM of 24 units on 4 streams of 16 characters: milliseconds per step."""
    base = TrainConfig(
        hidden=24,
        embedding=8,
        seq_len=16,
        batch_size=4,
        max_steps=16,
        warmup_steps=4,
        eval_interval=8,
        eval_tokens=256,
        log_interval=4,
        lr=1e-2,
        dropout=0.0,  # 24 steps: dropout would only blur what the tests check
        threads=1,
    )
    return base.replace(**changes)


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and on a busy 2-core machine every parallel region
    can wait a whole scheduler time slice for its second thread: one step then takes a second."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Program-like and prose-like lines, so that word level has repeated words and a few rare ones.
WORD_CORPUS = (
    "the cat sat on the mat. the dog sat on the log.\n"
    "a cat and a dog, on a mat and a log; the end.\n"
) * 12


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return path


@pytest.fixture
def word_corpus(tmp_path: Path) -> Path:
    path = tmp_path / "words.txt"
    path.write_text(WORD_CORPUS, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """One tiny char-level run shared by the tests (which must not modify it)."""
    root = tmp_path_factory.mktemp("trained")
    path = root / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return train(tiny_config(max_steps=24), [path], root / "run", progress=False)
