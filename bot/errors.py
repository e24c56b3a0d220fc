"""The bot's errors: one hierarchy for the whole `bot` package (httpx `_exceptions.py` style).

Every message is a sentence a user or an operator can read as it is. Errors from onnxruntime, the
stores' drivers and discord.py are converted where they enter, with `raise ... from exc`.

CharbotError
 ├── ModelLoadError            a model file that is missing, unreadable or breaks the contract
 ├── ProviderError             an execution provider that was asked for but is not available
 ├── UnknownModelError         a model name the config does not define, or that failed to load
 ├── PluginError               a plugin not allowed, not found, or failing to load or unload
 ├── CommandError              a command used wrongly: an option missing, mistyped or out of bounds
 ├── MetricsServerError        the metrics and health endpoint cannot listen where configured
 ├── GenerationError           a request that could not be served
 │    ├── InvalidParamsError   bad generation parameters or prompt (the message says which)
 │    ├── EngineBusyError      the queue is full: busy, try again
 │    ├── EngineClosedError    the engine is shut down (or shutting down)
 │    ├── RequestTimeoutError  the request ran past its time limit
 │    ├── WorkerError          a worker failed while running the request
 │    └── ModelUnavailableError  a model (served elsewhere) that cannot be reached for now
 ├── ConfigError               (bot.config) a config file, variable or flag that is wrong
 ├── StoreUrlError             (bot.stores.urls) a store URL that names no store
 └── SettingsError             (bot.settings) per-channel settings
      ├── UnknownSettingError       a key no loaded plugin registered
      ├── InvalidSettingError       a value its validator refused
      ├── SettingRegistrationError  two plugins claiming one key
      └── SettingsStoreError        the store cannot be opened, read or written
           └── SettingsUnavailableError  the store's server is unreachable for now

ConfigError, StoreUrlError and the settings errors live beside the code that raises them.
"""

from __future__ import annotations


class CharbotError(Exception):
    """Base of every error the bot reports to a user or an operator."""


class ModelLoadError(CharbotError):
    """A model file that cannot be served: missing, not ONNX, or breaking the contract."""


class ProviderError(CharbotError):
    """An execution provider (e.g. CUDA) that was asked for but that ONNX Runtime cannot give."""


class GenerationError(CharbotError):
    """A generation request that could not be served."""


class InvalidParamsError(GenerationError):
    """Generation parameters or a prompt outside what is allowed."""


class EngineBusyError(GenerationError):
    """Every batch slot and queue place is taken; the request was refused at once."""


class EngineClosedError(GenerationError):
    """The engine is closed or closing and takes no new work."""


class RequestTimeoutError(GenerationError):
    """A request that ran past its time limit; it was removed from its batch."""


class WorkerError(GenerationError):
    """A worker failed while running a request; the pool lives on."""


class ModelUnavailableError(GenerationError):
    """A model served elsewhere (a remote model server) that cannot be reached right now."""


class UnknownModelError(CharbotError):
    """A model name that the config does not define, or that failed to load."""


class PluginError(CharbotError):
    """A plugin that is not allowed, not found, or that failed to load or unload."""


class MetricsServerError(CharbotError):
    """The metrics and health endpoint cannot listen on the configured host and port."""


class CommandError(CharbotError):
    """A command used wrongly: an option missing, of the wrong type or out of its bounds."""
