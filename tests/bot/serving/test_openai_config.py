"""`[models.NAME] backend = "openai"` in the config: what it takes, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_config
from bot.errors import ModelLoadError
from bot.generation.registry import ModelRegistry
from bot.runtime import register_openai_kind


def config_file(tmp_path: Path, table: str) -> Path:
    path = tmp_path / "charbot.toml"
    path.write_text(f"[models.far]\n{table}\n")
    return path


def test_an_openai_model_names_its_server_id_and_key_variable(tmp_path: Path) -> None:
    table = 'backend = "openai"\nurl = "http://h:8000/v1"\nmodel = "llama3.2"\napi_key_env = "K"'
    spec = load_config(config_file(tmp_path, table), {}).models.models["far"]
    assert (spec.url, spec.served_id, spec.api_key_env) == ("http://h:8000/v1", "llama3.2", "K")
    plain = load_config(config_file(tmp_path, 'backend = "openai"\nurl = "http://h/v1"'), {})
    assert plain.models.models["far"].served_id == "far"  # the model id defaults to the name


@pytest.mark.parametrize(
    ("table", "says"),
    [
        (
            'backend = "remote"\nurl = "http://h:8000/v1/models/far"',
            "backend 'remote' is now 'openai': write backend = \"openai\"",
        ),
        (
            'backend = "openai"\nurl = "http://h/v1"\napi_key = "sk-secret"',
            "models.far.api_key cannot be written in a config file; put the key in an "
            'environment variable and name it: api_key_env = "VARIABLE".',
        ),
        ('backend = "openai"\nurl = "http://h/v1"\napi_key_env = "MY KEY"', "must name an"),
        ('backend = "openai"\nurl = "ftp://admin:hunter2@h/v1"', "ftp://admin:***@h/v1"),
    ],
)
def test_what_an_openai_table_refuses_is_one_sentence(
    tmp_path: Path, table: str, says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(config_file(tmp_path, table), {})
    message = str(caught.value)
    assert says in message and "\n" not in message
    assert "sk-secret" not in message and "hunter2" not in message


async def test_a_key_variable_that_is_not_set_is_one_sentence(tmp_path: Path) -> None:
    table = 'backend = "openai"\nurl = "http://127.0.0.1:1/v1"\napi_key_env = "CHARBOT_TEST_K"'
    config = load_config(config_file(tmp_path, table), {})
    models = ModelRegistry()
    register_openai_kind(models, config, env={})
    with pytest.raises(ModelLoadError, match="environment variable CHARBOT_TEST_K"):
        await models.start(config.models.models["far"])
