from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.tinymodels import TINY_GRU, TINY_LSTM, TINY_WORD

# A real PostgreSQL (a fresh database per session) for the store and scale-out tests, the
# `fake_discord` fixture (a started test Discord server) for every test that talks to Discord,
# and the lanes each test is in (its markers).
pytest_plugins = ["tests.postgres", "bot.testing.fixtures", "tests.lanes"]


def copied(model: Path, factory: pytest.TempPathFactory) -> Path:
    """A session copy of a committed model: a test that writes next to it leaves the repo alone."""
    return Path(shutil.copy(model, factory.mktemp("models") / model.name))


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-unit char LSTM trained for a moment and exported to the contract."""
    return copied(TINY_LSTM, tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_onnx_gru(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copied(TINY_GRU, tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_onnx_word(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copied(TINY_WORD, tmp_path_factory)
