"""The console chat fed what a real terminal or pipe sends: bad bytes, odd commands, long lines."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.config import load_config
from bot.console import run_console
from bot.core.services import Services
from bot.runtime import assemble
from bot.settings import SettingsRegistry
from bot.stores import MemoryStore

Chat = Callable[..., Coroutine[Any, Any, tuple[int, list[str]]]]


def write_config(tmp_path: Path, model: Path, extra: str = "") -> Path:
    path = tmp_path / "charbot.toml"
    path.write_text(f'[models.tiny]\npath = "{model}"\n\n[generation]\nlength = 30\n{extra}')
    return path


@pytest.fixture
async def chat(tmp_path: Path, tiny_onnx: Path) -> AsyncIterator[Chat]:
    """Runs the console on its own services over `stdin` bytes; returns (status, output lines)."""
    made: list[Services] = []

    async def run(data: bytes, *, errors: str = "strict", extra: str = "") -> tuple[int, list[str]]:
        config = load_config(write_config(tmp_path, tiny_onnx, extra), {}, {})
        registry = SettingsRegistry()
        services = assemble(config, MemoryStore(registry), registry)
        made.append(services)
        # What sys.stdin is under a strict UTF-8 locale (errors="strict") or C.UTF-8
        # (errors="surrogateescape").
        stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors=errors)
        out = io.StringIO()
        status = await run_console(services, stdin, out)
        return status, out.getvalue().splitlines()

    yield run
    for services in made:
        await services.close()


@pytest.mark.parametrize("errors", ["strict", "surrogateescape"])
async def test_invalid_utf8_is_replaced_and_every_line_answered(chat: Chat, errors: str) -> None:
    status, lines = await chat(
        b"/temperature set 0\nTo \xff\xfe be\n/temperature show\n", errors=errors
    )
    assert status == 0
    assert lines[0] == "Temperature set to 0 for this channel."
    assert lines[1].startswith("To \ufffd\ufffd be")
    assert "This channel's temperature is 0." in lines
    assert not any("\udcff" in line or "\udcfe" in line for line in lines)


async def test_a_too_long_prompt_is_refused_before_it_is_echoed(chat: Chat) -> None:
    status, lines = await chat(b"x" * 50 + b"\nTo be\n", extra="[engine]\nmax_prompt_chars = 20\n")
    assert status == 0
    assert lines[0] == "error: The prompt is 50 characters long; the limit is 20."
    assert lines[1].startswith("To be")


async def test_incomplete_commands_get_a_usage_line(chat: Chat) -> None:
    status, lines = await chat(
        b"/temperature set\n/temperature set 1 2\n/model use\n/model use a b\n"
    )
    assert status == 0
    assert lines == [
        "usage: /temperature set VALUE (0 to 2)",
        "usage: /temperature set VALUE (0 to 2)",
        "usage: /model use NAME (one of: tiny)",
        "usage: /model use NAME (one of: tiny)",
    ]


async def test_replies_are_plain_text_and_never_negative_zero(chat: Chat) -> None:
    status, lines = await chat(b"/temperature set -0\n/temperature show\n/model use tiny\n")
    assert status == 0
    assert lines == [
        "Temperature set to 0 for this channel.",
        "This channel's temperature is 0.",
        "This channel now uses tiny.",
    ]


async def test_unknown_characters_are_listed_apart_and_said_dropped(chat: Chat) -> None:
    status, lines = await chat("To be ☃€☃\n".encode())
    assert status == 0
    assert lines[-1] == "(The model does not know “☃”, “€”: they were left out.)"


async def test_unknown_words_are_listed_apart_and_said_replaced(
    tmp_path: Path, tiny_onnx_word: Path
) -> None:
    config = load_config(write_config(tmp_path, tiny_onnx_word), {}, {})
    registry = SettingsRegistry()
    services = assemble(config, MemoryStore(registry), registry)
    out = io.StringIO()
    try:
        assert await run_console(services, io.StringIO("To be qqq zzz qqq\n"), out) == 0
    finally:
        await services.close()
    assert out.getvalue().splitlines()[-1] == (
        "(The model does not know “qqq”, “zzz”: they became <unk>.)"
    )


def test_a_default_model_that_fails_is_reported_once(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHARBOT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO("To be\n"))
    config = write_config(tmp_path, tmp_path / "missing.onnx")
    with caplog.at_level(logging.INFO):
        assert main(["--config", str(config), "chat"]) == 1
    everything = capsys.readouterr().err + caplog.text
    assert everything.count("missing.onnx") == 1, everything


class ClosedPipe(io.StringIO):
    """stdout whose reader went away, as under `python -m bot chat | head -1`."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_stdout_ends_the_chat_quietly(
    tmp_path: Path,
    tiny_onnx: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHARBOT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO("To be\nTo be\n"))
    monkeypatch.setattr("sys.stdout", ClosedPipe())
    assert main(["--config", str(write_config(tmp_path, tiny_onnx)), "chat"]) == 0
    assert capsys.readouterr().err == ""
