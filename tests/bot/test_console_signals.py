"""Ctrl-C at the console's prompt, in a real process whose stdin stays open."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("stdin", ["pipe", "terminal"])
def test_ctrl_c_at_the_prompt_exits_at_once_with_130(
    stdin: str, tmp_path: Path, tiny_onnx: Path
) -> None:
    config = tmp_path / "charbot.toml"
    config.write_text(f'[models.tiny]\npath = "{tiny_onnx}"\n')
    env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
    env["CHARBOT_DATA_DIR"] = str(tmp_path)
    if stdin == "pipe":
        reader, writer = os.pipe()  # held open: the chat never sees the end of its input
    else:
        writer, reader = pty.openpty()  # a terminal: the chat shows a prompt and waits
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(config), "chat"],
        stdin=reader,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env=env,
    )
    os.close(reader)
    try:
        os.write(writer, b"/temperature show\n")
        assert proc.stdout is not None
        # Its answer means the chat is up and back at the prompt, waiting for the next line.
        while "temperature" not in proc.stdout.readline().decode():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGINT)
        status = proc.wait(timeout=20)
    finally:
        proc.kill()
        os.close(writer)
    assert status == 130
    assert proc.stderr is not None and b"Traceback" not in proc.stderr.read()
