"""Bounds the exporter shares with the bot, and options checked before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

import bot.api
import bot.generation.params
import models.sampling
from bot.errors import InvalidParamsError
from bot.generation.params import GenerationParams
from exporter.errors import ConfigError
from exporter.quantize import QualityReport
from exporter.sampling import SamplingParams
from exporter.train import TrainResult
from tests.exporter.test_cli import assert_one_sentence, run


def test_the_bot_and_the_exporter_share_one_temperature_bound() -> None:
    bound = models.sampling.MAX_TEMPERATURE
    assert bot.generation.params.MAX_TEMPERATURE is bound and bot.api.MAX_TEMPERATURE is bound
    assert SamplingParams(temperature=bound).temperature == bound
    assert GenerationParams(temperature=bound).validate().temperature == bound
    refusal = r"temperature must be from 0\.0 to 2\.0; got 2\.5"
    with pytest.raises(ConfigError, match=refusal):
        SamplingParams(temperature=2.5)
    with pytest.raises(InvalidParamsError, match=refusal):
        GenerationParams(temperature=2.5).validate()


@pytest.mark.parametrize("temperature", ["5", "2.01", "-0.5"])
def test_sample_refuses_a_temperature_the_bot_would_refuse(
    trained: TrainResult, capsys: pytest.CaptureFixture[str], temperature: str
) -> None:
    argv = ["sample", str(trained.best_path), "--length", "5", "--temperature", temperature]
    status, printed, err = run(capsys, *argv)
    assert status == 2 and printed == ""
    assert_one_sentence(err)
    assert "--temperature" in err and "from 0.0 to 2.0" in err


def test_sample_takes_the_highest_temperature_the_bot_takes(
    trained: TrainResult, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sample", str(trained.best_path), "--length", "5", "--temperature", "2", "--seed", "1"]
    status, printed, _ = run(capsys, *argv)
    assert status == 0 and len(printed) == 6


def test_a_loss_rise_is_shown_with_the_digits_that_tell_it_from_the_limit() -> None:
    """At --max-loss-increase 0, a rise of 3e-5 used to read "+0.0000, more than 0"."""
    report = QualityReport(fp32_val_loss=1.46170, int8_val_loss=1.46173, max_loss_increase=0.0)
    refusal = report.refusal(Path("m.onnx"))
    assert "(+0.00003, more than --max-loss-increase 0)" in refusal
    assert "increase +0.00003 (allowed +0): FAILED" in report.table()
    usual = QualityReport(fp32_val_loss=1.4617, int8_val_loss=1.4633, max_loss_increase=0.02)
    assert "increase +0.0016 (allowed +0.02): ok" in usual.table()
    close = QualityReport(fp32_val_loss=1.0, int8_val_loss=1.02001, max_loss_increase=0.02)
    assert "(+0.02001, more than --max-loss-increase 0.02)" in close.refusal(Path("m.onnx"))


@pytest.mark.parametrize("command", ["export", "verify"])
def test_a_negative_max_loss_increase_is_refused(
    trained: TrainResult, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    onnx = trained.best_path.with_name("never.onnx")
    argv = [str(trained.best_path), "--quantize", "int8", "-o", str(onnx)]
    if command == "verify":
        argv = [str(onnx), str(trained.best_path)]
    status, _, err = run(capsys, command, *argv, "--max-loss-increase", "-1")
    assert status == 2
    assert_one_sentence(err)
    assert "--max-loss-increase" in err and "negative" in err
    assert not onnx.exists()


def test_max_loss_increase_without_quantize_is_refused_not_ignored(
    trained: TrainResult, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "fp32.onnx"
    argv = ["export", str(trained.best_path), "-o", str(out), "--max-loss-increase", "0.05"]
    status, _, err = run(capsys, *argv)
    assert status == 2
    assert_one_sentence(err)
    assert "--max-loss-increase" in err and "--quantize" in err
    assert not out.exists()
