"""`python -m bot run` failures: each a sentence and a non-zero exit, the token never shown."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from bot.cli import main, overrides_from, parse_args, run_discord
from bot.config import load_config
from bot.settings import SettingsRegistry
from bot.stores import open_store
from bot.testing import FakeDiscord, discord_env
from tests.bot.e2e.conftest import write_config
from tests.bot.e2e.reliability import REPO

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


async def exit_of(server: FakeDiscord, config: Path, *argv: str) -> tuple[int | None, str]:
    """`python -m bot ARGV run` against `server` until it exits: its code and its output."""
    env = {**os.environ, **discord_env(server), "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "--config", str(config), *argv, "run",
        cwd=REPO, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode, out.decode(errors="replace")


async def test_sharding_required_is_one_sentence_naming_the_fix(
    tmp_path: Path, tiny_onnx: Path
) -> None:
    # Discord closes an IDENTIFY whose shard would hold too many guilds with 4011.
    async with FakeDiscord(heartbeat_interval=0.5, max_guilds_per_session=0) as server:
        rc, out = await exit_of(server, write_config(tmp_path, server, tiny_onnx))
    assert rc == 1, out
    assert "Traceback" not in out, out
    (line,) = [line for line in out.splitlines() if "4011" in line]
    assert line.startswith("error: ") and "--shard-count" in line, line


async def test_a_shard_running_elsewhere_is_one_json_line_naming_the_fix(
    tmp_path: Path, tiny_onnx: Path
) -> None:
    # Another session already holds shard 0 of 1: Discord closes the bot's IDENTIFY with 4010.
    async with (
        FakeDiscord(heartbeat_interval=0.5) as server,
        aiohttp.ClientSession() as http,
        http.ws_connect(server.gateway_url) as elsewhere,
    ):
        await elsewhere.receive(timeout=5)  # HELLO
        await elsewhere.send_json(
            {"op": 2, "d": {"token": server.token, "intents": 513, "shard": [0, 1]}}
        )
        await server.wait_until(lambda: server.gateway.connected(), timeout=5, what="shard 0")
        rc, out = await exit_of(
            server, write_config(tmp_path, server, tiny_onnx), "--log-format", "json"
        )
    assert rc == 1, out
    entries = [json.loads(line) for line in out.splitlines() if line.strip()]  # all JSON
    (fatal,) = [e for e in entries if "4010" in e["message"]]
    assert fatal["level"] == "CRITICAL" and "--shard-ids" in fatal["message"], fatal
    assert not any("exception" in e for e in entries), entries


def test_log_options_are_taken_after_every_command() -> None:
    for argv in (["run"], ["chat"], ["serve"], ["store", "copy", "--from", "a", "--to", "b"]):
        args = parse_args([*argv, "--log-level", "DEBUG", "--log-format", "json"])
        assert (args.log_level, args.log_format) == ("DEBUG", "json"), argv
        args = parse_args(["--log-level", "ERROR", *argv])  # before the command: kept
        assert (args.log_level, args.log_format) == ("ERROR", None), argv


async def test_store_copy_writes_json_log_lines_when_asked(tmp_path: Path) -> None:
    source, target = (f"sqlite:///{tmp_path / name}" for name in ("a.sqlite3", "b.sqlite3"))
    await (await open_store(source, SettingsRegistry())).close()  # an empty store to copy
    argv = ["store", "copy", "--from", source, "--to", target, "--log-level", "INFO"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *argv, "--log-format", "json",
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err
    assert out.decode().startswith(f"Copied {source} to {target}:\n  settings: 0 (0 written")
    entries = [json.loads(line) for line in err.decode().splitlines()]  # every line JSON
    assert any("opened" in e["message"] for e in entries), entries
