"""`python -m bot serve`'s checks before it starts Ray. (The session's server in conftest.py is a
real `python -m bot serve`, stopped by SIGTERM, which must end it with status 0.)"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import load_config
from bot.serving.cli import (
    ServeError,
    check_resources,
    deployments,
    is_loopback,
    local_resources,
    read_api_key,
)


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


def serve_refusal(config: Path, *args: str) -> str:
    """Run a real `python -m bot serve` that must refuse before starting Ray: its stderr, one
    line. (The timeout bounds a hang; no check here is about speed.)"""
    done = subprocess.run(
        [sys.executable, "-m", "bot", "serve", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr and "ray" not in done.stdout.lower(), done.stderr
    return done.stderr


@pytest.fixture
def serve_config(tmp_path: Path, tiny_onnx: Path) -> Path:
    path = tmp_path / "serve.toml"
    path.write_text(f'[models.tiny]\npath = "{tiny_onnx}"\n')
    return path


def test_a_port_in_use_is_refused_before_ray_starts(serve_config: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = serve_refusal(serve_config, "--port", str(port))
    assert err.startswith(f"error: Port {port} on 127.0.0.1 (--port) is already in use"), err


def test_a_missing_model_file_is_refused_before_ray_starts(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text(f'[models.gone]\npath = "{tmp_path / "gone.onnx"}"\n')
    err = serve_refusal(config)
    assert err.startswith("error: The model file of 'gone'"), err


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (("--port", "70000"), "error: --port must be between 1 and 65535"),
        (("--gpus-per-replica", "-1"), "error: --gpus-per-replica cannot be negative"),
        (("--address", "127.0.0.1:1"), "error: No Ray cluster answers at 127.0.0.1:1"),
        (("--address", "nocolon"), "error: --address must be HOST:PORT"),
        (("--metrics-port", "8123", "--port", "8123"), "error: --metrics-port must be between"),
        (("--metrics-port", "9100", "--address", "auto"), "error: --metrics-port is for a local"),
    ],
)
def test_bad_options_are_one_sentence_before_ray_starts(
    serve_config: Path, args: tuple[str, ...], sentence: str
) -> None:
    assert serve_refusal(serve_config, *args).startswith(sentence)


def test_a_local_instance_without_the_gpus_or_cpus_asked_is_refused_before_ray_starts(
    serve_config: Path,
) -> None:
    """This machine's Ray has no GPU (the tests run without one) and fewer than 1,000 CPUs."""
    if local_resources().get("GPU", 0):
        pytest.skip("this machine has a GPU")
    err = serve_refusal(serve_config, "--gpus-per-replica", "1")
    assert err.startswith("error: 1 replica(s) need 1 GPU(s) in all; Ray has 0"), err
    err = serve_refusal(serve_config, "--replicas", "1000")
    assert err.startswith("error: 1000 replica(s) need 1000 CPU(s) in all; Ray has"), err


def test_resources_asked_are_checked_against_what_the_cluster_has() -> None:
    have = {"CPU": 4.0, "GPU": 1.0}
    check_resources(replicas=2, cpus_per_replica=2, gpus_per_replica=0.5, available=have)
    with pytest.raises(ServeError, match=r"3 replica\(s\) need 6 CPU\(s\) in all; Ray has 4"):
        check_resources(replicas=3, cpus_per_replica=2, gpus_per_replica=0.0, available=have)
    with pytest.raises(ServeError, match=r"need 2 GPU\(s\) in all; Ray has 1"):
        check_resources(replicas=2, cpus_per_replica=1, gpus_per_replica=1.0, available=have)


def test_the_servers_metrics_port_is_not_the_bots() -> None:
    """One config for a bot and a server on one machine: `serve --metrics-port` is Ray's
    endpoint, and leaves the bot's `metrics.port` alone (off by default, both)."""
    from bot.cli import overrides_from, parse_args
    from bot.serving.cli import DEFAULT_METRICS_PORT

    args = parse_args(["serve", "--metrics-port", "9100"])
    assert args.ray_metrics_port == 9100 and overrides_from(args)["metrics.port"] is None
    assert parse_args(["serve"]).ray_metrics_port == DEFAULT_METRICS_PORT == 0
    assert overrides_from(parse_args(["run", "--metrics-port", "9108"]))["metrics.port"] == 9108
