"""The console chat as a user runs it: `python -m bot chat` with piped stdin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_chat(
    lines: list[str], config: Path, data_dir: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
    env["CHARBOT_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(config), *extra, "chat"],
        input="".join(line + "\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.fixture
def config(tmp_path: Path, tiny_onnx: Path) -> Path:
    path = tmp_path / "charbot.toml"
    path.write_text(f'[models.tiny]\npath = "{tiny_onnx}"\n\n[generation]\nlength = 30\n')
    return path


def test_piped_chat_answers_each_line_and_settings_persist(config: Path, tmp_path: Path) -> None:
    first = run_chat(
        ["/temperature set 0", "To be", "/temperature show", "/model", "/help"], config, tmp_path
    )
    assert first.returncode == 0, first.stderr
    out = first.stdout.splitlines()
    assert out[0] == "Temperature set to 0 for this channel."
    assert out[1].startswith("To be") and len(out[1]) > len("To be")
    assert out[2] == "This channel's temperature is 0."
    assert "tiny" in first.stdout and "LSTM" in first.stdout
    assert "CPUExecutionProvider" in first.stdout
    assert "/temperature set VALUE" in first.stdout

    # A second run, a new process: the console channel's temperature is still 0 (greedy), so
    # the same prompt gives the same text.
    second = run_chat(["/temperature show", "To be"], config, tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == [out[2], out[1]]


def test_bad_input_gets_a_sentence_and_the_chat_goes_on(config: Path, tmp_path: Path) -> None:
    result = run_chat(
        ["/temperature set 2.5", "/temperature set abc", "/nope", "/model use ghost", "Zebra ☃"],
        config,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "error: The temperature must be from 0.0 to 2.0; got 2.5." in out
    assert "must be a number" in out
    assert "Unknown command '/nope'" in out
    assert "no model named 'ghost'" in out
    assert "does not know" in out  # Z and ☃ are not in the tiny model's vocabulary
    assert "Traceback" not in result.stderr


def test_a_missing_config_file_is_one_sentence(tmp_path: Path) -> None:
    result = run_chat(["hi"], tmp_path / "missing.toml", tmp_path)
    assert result.returncode != 0
    assert "missing.toml" in result.stderr and "Traceback" not in result.stderr


async def test_the_console_creates_no_discord_client(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    import discord

    from bot.config import load_config
    from bot.console import run_console
    from bot.runtime import build_services

    def no_client(*args: object, **kwargs: object) -> None:
        raise AssertionError("the console chat created a discord.py client")

    monkeypatch.setattr(discord.Client, "__init__", no_client)
    services = await build_services(load_config(config, {"CHARBOT_DATA_DIR": str(tmp_path)}))
    out = io.StringIO()
    try:
        status = await run_console(services, io.StringIO("/temperature set 0\nTo be\n"), out)
    finally:
        await services.close()
    assert status == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == "Temperature set to 0 for this channel." and lines[1].startswith("To be")


async def test_settings_in_the_console(config: Path, tmp_path: Path) -> None:
    import io

    from bot.config import load_config
    from bot.console import CONSOLE_CHANNEL_ID, run_console
    from bot.runtime import build_services

    services = await build_services(load_config(config, {"CHARBOT_DATA_DIR": str(tmp_path)}))
    lines = ["/settings set length 12", "/settings set top_p 0", "/settings set top_k x"]
    lines += ["/temperature set 0", "To be"]  # greedy: the same text every run
    out = io.StringIO()
    try:
        status = await run_console(services, io.StringIO("\n".join([*lines, "/settings"])), out)
        params = await services.completions.channel_params(CONSOLE_CHANNEL_ID)
    finally:
        await services.close()
    assert status == 0
    said = out.getvalue().splitlines()
    assert said[:3] == [
        "length set to 12 for this channel.",
        "error: top_p must be above 0 and at most 1 (1 is off); got 0.0.",
        "error: The value must be a number; got 'x'.",
    ]
    assert params.max_length == 12 and said[4].startswith("To be") and len(said[4]) > len("To be")
    assert "length: 12 (channel)" in said and "top_p: 1 (off) (default)" in said
