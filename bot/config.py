"""The bot's configuration: typed, frozen dataclasses, one per concern.

Layers, each overriding the one before: the defaults written here, then a TOML file, then the
environment, then command-line overrides (a mapping the CLI passes in). Unknown sections or keys
and wrong types are errors (`ConfigError`, one sentence naming the file or variable, the key and
the fault), never silently ignored. Nothing here is global, and nothing is `exec`'d.

    [engine]
    workers = 2

    [models]
    default = "lyrics"
    [models.lyrics]
    path = "models/lyrics.onnx"   # relative to this file's directory
    backend = "onnx"
    [models.big]                  # a model on any OpenAI-compatible server (`python -m bot
    backend = "openai"            # serve`, vLLM, llama.cpp's server, Ollama...)
    url = "http://gpu-host:8000/v1"
    model = "big"                 # the server's model id (default: the table's name)
    api_key_env = "BIG_KEY"       # the variable holding the server's key, if it needs one

Environment: `CHARBOT_<SECTION>_<KEY>` for any key (`CHARBOT_ENGINE_WORKERS=2`; lists are
comma-separated, booleans 1/0/true/false/yes/no/on/off, an empty value unsets an optional key),
`CHARBOT_MODELS_DEFAULT` for the default model, and `DISCORD_TOKEN`, the only place the token may
come from: it never sits in a file, an argv or a repr. Relative store paths live in
`CHARBOT_DATA_DIR` (or the current directory). Any other `CHARBOT_*` variable is an error, as a
misspelled section would otherwise be ignored (`NON_CONFIG_ENV` and `CHARBOT_TEST_*` aside;
`CHARBOT_SERVE_API_KEY` is the model server's key, read by `python -m bot serve` alone).

Errors:

    CharbotError     (bot.errors)
     └── ConfigError  a file, variable or override that cannot be used as it is
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import logging
import math
import os
import re
import tomllib
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from bot.errors import CharbotError
from bot.generation.params import (
    AUTO,
    MAX_TEMPERATURE,
    MAX_WORKERS,
    REQUEST_TIMEOUT,
    Auto,
    EngineConfig,
    GenerationLimits,
    GenerationParams,
    IoBinding,
    Provider,
)
from bot.ops.logs import LogFormat
from bot.stores.urls import DATA_DIR_ENV, StoreUrlError, mask_url, resolve_url, sqlite_url
from models import BUNDLED_MODEL

log = logging.getLogger(__name__)

#: The plugins a config loads unless its `plugins.enabled` says otherwise: the built-in ones.
DEFAULT_PLUGINS = (
    "bot.plugins.completion",
    "bot.plugins.continuation",
    "bot.plugins.temperature",
    "bot.plugins.channel_settings",
    "bot.plugins.model",
    "bot.plugins.admin",
    "bot.plugins.consent",
)
#: Built-in plugin modules that moved: a config still naming the old one is told the new name.
RENAMED_PLUGINS = {"bot.plugins.models": "bot.plugins.model"}
TOKEN_ENV = "DISCORD_TOKEN"
#: Discord's rule: at most one IDENTIFY per rate-limit bucket in this many seconds.
IDENTIFY_SPACING_SECONDS = 5.0
#: The most shards a bot may have: a session holds at most 2,500 guilds, so this many hold 250
#: million, more guilds than Discord has; a typo beyond it would start shards for hours.
MAX_SHARD_COUNT = 100_000
ENV_PREFIX = "CHARBOT_"
#: CHARBOT_* variables that are not config keys; any other names a section, and a section that
#: does not exist is an error (a misspelling must not be ignored). CHARBOT_TEST_* belong to the
#: test suite, as does CHARBOT_REQUIRE_POSTGRES (CI's switch for the PostgreSQL tests).
#: The model server's API key (`bot.serving.cli`): a secret, so never a config key.
SERVE_API_KEY_ENV = "CHARBOT_SERVE_API_KEY"
NON_CONFIG_ENV = frozenset({DATA_DIR_ENV, "CHARBOT_REQUIRE_POSTGRES", SERVE_API_KEY_ENV})
TEST_ENV_PREFIX = "CHARBOT_TEST_"

#: The defaults the config's engine and generation sections take: written once, in params.
ENGINE_DEFAULTS = EngineConfig()
PARAM_DEFAULTS = GenerationParams()


class ConfigError(CharbotError):
    """A config value that cannot be used; the message names where it came from and why."""


# -- checks on single values (each returns what is wrong, or None) -------------------------------

Check = Callable[[Any], str | None]


def _at_least(minimum: float) -> dict[str, Check]:
    def check(v: Any) -> str | None:
        if v is None or v == AUTO or v >= minimum:
            return None
        return f"must be at least {minimum}, not {v}"

    return {"check": check}


def _between(low: float, high: float) -> dict[str, Check]:
    def check(v: Any) -> str | None:
        if v == AUTO or low <= v <= high:
            return None
        return f"must be from {low:g} to {high:g}, not {v}"

    return {"check": check}


def _positive(v: Any) -> str | None:
    return None if v > 0 else f"must be more than 0, not {v}"


def _probability(v: Any) -> str | None:
    return None if 0 < v <= 1 else f"must be above 0 and at most 1 (1 is off), not {v}"


def _url(*schemes: str) -> dict[str, Check]:
    pattern = re.compile(rf"^({'|'.join(schemes)})://[^/\s]+")

    def check(v: Any) -> str | None:
        if v is None or pattern.match(v):
            return None
        return f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}, not {v!r}"

    return {"check": check}


_MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def _modules(v: tuple[str, ...]) -> str | None:
    if renamed := [m for m in v if m in RENAMED_PLUGINS]:
        return f"names {renamed[0]}, renamed to {RENAMED_PLUGINS[renamed[0]]}: use the new name"
    bad = [m for m in v if not _MODULE.match(m)]
    return (
        f"must hold Python module names (like bot.plugins.admin), not {bad[0]!r}" if bad else None
    )


# -- the sections --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiscordSection:
    # repr=False: the token must never reach a log line, a traceback or an error message.
    token: str | None = field(default=None, repr=False)
    api_base: str | None = field(default=None, metadata=_url("http", "https"))
    gateway_url: str | None = field(default=None, metadata=_url("ws", "wss", "http", "https"))
    test_guild_id: int | None = field(default=None, metadata=_at_least(1))
    sync_global: bool = False
    owner_ids: tuple[int, ...] = ()
    manage_channels_required: bool = True
    cooldown_seconds: float = field(default=3.0, metadata=_at_least(0.0))
    # 0: ask Discord for its recommended count and run every shard in this process.
    shard_count: int = field(default=0, metadata=_between(0, MAX_SHARD_COUNT))
    shard_ids: tuple[int, ...] = ()  # this process's shards; empty: all of them
    # Discord allows one IDENTIFY per bucket every 5 s; lower it only against a test server.
    identify_spacing_seconds: float = field(
        default=IDENTIFY_SPACING_SECONDS, metadata={"check": _positive}
    )
    # How long a completion's Continue and Regenerate buttons keep working.
    buttons_expire_days: float = field(default=7.0, metadata={"check": _positive})


@dataclass(frozen=True)
class EngineSection:
    """The generation engine; every default comes from `bot.generation.params`."""

    provider: Provider = ENGINE_DEFAULTS.provider
    io_binding: IoBinding = ENGINE_DEFAULTS.io_binding
    # "auto": sized to this process's cores (bot.generation.params.engine_threads).
    workers: int | Auto = field(default=ENGINE_DEFAULTS.workers, metadata=_between(1, MAX_WORKERS))
    intra_op_threads: int | Auto = field(
        default=ENGINE_DEFAULTS.intra_op_threads, metadata=_at_least(1)
    )
    max_batch: int = field(default=ENGINE_DEFAULTS.max_batch, metadata=_at_least(1))
    max_queue: int = field(default=ENGINE_DEFAULTS.max_queue, metadata=_at_least(1))
    max_prompt_chars: int = field(default=ENGINE_DEFAULTS.limits.max_prompt, metadata=_at_least(1))
    max_length: int = field(default=ENGINE_DEFAULTS.limits.max_length, metadata=_at_least(1))
    timeout_seconds: float = field(default=REQUEST_TIMEOUT, metadata={"check": _positive})

    @property
    def limits(self) -> GenerationLimits:
        """The bounds the engine enforces on every request, as this section sets them."""
        return GenerationLimits(max_length=self.max_length, max_prompt=self.max_prompt_chars)


@dataclass(frozen=True)
class GenerationSection:
    """Defaults for requests that give no value and whose channel set none."""

    temperature: float = field(  # 0 is greedy
        default=PARAM_DEFAULTS.temperature, metadata=_between(0.0, MAX_TEMPERATURE)
    )
    top_k: int = field(default=PARAM_DEFAULTS.top_k, metadata=_at_least(0))  # 0 is off
    top_p: float = field(  # 1.0 is off
        default=PARAM_DEFAULTS.top_p, metadata={"check": _probability}
    )
    length: int = field(default=PARAM_DEFAULTS.max_length, metadata=_at_least(1))


@dataclass(frozen=True)
class ModelSpec:
    """One `[models.NAME]` table: a model file (`path`), or a model served elsewhere (`url`)."""

    name: str
    path: str | None  # absolute
    backend: str = "onnx"
    url: str | None = None  # backend = "openai": the server's /v1 base URL
    model: str | None = None  # backend = "openai": the server's model id (default: name)
    api_key_env: str | None = None  # backend = "openai": the variable that holds the key
    chat_name: str | None = None  # who answers when the model server renders a chat

    @property
    def served_id(self) -> str:
        """The id a server knows the model by."""
        return self.model or self.name


#: The bundled model's speaker in a chat: it was trained on a play (Romeo and Juliet among it).
BUNDLED_CHAT_NAME = "JULIET"


#: The model a config that names none serves: the one that ships with the project.
BUNDLED_SPEC = ModelSpec(BUNDLED_MODEL.stem, str(BUNDLED_MODEL), chat_name=BUNDLED_CHAT_NAME)


def _bundled_models() -> Mapping[str, ModelSpec]:
    return types.MappingProxyType({BUNDLED_SPEC.name: BUNDLED_SPEC})


@dataclass(frozen=True)
class ModelsSection:
    models: Mapping[str, ModelSpec] = field(default_factory=_bundled_models)
    default: str = BUNDLED_SPEC.name


@dataclass(frozen=True)
class PluginsSection:
    enabled: tuple[str, ...] = field(default=DEFAULT_PLUGINS, metadata={"check": _modules})
    entry_points: bool = True


@dataclass(frozen=True)
class StoreSection:
    """Where the store lives (docs/stores.md). `url` picks the driver by its scheme (`bot.stores`);
    `path` is the shorthand for a SQLite file. Once loaded, `url` is always set, and `path` is the
    SQLite file's absolute path (relative ones go in the data dir), or None for another driver."""

    url: str | None = None  # read (or refused, in one sentence) by `bot.stores.urls.resolve_url`
    path: str | None = "charbot.sqlite3"


@dataclass(frozen=True)
class LoggingSection:
    level: Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"] = "INFO"
    format: LogFormat = "text"  # "json": one JSON object per line (bot.ops.logs)


def _port(v: Any) -> str | None:
    return None if 0 <= v <= 65535 else f"must be a TCP port from 1 to 65535, or 0 (off), not {v}"


@dataclass(frozen=True)
class MetricsSection:
    """The Prometheus metrics and health endpoint (`bot.ops.server`); port 0 is off."""

    host: str = "127.0.0.1"
    port: int = field(default=0, metadata={"check": _port})


@dataclass(frozen=True)
class Config:
    discord: DiscordSection = field(default_factory=DiscordSection)
    engine: EngineSection = field(default_factory=EngineSection)
    generation: GenerationSection = field(default_factory=GenerationSection)
    models: ModelsSection = field(default_factory=ModelsSection)
    plugins: PluginsSection = field(default_factory=PluginsSection)
    store: StoreSection = field(default_factory=StoreSection)
    logging: LoggingSection = field(default_factory=LoggingSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    source: Path | None = None  # the TOML file it was loaded from, if any


#: The sections read field by field; `models` has a shape of its own (a table of tables).
_SECTIONS: dict[str, type[Any]] = {
    "discord": DiscordSection,
    "engine": EngineSection,
    "generation": GenerationSection,
    "plugins": PluginsSection,
    "store": StoreSection,
    "logging": LoggingSection,
    "metrics": MetricsSection,
}
_ALL_SECTIONS = sorted([*_SECTIONS, "models"])
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MODEL_KEYS = ("path", "backend", "url", "model", "api_key_env", "chat_name")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: What a config naming the old `remote` backend should write instead.
_REMOTE_MOVED = (
    "{where}: models.{name}.backend 'remote' is now 'openai': write backend = \"openai\", "
    'url = "http://HOST:PORT/v1" (the server\'s /v1 base) and model = "ID" (its model id).'
)
_MODEL_URL = _url("http", "https")["check"]
_NEEDS_PATH = (
    "models.{name} needs a path to its model file (or a url, for a model served elsewhere)."
)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


# -- parsing one value ---------------------------------------------------------------------------


class _Problem(Exception):
    """What is wrong with a value; the caller adds where it came from and the key."""

    def __init__(self, text: str, index: int | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.index = index


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string"}
    names |= {list: "an array", dict: "a table"}
    return names.get(type(value), f"a {type(value).__name__}")


def _shown(value: Any, text: bool) -> str:
    return repr(value) if text else f"{value!r} ({_kind(value)})"


def _coerce(raw: Any, tp: Any, text: bool) -> Any:
    """`raw` as type `tp`; `text` means raw is an environment string to parse, not a TOML value."""
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType) and type(None) in args:  # `X | None`
        (inner,) = (a for a in args if a is not type(None))
        if text and not raw.strip():
            return None
        return _coerce(raw, inner, text)
    if origin in (Union, types.UnionType):  # `int | Auto`: the word, else the number
        (word,) = (get_args(a)[0] for a in args if get_origin(a) is Literal)
        if isinstance(raw, str) and raw.strip().lower() == word:
            return word
        try:
            return _coerce(raw, int, text)
        except _Problem:
            raise _Problem(f"must be a whole number or {word!r}, not {_shown(raw, text)}") from None
    if origin is Literal:
        if isinstance(raw, str):
            for choice in args:
                if raw.strip().lower() == choice.lower():
                    return choice
        choices = ", ".join(repr(a) for a in args)
        raise _Problem(f"must be one of {choices}, not {_shown(raw, text)}")
    if origin is tuple:
        if text:
            items = [part.strip() for part in raw.split(",") if part.strip()]
        elif isinstance(raw, list):
            items = raw
        else:
            raise _Problem(f"must be an array, not {_shown(raw, text)}")
        out = []
        for i, item in enumerate(items):
            try:
                out.append(_coerce(item, args[0], text))
            except _Problem as p:
                raise _Problem(p.text, index=i) from None
        return tuple(out)
    if tp is bool:
        if text and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        if not text and isinstance(raw, bool):
            return raw
        raise _Problem(f"must be true or false, not {_shown(raw, text)}")
    if tp is int:
        if text:
            try:
                return int(raw.strip())
            except ValueError:
                pass
        elif isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        raise _Problem(f"must be a whole number, not {_shown(raw, text)}")
    if tp is float:
        number: float | None = None
        if text:
            with contextlib.suppress(ValueError):
                number = float(raw.strip())
        elif isinstance(raw, int | float) and not isinstance(raw, bool):
            number = float(raw)
        if number is None or not math.isfinite(number):
            raise _Problem(f"must be a finite number, not {_shown(raw, text)}")
        return number
    if tp is str:
        if isinstance(raw, str):
            return raw
        raise _Problem(f"must be a string, not {_shown(raw, text)}")
    raise TypeError(f"no parser for config type {tp!r}")  # a field type this module forgot


# -- the layers ----------------------------------------------------------------------------------


@dataclass
class _Set:
    value: Any
    where: str  # "default", a file, "environment variable X" or "command-line override"


class _Builder:
    """Collects the layers' values, parsed and checked as they arrive, then builds the Config."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, _Set]] = {name: {} for name in _SECTIONS}
        self.file: Path | None = None
        # Model name -> its keys; the bundled model stands until a file names models.
        self.models: dict[str, dict[str, _Set]] = {
            BUNDLED_SPEC.name: {
                "path": _Set(BUNDLED_SPEC.path, "default"),
                "chat_name": _Set(BUNDLED_SPEC.chat_name, "default"),
            }
        }
        self.default_model: _Set | None = None

    # A key of a field-by-field section.
    def put(self, where: str, section: str, key: str, raw: Any, text: bool) -> None:
        cls = _SECTIONS[section]
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if key not in fields:
            raise _unknown(where, f"{section}.{key}", key, list(fields))
        if section == "discord" and key == "token":
            raise ConfigError(
                f"{where}: discord.token cannot be set here; "
                f"put the bot token in the {TOKEN_ENV} environment variable."
            )
        tp = get_type_hints(cls)[key]
        try:
            value = _coerce(raw, tp, text)
            check: Check | None = fields[key].metadata.get("check")
            problem = check(value) if check is not None else None
            if problem is not None:
                raise _Problem(problem)
        except _Problem as p:
            name = f"{section}.{key}" + ("" if p.index is None else f"[{p.index}]")
            raise ConfigError(f"{where}: {name} {p.text}.") from None
        self.values[section][key] = _Set(value, where)

    def put_token(self, token: str) -> None:
        # Pasted tokens often carry a newline; an empty variable means "no token".
        self.values["discord"]["token"] = _Set(token.strip() or None, TOKEN_ENV)

    def put_default_model(self, where: str, raw: Any, text: bool) -> None:
        if not isinstance(raw, str) or not raw.strip():
            raise ConfigError(
                f"{where}: models.default must be a model name, not {_shown(raw, text)}."
            )
        self.default_model = _Set(raw.strip(), where)

    def put_model(self, where: str, name: str, key: str, raw: Any, base: Path) -> None:
        if not _MODEL_NAME.match(name):
            raise ConfigError(
                f"{where}: models.{name} is not a usable model name "
                "(letters, digits, '.', '_' and '-', at most 64)."
            )
        if key in ("api_key", "key"):
            raise ConfigError(
                f"{where}: models.{name}.{key} cannot be written in a config file; put the key "
                f'in an environment variable and name it: api_key_env = "VARIABLE".'
            )
        if key not in _MODEL_KEYS:
            raise _unknown(where, f"models.{name}.{key}", key, list(_MODEL_KEYS))
        if not isinstance(raw, str) or not raw.strip():
            raise ConfigError(
                f"{where}: models.{name}.{key} must be a non-empty string, "
                f"not {_shown(raw, False)}."
            )
        value = raw.strip()
        if key == "path":
            value = str(base / Path(value).expanduser())  # an absolute path replaces base
        if key == "url" and _MODEL_URL(value) is not None:
            # Shown masked: a URL may carry a password (basic auth in front of a server).
            raise ConfigError(f"{where}: models.{name}.url {_MODEL_URL(mask_url(value))}.")
        if key == "backend" and value == "remote":
            raise ConfigError(_REMOTE_MOVED.format(where=where, name=name))
        if key == "api_key_env" and not _ENV_NAME.match(value):
            raise ConfigError(
                f"{where}: models.{name}.api_key_env must name an environment variable "
                f"(letters, digits and '_'), not {value!r}."
            )
        self.models.setdefault(name, {})[key] = _Set(value, where)

    def build(self, env: Mapping[str, str]) -> Config:
        sections: dict[str, Any] = {
            name: cls(**{k: s.value for k, s in self.values[name].items()})
            for name, cls in _SECTIONS.items()
        }
        sections["store"] = self._store(env)
        sections["models"] = self._models()
        config = Config(**sections, source=self.file)
        self._cross_check(config)
        return config

    def _models(self) -> ModelsSection:
        specs: dict[str, ModelSpec] = {}
        for name, keys in self.models.items():
            if "path" not in keys and "url" not in keys:
                where = next(iter(keys.values())).where
                raise ConfigError(f"{where}: {_NEEDS_PATH.format(name=name)}")
            values = {key: s.value for key, s in keys.items()}
            specs[name] = ModelSpec(name, **{"path": None, **values})
        if self.default_model is not None:
            default = self.default_model
        elif len(specs) == 1:
            default = _Set(next(iter(specs)), "default")
        else:
            raise ConfigError(
                f"{self.file}: models.default must name the model to use, "
                f"one of {', '.join(sorted(specs))}."
            )
        if default.value not in specs:
            raise ConfigError(
                f"{default.where}: models.default is {default.value!r}, which is not a configured "
                f"model (configured: {', '.join(sorted(specs))})."
            )
        return ModelsSection(types.MappingProxyType(specs), default.value)

    def _store(self, env: Mapping[str, str]) -> StoreSection:
        url, path = self.values["store"].get("url"), self.values["store"].get("path")
        if url is not None and url.value is not None:
            if path is not None:
                raise ConfigError(
                    f"{path.where}: store.path and store.url ({url.where}) both name the store; "
                    "set one of them."
                )
            text, name, where = url.value, "store.url", url.where
        else:
            file = StoreSection.path if path is None else path.value
            if not file:
                where = next((s.where for s in (url, path) if s is not None), "config")
                raise ConfigError(f"{where}: the settings store's path is empty.")
            text, name = sqlite_url(file), "store.path"
            where = "default" if path is None else path.where
        try:
            resolved = resolve_url(text, env, name=name)
        except StoreUrlError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        sqlite_file = None if resolved.path is None else str(resolved.path)
        return StoreSection(url=resolved.url, path=sqlite_file)

    def _cross_check(self, config: Config) -> None:
        self._check_shards(config.discord)
        if config.generation.length > config.engine.max_length:
            length = self.values["generation"].get("length")
            limit = self.values["engine"].get("max_length")
            where = next((s.where for s in (length, limit) if s is not None), "config")
            raise ConfigError(
                f"{where}: generation.length ({config.generation.length}) is more than "
                f"engine.max_length ({config.engine.max_length})."
            )

    def _check_shards(self, discord: DiscordSection) -> None:
        ids, count = discord.shard_ids, discord.shard_count
        if not ids:
            return
        where = self.values["discord"]["shard_ids"].where
        if count == 0:
            raise ConfigError(
                f"{where}: discord.shard_ids needs discord.shard_count (the total number of "
                "shards across every process)."
            )
        outside = [i for i in ids if not 0 <= i < count]
        if outside:
            raise ConfigError(
                f"{where}: discord.shard_ids holds {outside[0]}, outside 0 to {count - 1} "
                f"(discord.shard_count is {count})."
            )
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ConfigError(f"{where}: discord.shard_ids lists shard {repeated[0]} twice.")


def _unknown(where: str, name: str, key: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
    return ConfigError(f"{where}: unknown key {name} ({hint}).")


def _read_file(builder: _Builder, path: Path) -> None:
    where = str(path)
    try:
        with path.open("rb") as f:
            document = tomllib.load(f)
    except FileNotFoundError as exc:
        raise ConfigError(f"The config file {path} does not exist.") from exc
    except OSError as exc:
        raise ConfigError(f"The config file {path} cannot be read: {exc.strerror or exc}.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"The config file {path} is not valid TOML: {exc}.") from exc
    except UnicodeDecodeError as exc:  # tomllib decodes the bytes as UTF-8 first
        raise ConfigError(
            f"The config file {path} is not UTF-8 text (TOML files are UTF-8); "
            "save it as UTF-8 and try again."
        ) from exc
    builder.file = path
    base = path.parent.absolute()
    for section, table in document.items():
        if section not in _ALL_SECTIONS:
            raise _unknown(where, section, section, _ALL_SECTIONS)
        if not isinstance(table, dict):
            raise ConfigError(
                f"{where}: {section} must be a table ([{section}]), not {_kind(table)}."
            )
        if section == "models":
            _read_models(builder, where, table, base)
            continue
        for key, raw in table.items():
            builder.put(where, section, key, raw, text=False)


def _read_models(builder: _Builder, where: str, table: dict[str, Any], base: Path) -> None:
    named = {k: v for k, v in table.items() if k != "default"}
    if named:
        builder.models = {}  # the file's models replace the bundled one
    if "default" in table:
        builder.put_default_model(where, table["default"], text=False)
    for name, spec in named.items():
        if not isinstance(spec, dict):
            raise ConfigError(
                f"{where}: models.{name} must be a table ([models.{name}] with a path), "
                f"not {_kind(spec)}; only models.default is a plain value."
            )
        if "path" not in spec and "url" not in spec:
            raise ConfigError(f"{where}: {_NEEDS_PATH.format(name=name)}")
        for key, raw in spec.items():
            builder.put_model(where, name, key, raw, base)


def _read_env(builder: _Builder, env: Mapping[str, str]) -> None:
    for var in sorted(env):
        raw = env[var]
        if var == TOKEN_ENV:
            builder.put_token(raw)
            continue
        if not var.startswith(ENV_PREFIX) or var in NON_CONFIG_ENV:
            continue
        if var.startswith(TEST_ENV_PREFIX):
            continue
        section, _, key = var[len(ENV_PREFIX) :].partition("_")
        section, key = section.lower(), key.lower()
        where = f"Environment variable {var}"
        if section not in _ALL_SECTIONS:
            raise _unknown(where, section, section, _ALL_SECTIONS)
        if section == "models":
            if key != "default":
                raise ConfigError(
                    f"{where}: only the default model can be chosen from the environment "
                    "(CHARBOT_MODELS_DEFAULT); models are named in the config file."
                )
            builder.put_default_model(where, raw, text=True)
        else:
            builder.put(where, section, key, raw, text=True)


def _flatten(overrides: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= _flatten(value, name + ".")
        else:
            flat[name] = value
    return flat


def _read_overrides(builder: _Builder, overrides: Mapping[str, Any]) -> None:
    where = "Command-line override"
    base = Path.cwd()
    for name, raw in _flatten(overrides).items():
        if raw is None:  # an option the user did not give
            continue
        parts = name.split(".")
        section = parts[0]
        if section not in _ALL_SECTIONS:
            raise _unknown(where, section, section, _ALL_SECTIONS)
        if section == "models" and parts[1:] == ["default"]:
            builder.put_default_model(where, raw, text=False)
        elif section == "models" and len(parts) == 3:
            builder.put_model(where, parts[1], parts[2], raw, base)
        elif len(parts) == 2 and section != "models":
            cls = _SECTIONS[section]
            tp = get_type_hints(cls).get(parts[1])
            # A flag typed as text (`--set engine.workers=2`) is parsed like the environment.
            text = isinstance(raw, str) and tp is not None and tp is not str
            builder.put(where, section, parts[1], raw, text=text)
        else:
            raise ConfigError(f"{where}: {name} is not a config key (expected section.key).")


def load_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Defaults, then the TOML file at `path`, then `env` (default: os.environ), then `overrides`.

    `overrides` maps dotted keys (`"engine.workers"`, `"models.default"`, `"models.NAME.path"`)
    or nested mappings to values; None values are skipped. Raises ConfigError.
    """
    env = os.environ if env is None else env
    builder = _Builder()
    if path is not None:
        _read_file(builder, Path(path))
    _read_env(builder, env)
    _read_overrides(builder, overrides or {})
    config = builder.build(env)
    log.debug("config loaded from %s", config.source or "defaults and environment")
    return config
