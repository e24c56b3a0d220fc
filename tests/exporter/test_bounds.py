"""Bounds the exporter shares with the bot, and options checked before anything runs."""

from __future__ import annotations

import pytest

import bot.api
import bot.generation.params
import models.sampling
from bot.errors import InvalidParamsError
from bot.generation.params import GenerationParams
from exporter.errors import ConfigError
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
