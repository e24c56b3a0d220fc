from __future__ import annotations

from pathlib import Path

import pytest

from tests.tinymodel import export_tiny

# A real PostgreSQL (a fresh database per session) for the store and scale-out tests, the
# `fake_discord` fixture (a started test Discord server) for every test that talks to Discord,
# and the lanes each test is in (its markers).
pytest_plugins = ["tests.postgres", "bot.testing.fixtures", "tests.lanes"]


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-unit char LSTM trained for a moment and exported to the contract."""
    return export_tiny(tmp_path_factory.mktemp("models") / "tiny-lstm.onnx")


@pytest.fixture(scope="session")
def tiny_onnx_gru(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny(tmp_path_factory.mktemp("models") / "tiny-gru.onnx", cell="gru")


@pytest.fixture(scope="session")
def tiny_onnx_word(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny(tmp_path_factory.mktemp("models") / "tiny-word.onnx", level="word")
