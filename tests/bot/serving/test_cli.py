"""`python -m bot serve`'s checks before it starts Ray. (The session's server in conftest.py is a
real `python -m bot serve`, stopped by SIGTERM, which must end it with status 0.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import load_config
from bot.serving.cli import ServeError, deployments, is_loopback, read_api_key


def test_a_config_without_onnx_models_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "remote-only.toml"
    config.write_text('[models.far]\nbackend = "openai"\nurl = "http://127.0.0.1:1/v1"\n')
    assert main(["serve", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: The config names no ONNX model to serve"), err
    assert err.count("\n") == 1


def test_the_bot_runs_without_ray() -> None:
    """Only the model server needs the `serve` extra: the bot, its CLI and the openai backend
    import no Ray and no FastAPI."""
    code = (
        "import sys, bot.cli, bot.runtime, bot.api, bot.serving.openai_backend; "
        "print(sorted({'ray', 'fastapi'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_api_key_comes_from_its_file_or_the_environment(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("sk-from-file\n")
    env = {"CHARBOT_SERVE_API_KEY": "sk-from-env"}
    from_file = read_api_key(key_file, env)
    assert from_file is not None and from_file.value == "sk-from-file"
    from_env = read_api_key(None, env)
    assert from_env is not None and from_env.value == "sk-from-env"
    assert read_api_key(None, {}) is None
    assert "sk-from" not in repr(from_file) + repr(from_env)  # Ray may print what holds it
    with pytest.raises(ServeError, match="cannot be read"):
        read_api_key(tmp_path / "missing", env)
    key_file.write_text("two\nlines\n")
    with pytest.raises(ServeError, match="the key alone, on one line"):
        read_api_key(key_file, env)


def test_every_command_runs_with_the_servers_key_set(tmp_path: Path) -> None:
    """CHARBOT_SERVE_API_KEY is not a config key, but the config loader, which refuses unknown
    CHARBOT_* names, accepts it."""
    from bot.config import load_config

    load_config(None, {"CHARBOT_SERVE_API_KEY": "sk-anything"})


def test_loopback_addresses() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.0.0.2", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.4", "example.org"]))


def test_a_replica_of_auto_workers_runs_on_the_cpu_ray_reserves_for_it(
    tmp_path: Path, tiny_onnx: Path
) -> None:
    """`auto` in a replica means what Ray gives it, not the node's cores: one reserved CPU, one
    worker; a number of workers reserves that many CPUs, each worker on one."""
    for workers, expected in (('"auto"', (1, 1)), ("3", (3, 1))):
        path = tmp_path / "serve.toml"
        path.write_text(f'[engine]\nworkers = {workers}\n[models.tiny]\npath = "{tiny_onnx}"\n')
        (model,) = deployments(load_config(path, {}, {}))
        threads = model.engine.threads
        assert (threads.workers, threads.intra_op_threads) == expected, workers
