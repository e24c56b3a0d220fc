"""`python -m bot serve`: serves the config's models until SIGTERM, then shuts Serve down."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from bot.cli import main
from tests.serving.conftest import free_port


def test_a_config_without_onnx_models_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "remote-only.toml"
    config.write_text('[models.far]\nbackend = "remote"\nurl = "http://127.0.0.1:1/v1/models/x"\n')
    assert main(["serve", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: The config names no ONNX model to serve"), err
    assert err.count("\n") == 1


async def test_serve_runs_until_sigterm(tmp_path: Path, tiny_onnx: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text(f'[engine]\nworkers = 1\n\n[models.tiny]\npath = "{tiny_onnx}"\n')
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "bot", "serve", "--config", str(config), "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        async with aiohttp.ClientSession() as http:
            async with asyncio.timeout(120):
                while True:
                    assert process.poll() is None, "the server exited early"
                    try:
                        async with http.get(base + "/healthz") as response:
                            if response.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.5)
            body = {"prompt": "To be", "max_length": 20}
            async with http.post(base + "/v1/models/tiny/complete", json=body) as response:
                assert response.status == 200
                assert (await response.json())["completion"]["tokens"] == 20
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 60) == 0
        assert process.stdout is not None
        assert f"serving tiny at {base}/v1/models/tiny" in process.stdout.read().decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_bot_runs_without_ray() -> None:
    """Only the model server needs the `serve` extra: the bot, its CLI and the remote backend
    import no Ray and no FastAPI."""
    code = (
        "import sys, bot.cli, bot.runtime, bot.api, bot.serving.remote; "
        "print(sorted({'ray', 'fastapi'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
