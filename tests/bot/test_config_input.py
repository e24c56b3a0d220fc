"""Config input as operators get it wrong: encodings, misspelled variables, options' places."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from bot.config import ConfigError, load_config


@pytest.mark.parametrize("encoding", ["utf-16", "latin-1"])
def test_a_config_file_that_is_not_utf8_is_one_sentence(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "charbot.toml"
    path.write_text('[models]\ndefault = "shakespeare"  # Ångström\n', encoding=encoding)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {}, {})
    assert str(caught.value) == (
        f"The config file {path} is not UTF-8 text (TOML files are UTF-8); "
        "save it as UTF-8 and try again."
    )


def test_a_misspelled_section_in_the_environment_is_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, {"CHARBOT_GENERATON_TEMPERATURE": "0.5"}, {})
    assert str(caught.value) == (
        "Environment variable CHARBOT_GENERATON_TEMPERATURE: unknown key generaton "
        "(did you mean 'generation'?)."
    )
    # Variables that are not config keys stay allowed.
    config = load_config(None, {"CHARBOT_DATA_DIR": "/tmp", "CHARBOT_TEST_ANYTHING": "1"}, {})
    assert config.store.path == "/tmp/charbot.sqlite3"


def test_options_work_after_the_command_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    path = tmp_path / "bad.toml"
    path.write_text("[engine]\nwokers = 2\n")
    assert main(["chat", "--config", str(path), "--log-level", "ERROR"]) == 1
    assert "bad.toml: unknown key engine.wokers" in capsys.readouterr().err
    assert main(["--model", "x", "chat", "--config", str(path)]) == 1  # both sides at once
    assert "bad.toml" in capsys.readouterr().err


def test_an_empty_store_path_in_a_file_says_it_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "charbot.toml"
    path.write_text('[store]\npath = ""\n')
    with pytest.raises(ConfigError, match=r"charbot\.toml: the settings store's path is empty\."):
        load_config(path, {}, {})
