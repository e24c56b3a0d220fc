"""Every reader of a contract file, fed one malformed metadata field at a time: one sentence each.

The readers are `python -m bot chat` (the model chosen by a config file), `python -m exporter
verify` and `python -m exporter sample`, each driven in-process through its `main(argv)`. The bot
also runs once as a real subprocess, where its logging reaches stderr too. (The exporter logs
nothing on this path; a subprocess of it would cost seconds of torch import and check no more.)
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main as bot_main
from exporter.cli import main as exporter_main
from exporter.train import TrainResult
from tests.contractfaults import FAULTS, Fault, assert_one_sentence, malformed_copy


@pytest.fixture(scope="module")
def good_onnx(trained: TrainResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared tiny run exported once; every malformed file is a copy of it."""
    path = tmp_path_factory.mktemp("contract") / "good.onnx"
    assert exporter_main(["export", str(trained.best_path), "-o", str(path)]) == 0
    return path


@pytest.fixture
def discord_log_level() -> Iterator[None]:
    """`bot chat` quiets discord.py's logger; keep that from leaking into later tests."""
    logger = logging.getLogger("discord")
    level = logger.level
    yield
    logger.setLevel(level)


def chat_config(tmp_path: Path, model: Path) -> Path:
    config = tmp_path / "charbot.toml"
    config.write_text(f'[models.broken]\npath = "{model}"\n')
    return config


def reader_argv(reader: str, model: Path, checkpoint: Path, tmp_path: Path) -> list[str]:
    if reader == "bot chat":
        return ["--config", str(chat_config(tmp_path, model)), "chat"]
    if reader == "exporter verify":
        return ["verify", str(model), str(checkpoint)]
    return ["sample", str(model), "--length", "3"]


@pytest.mark.parametrize("name", list(FAULTS))
def test_every_reader_says_one_sentence(
    name: str,
    good_onnx: Path,
    trained: TrainResult,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    discord_log_level: None,
) -> None:
    fault = FAULTS[name]
    model = malformed_copy(good_onnx, fault, tmp_path / "broken.onnx")
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.setenv("CHARBOT_DATA_DIR", str(tmp_path))
    for reader, main in (
        ("bot chat", bot_main),
        ("exporter verify", exporter_main),
        ("exporter sample", exporter_main),
    ):
        assert main(reader_argv(reader, model, trained.best_path, tmp_path)) == 1, reader
        captured = capsys.readouterr()
        assert captured.out == "", reader
        assert_one_sentence(captured.err, model, fault)


def test_the_good_file_passes_every_reader(
    good_onnx: Path, trained: TrainResult, capsys: pytest.CaptureFixture[str]
) -> None:
    """The control: the unbroken file is read by the exporter's readers (the bot's are tested
    with it elsewhere), so the faults above are what the readers refuse."""
    assert exporter_main(["verify", str(good_onnx), str(trained.best_path)]) == 0
    assert exporter_main(["sample", str(good_onnx), "--length", "3", "--seed", "1"]) == 0
    assert capsys.readouterr().err == ""


def test_the_real_bot_chat_prints_no_traceback(good_onnx: Path, tmp_path: Path) -> None:
    fault: Fault = FAULTS["tokenizer bad JSON"]
    model = malformed_copy(good_onnx, fault, tmp_path / "broken.onnx")
    env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
    env["CHARBOT_DATA_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(chat_config(tmp_path, model)), "chat"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 1
    # The bot also logs the failed load at ERROR level; the sentence for the user is the last line.
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert_one_sentence(errors[0], model, fault)
    assert "Traceback" not in result.stderr
