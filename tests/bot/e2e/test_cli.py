"""`python -m bot run` failures: each a sentence and a non-zero exit, the token never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main, overrides_from, parse_args, run_discord
from bot.config import load_config
from bot.testing import FakeDiscord, discord_env
from tests.bot.e2e.conftest import write_config

WRONG_TOKEN = "wrong-token-abc123-never-print-me"


async def test_a_wrong_token_is_refused_without_showing_it(
    fake_discord: FakeDiscord,
    tmp_path: Path,
    tiny_onnx: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = write_config(tmp_path, fake_discord, tiny_onnx)
    env = {**discord_env(fake_discord), "DISCORD_TOKEN": WRONG_TOKEN}
    config = load_config(path, env, {})
    assert await run_discord(config) == 1
    captured = capsys.readouterr()
    assert "refused the token" in captured.err
    everything = captured.out + captured.err + caplog.text + repr(config) + str(config)
    assert WRONG_TOKEN not in everything


def test_run_without_a_token_is_one_sentence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    assert main(["run"]) == 2
    assert "DISCORD_TOKEN is not set" in capsys.readouterr().err


def test_an_unknown_config_key_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[engine]\nwokers = 2\n")
    assert main(["--config", str(path), "chat"]) == 1
    err = capsys.readouterr().err
    assert "wokers" in err and "bad.toml" in err


def test_log_format_and_metrics_port_flags_reach_the_config() -> None:
    args = parse_args(["--log-format", "json", "run", "--metrics-port", "9108"])
    config = load_config(None, {}, overrides_from(args))
    assert (config.logging.format, config.metrics.port) == ("json", 9108)
    config = load_config(None, {"CHARBOT_METRICS_PORT": "9200"}, overrides_from(parse_args([])))
    assert (config.logging.format, config.metrics.port) == ("text", 9200)
