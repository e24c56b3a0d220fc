"""Config layers (defaults < TOML < environment < overrides), and the errors for bad input."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from bot.config import (
    DEFAULT_PLUGINS,
    Config,
    ConfigError,
    load_config,
)
from models import BUNDLED_MODEL

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.secret-token-value"


def write(tmp_path: Path, text: str, name: str = "charbot.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(path: Path | None = None, env: dict[str, str] | None = None, **overrides: Any) -> Config:
    return load_config(path, env or {}, overrides)


# -- defaults ------------------------------------------------------------------------------------


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load()
    assert config.discord.token is None
    assert config.discord.api_base is None
    assert config.discord.gateway_url is None
    assert config.discord.test_guild_id is None
    assert config.discord.sync_global is False
    assert config.discord.owner_ids == ()
    assert config.discord.manage_channels_required is True
    assert config.discord.cooldown_seconds == 3.0
    e = config.engine
    assert (e.provider, e.workers, e.intra_op_threads) == ("auto", "auto", "auto")
    assert (e.max_batch, e.max_queue) == (32, 256)
    assert (e.max_prompt_chars, e.max_length, e.timeout_seconds) == (2000, 1000, 60.0)
    g = config.generation
    assert (g.temperature, g.top_k, g.top_p, g.length) == (0.8, 0, 1.0, 300)
    assert config.models.default == "shakespeare"
    assert list(config.models.models) == ["shakespeare"]
    spec = config.models.models["shakespeare"]
    assert (spec.name, spec.path, spec.backend) == ("shakespeare", str(BUNDLED_MODEL), "onnx")
    assert Path(__file__).resolve().parents[2] / "models" / "shakespeare.onnx" == BUNDLED_MODEL
    assert config.plugins.enabled == DEFAULT_PLUGINS
    assert config.plugins.enabled[0] == "bot.plugins.completion"
    assert config.plugins.entry_points is True
    assert config.store.path == str(tmp_path / "charbot.sqlite3")
    assert config.logging.level == "INFO"
    assert config.source is None


def test_sections_are_frozen() -> None:
    config = load()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.engine.workers = 4  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.models.models["x"] = config.models.models["shakespeare"]  # type: ignore[index]


# -- layers --------------------------------------------------------------------------------------

FILE = """
[discord]
test_guild_id = 111
owner_ids = [1, 2]
sync_global = true
cooldown_seconds = 1   # an integer is a fine float

[engine]
provider = "cpu"
workers = 2
max_length = 500

[generation]
temperature = 0.5
top_p = 0.9

[plugins]
enabled = ["bot.plugins.completion", "my_plugin.cog"]
entry_points = false

[store]
path = "/var/lib/charbot/settings.sqlite3"

[logging]
level = "debug"
"""


def test_file(tmp_path: Path) -> None:
    path = write(tmp_path, FILE)
    config = load(path)
    assert config.source == path
    assert config.discord.test_guild_id == 111
    assert config.discord.owner_ids == (1, 2)
    assert config.discord.sync_global is True
    assert config.discord.cooldown_seconds == 1.0
    assert isinstance(config.discord.cooldown_seconds, float)
    assert config.engine.provider == "cpu"
    assert config.engine.workers == 2
    assert config.engine.max_length == 500
    assert config.engine.max_batch == 32  # untouched keys keep their defaults
    assert config.generation.temperature == 0.5
    assert config.generation.top_p == 0.9
    assert config.plugins.enabled == ("bot.plugins.completion", "my_plugin.cog")
    assert config.plugins.entry_points is False
    assert config.store.path == "/var/lib/charbot/settings.sqlite3"
    assert config.logging.level == "DEBUG"


def test_env_beats_file(tmp_path: Path) -> None:
    env = {
        "CHARBOT_ENGINE_WORKERS": "3",
        "CHARBOT_GENERATION_TEMPERATURE": "0",
        "CHARBOT_DISCORD_OWNER_IDS": "5, 6,7",
        "CHARBOT_DISCORD_SYNC_GLOBAL": "no",
        "CHARBOT_DISCORD_TEST_GUILD_ID": "",  # empty unsets an optional key
        "CHARBOT_DISCORD_API_BASE": "http://127.0.0.1:8080/api/v10",
        "CHARBOT_DISCORD_GATEWAY_URL": "ws://127.0.0.1:8081",
        "CHARBOT_PLUGINS_ENABLED": "bot.plugins.admin",
        "CHARBOT_ENGINE_PROVIDER": "CUDA",
        "CHARBOT_DATA_DIR": str(tmp_path / "data"),  # not a section: no error
        "HOME": "/root",  # not ours at all
    }
    config = load(write(tmp_path, FILE), env)
    assert config.engine.workers == 3
    assert config.engine.max_length == 500  # from the file
    assert config.generation.temperature == 0.0
    assert config.discord.owner_ids == (5, 6, 7)
    assert config.discord.sync_global is False
    assert config.discord.test_guild_id is None
    assert config.discord.api_base == "http://127.0.0.1:8080/api/v10"
    assert config.discord.gateway_url == "ws://127.0.0.1:8081"
    assert config.plugins.enabled == ("bot.plugins.admin",)
    assert config.engine.provider == "cuda"


def test_overrides_beat_env(tmp_path: Path) -> None:
    env = {"CHARBOT_ENGINE_WORKERS": "3", "CHARBOT_GENERATION_LENGTH": "100"}
    config = load_config(
        write(tmp_path, FILE),
        env,
        {
            "engine.workers": 4,
            "generation": {"length": "200"},  # nested; a string is parsed like the environment
            "discord.sync_global": None,  # an option not given
            "logging.level": "warning",
        },
    )
    assert config.engine.workers == 4
    assert config.generation.length == 200
    assert config.discord.sync_global is True  # from the file; the None override is skipped
    assert config.logging.level == "WARNING"


@pytest.mark.parametrize("value, expected", [("1", True), ("TRUE", True), ("off", False)])
def test_env_booleans(value: str, expected: bool) -> None:
    assert load(env={"CHARBOT_PLUGINS_ENTRY_POINTS": value}).plugins.entry_points is expected


def test_store_path_in_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    assert load(env={"CHARBOT_DATA_DIR": str(data)}).store.path == str(data / "charbot.sqlite3")
    config = load(env={"CHARBOT_DATA_DIR": "rel", "CHARBOT_STORE_PATH": "bot.db"})
    assert config.store.path == str(tmp_path / "rel" / "bot.db")
    assert config.store.url == f"sqlite:///{tmp_path / 'rel' / 'bot.db'}"


def test_store_url_selects_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # A relative SQLite URL lives in the data dir, like store.path; four slashes are absolute.
    config = load(env={"CHARBOT_DATA_DIR": "data", "CHARBOT_STORE_URL": "sqlite:///s.db"})
    assert (config.store.url, config.store.path) == (
        f"sqlite:///{tmp_path / 'data' / 's.db'}", str(tmp_path / "data" / "s.db"),
    )  # fmt: skip
    assert load(env={"CHARBOT_STORE_URL": "sqlite:////abs/s.db"}).store.path == "/abs/s.db"
    pg = load(env={"CHARBOT_STORE_URL": "postgresql://bot:secret@db:5432/charbot"})
    assert (pg.store.url, pg.store.path) == ("postgresql://bot:secret@db:5432/charbot", None)
    with pytest.raises(ConfigError, match=r"store\.path and store\.url .* set one of them"):
        load(env={"CHARBOT_STORE_URL": "sqlite:///a.db", "CHARBOT_STORE_PATH": "b.db"})
    with pytest.raises(ConfigError, match="the settings store's path is empty"):
        load(env={"CHARBOT_STORE_PATH": ""})
    with pytest.raises(ConfigError, match=r"CHARBOT_STORE_URL: store\.url is not a URL") as caught:
        load(env={"CHARBOT_STORE_URL": "bot:secret@db"})
    assert "secret" not in str(caught.value)  # a URL may hold a password: never echoed
    # The config reads the URL as the stores do (bot.stores.urls.resolve_url): one sentence.
    with pytest.raises(ConfigError, match=r"\(postgresql://bot:\*\*\*@db:99999/x\) has port 99999"):
        load(env={"CHARBOT_STORE_URL": "postgresql://bot:secret@db:99999/x"})


# -- models --------------------------------------------------------------------------------------


def test_models_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    path = write(
        conf_dir,
        """
        [models]
        default = "lyrics"
        [models.lyrics]
        path = "models/lyrics.onnx"
        [models.markov]
        path = "/srv/markov.json"
        backend = "markov"
        """,
    )
    config = load(path)
    assert config.models.default == "lyrics"
    assert sorted(config.models.models) == ["lyrics", "markov"]  # the bundled one is replaced
    lyrics = config.models.models["lyrics"]
    assert lyrics.path == str(conf_dir / "models" / "lyrics.onnx")
    assert lyrics.backend == "onnx"
    assert config.models.models["markov"].path == "/srv/markov.json"
    assert config.models.models["markov"].backend == "markov"


def test_one_model_is_its_own_default(tmp_path: Path) -> None:
    config = load(write(tmp_path, '[models.poems]\npath = "poems.onnx"\n'))
    assert config.models.default == "poems"
    assert config.models.models["poems"].path == str(tmp_path / "poems.onnx")


def test_default_model_from_env_and_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, '[models.a]\npath = "a.onnx"\n[models.b]\npath = "b.onnx"\n')
    with pytest.raises(
        ConfigError, match=r"models\.default must name the model to use, one of a, b"
    ):
        load(path)
    assert load(path, {"CHARBOT_MODELS_DEFAULT": "b"}).models.default == "b"
    config = load_config(
        path,
        {"CHARBOT_MODELS_DEFAULT": "b"},
        {"models.default": "cli", "models.cli.path": "x/cli.onnx"},
    )
    assert config.models.default == "cli"
    assert config.models.models["cli"].path == str(tmp_path / "x" / "cli.onnx")  # against cwd


def test_default_model_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(env={"CHARBOT_MODELS_DEFAULT": "nope"})
    assert str(info.value) == (
        "Environment variable CHARBOT_MODELS_DEFAULT: models.default is 'nope', "
        "which is not a configured model (configured: shakespeare)."
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ('[models]\nlyrics = "a.onnx"\n', r"models\.lyrics must be a table"),
        ("[models.lyrics]\nbackend = 'onnx'\n", r"models\.lyrics needs a path"),
        ("[models.lyrics]\npath = 'a.onnx'\nsize = 3\n", r"unknown key models\.lyrics\.size"),
        ("[models.lyrics]\npath = 3\n", r"models\.lyrics\.path must be a non-empty string"),
        ('[models."has space"]\npath = "a.onnx"\n', r"not a usable model name"),
        ("[models]\ndefault = 1\n", r"models\.default must be a model name, not 1 \(an integer\)"),
    ],
)
def test_bad_models(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, text))


# -- errors --------------------------------------------------------------------------------------


def test_unknown_section(tmp_path: Path) -> None:
    path = write(tmp_path, "[engnie]\nworkers = 2\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value) == f"{path}: unknown key engnie (did you mean 'engine'?)."


def test_unknown_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[engine]\nworkrs = 2\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value) == f"{path}: unknown key engine.workrs (did you mean 'workers'?)."


def test_unknown_key_in_env_and_overrides() -> None:
    with pytest.raises(ConfigError, match=r"^Environment variable CHARBOT_ENGINE_WORKRS: unknown"):
        load(env={"CHARBOT_ENGINE_WORKRS": "2"})
    with pytest.raises(ConfigError, match=r"^Command-line override: unknown key engine\.nope"):
        load_config(None, {}, {"engine.nope": 1})
    with pytest.raises(ConfigError, match=r"not a config key"):
        load_config(None, {}, {"engine": 3})


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"engine must be a table \(\[engine\]\), not an integer"):
        load(write(tmp_path, "engine = 3\n"))


@pytest.mark.parametrize(
    "text, message",
    [
        (
            '[engine]\nworkers = "two"\n',
            r"engine\.workers must be a whole number or 'auto', not 'two' \(a string\)",
        ),
        (
            "[engine]\nworkers = 2.5\n",
            r"engine\.workers must be a whole number or 'auto', not 2\.5 \(a float\)",
        ),
        (
            "[engine]\nworkers = true\n",
            r"engine\.workers must be a whole number or 'auto', not True",
        ),
        ("[engine]\nintra_op_threads = 0\n", r"engine\.intra_op_threads must be at least 1, not 0"),
        ("[engine]\nworkers = 0\n", r"engine\.workers must be from 1 to 64, not 0"),
        ("[engine]\nworkers = 100000\n", r"engine\.workers must be from 1 to 64, not 100000"),
        (
            '[discord]\nsync_global = "yes"\n',
            r"discord\.sync_global must be true or false, not 'yes'",
        ),
        ('[discord]\nowner_ids = [1, "2"]\n', r"discord\.owner_ids\[1\] must be a whole number"),
        (
            "[discord]\nowner_ids = 1\n",
            r"discord\.owner_ids must be an array, not 1 \(an integer\)",
        ),
        ('[plugins]\nenabled = ["a", 3]\n', r"plugins\.enabled\[1\] must be a string, not 3"),
        ('[plugins]\nenabled = ["bot/plugins/x.py"]\n', r"must hold Python module names"),
        (
            '[plugins]\nenabled = ["bot.plugins.models"]\n',
            r"plugins\.enabled names bot\.plugins\.models, renamed to bot\.plugins\.model",
        ),
        ('[engine]\nprovider = "tpu"\n', r"engine\.provider must be one of 'auto', 'cuda', 'cpu'"),
        ("[generation]\ntop_p = 0\n", r"generation\.top_p must be above 0 and at most 1"),
        ("[generation]\ntemperature = -0.5\n", r"generation\.temperature must be from 0 to 2"),
        (
            "[generation]\ntemperature = 50\n",
            r"generation\.temperature must be from 0 to 2, not 50",
        ),
        ("[generation]\ntemperature = nan\n", r"generation\.temperature must be a finite number"),
        ("[engine]\ntimeout_seconds = 0\n", r"engine\.timeout_seconds must be more than 0"),
        ('[discord]\napi_base = "discord.com/api"\n', r"discord\.api_base must be a URL starting"),
        ('[logging]\nlevel = "LOUD"\n', r"logging\.level must be one of"),
        ('[logging]\nformat = "xml"\n', r"logging\.format must be one of 'text', 'json'"),
        ("[metrics]\nport = 70000\n", r"metrics\.port must be a TCP port from 1 to 65535, or 0"),
        ("[metrics]\nport = -1\n", r"metrics\.port must be a TCP port"),
        (
            "[engine]\nmax_length = 100\n",
            r"generation\.length \(300\) is more than engine\.max_length",
        ),
    ],
)
def test_wrong_types_and_values_in_file(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load(path)
    assert str(info.value).startswith(f"{path}: ")
    assert str(info.value).endswith(".")


@pytest.mark.parametrize(
    "var, value, message",
    [
        (
            "CHARBOT_ENGINE_WORKERS",
            "two",
            r"engine\.workers must be a whole number or 'auto', not 'two'",
        ),
        ("CHARBOT_DISCORD_SYNC_GLOBAL", "maybe", r"must be true or false, not 'maybe'"),
        ("CHARBOT_DISCORD_OWNER_IDS", "1,x", r"discord\.owner_ids\[1\] must be a whole number"),
        ("CHARBOT_GENERATION_TOP_P", "inf", r"must be a finite number"),
        ("CHARBOT_ENGINE_WORKERS", "", r"must be a whole number or 'auto', not ''"),
    ],
)
def test_wrong_types_in_env(var: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load(env={var: value})
    assert str(info.value).startswith(f"Environment variable {var}: ")


def test_metrics_and_log_format_from_file_env_and_overrides(tmp_path: Path) -> None:
    assert load().metrics.port == 0  # off unless asked for
    assert load().metrics.host == "127.0.0.1"
    assert load().logging.format == "text"
    path = write(tmp_path, '[metrics]\nhost = "0.0.0.0"\nport = 9108\n[logging]\nformat = "json"\n')
    config = load(path, {"CHARBOT_METRICS_PORT": "9200"})
    assert (config.metrics.host, config.metrics.port, config.logging.format) == (
        "0.0.0.0",
        9200,
        "json",
    )
    assert load(path, {"CHARBOT_METRICS_PORT": "9200"}, **{"metrics.port": 0}).metrics.port == 0


def test_wrong_type_in_overrides() -> None:
    with pytest.raises(ConfigError, match=r"^Command-line override: engine\.workers must be"):
        load_config(None, {}, {"engine.workers": "many"})
    with pytest.raises(
        ConfigError, match=r"engine\.workers must be a whole number or 'auto', not 2\.0"
    ):
        load_config(None, {}, {"engine.workers": 2.0})


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file .*missing\.toml does not exist"):
        load(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=r"is not valid TOML"):
        load(write(tmp_path, "[engine\nworkers = 2\n"))
    with pytest.raises(ConfigError, match=r"cannot be read"):
        load(tmp_path)  # a directory


# -- the token -----------------------------------------------------------------------------------


def test_token_from_env_only_and_never_shown(tmp_path: Path) -> None:
    config = load(write(tmp_path, FILE), {"DISCORD_TOKEN": f"  {TOKEN}\n"})
    assert config.discord.token == TOKEN
    for text in (repr(config), str(config), repr(config.discord), str(config.discord)):
        assert TOKEN not in text
        assert "secret" not in text
    assert "token" not in repr(config.discord)
    assert load(env={"DISCORD_TOKEN": ""}).discord.token is None


def test_token_in_file_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, f'[discord]\ntoken = "{TOKEN}"\n')
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: discord.token cannot be set here")
    assert "DISCORD_TOKEN" in message
    assert TOKEN not in message


def test_token_elsewhere_is_rejected() -> None:
    with pytest.raises(ConfigError, match="DISCORD_TOKEN") as info:
        load(env={"CHARBOT_DISCORD_TOKEN": TOKEN})
    assert TOKEN not in str(info.value)
    with pytest.raises(ConfigError, match="DISCORD_TOKEN"):
        load_config(None, {}, {"discord.token": TOKEN})


def test_workers_and_intra_op_threads_take_auto_or_a_number(tmp_path: Path) -> None:
    config = load(write(tmp_path, '[engine]\nworkers = "auto"\nintra_op_threads = 2\n'))
    assert (config.engine.workers, config.engine.intra_op_threads) == ("auto", 2)
    env = {"CHARBOT_ENGINE_WORKERS": "Auto", "CHARBOT_ENGINE_INTRA_OP_THREADS": "3"}
    config = load_config(None, env, {})
    assert (config.engine.workers, config.engine.intra_op_threads) == ("auto", 3)
    config = load_config(None, env, {"engine.workers": "4"})  # a flag, as text
    assert config.engine.workers == 4
