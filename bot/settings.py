"""Per-channel settings: a registry of the keys plugins own, and the async stores that keep them.

Scopes, most specific wins: a per-call option, then the channel's setting, then the config's
default (`resolve`). Each plugin registers the keys it owns, with a default and a validator, as
Red-DiscordBot's `Config.register_channel` does; a key nobody registered is an error. A key
declares what it means to a completion (`fills`): the `GenerationParams` field it sets, or `MODEL`
(the model that writes); the completion service reads these declarations, never a key's name.

    registry = SettingsRegistry()
    registry.register_channel(
        "temperature", default=None, validate=validate_temperature, owner="temperature",
        fills="temperature",
    )
    store = await open_store("sqlite:///charbot.sqlite3", registry)   # bot.stores
    await store.set(channel_id, "temperature", 0.5)

Values are stored as JSON text (`encode_value`), so a value reads back the same from every store.
The stores themselves live in `bot.stores`, behind one interface.

Errors:

    CharbotError                 (bot.errors)
     └── SettingsError
          ├── UnknownSettingError      a key no loaded plugin registered
          ├── InvalidSettingError      a value its validator refused (the message is for users)
          ├── SettingRegistrationError two owners registering one key
          └── SettingsStoreError       the store cannot be opened, read or written
               └── SettingsUnavailableError  the store's server is unreachable for now
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from bot.errors import CharbotError
from bot.generation.params import GenerationParams

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Takes a raw value, returns the normalized one, or raises `InvalidSettingError`.
Validator = Callable[[Any], Any]

#: What a setting fills when it names the channel's model rather than a `GenerationParams` field.
MODEL: Final = "model"
#: Everything a setting may fill: the model, or one of the request's params.
FILLABLE: Final = frozenset({MODEL, *GenerationParams.__dataclass_fields__})


# -- errors ----------------------------------------------------------------------------------------


class SettingsError(CharbotError):
    """Base of every per-channel settings error."""


class UnknownSettingError(SettingsError):
    """A key that no loaded plugin registered."""

    def __init__(self, key: str, known: Sequence[str] = ()) -> None:
        hint = f"; known settings: {', '.join(sorted(known))}" if known else ""
        super().__init__(f"There is no setting named {key!r}{hint}.")
        self.key = key


class InvalidSettingError(SettingsError):
    """A value that the key's validator refused; the message is shown to the user as it is."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class SettingRegistrationError(SettingsError):
    """A key registered twice by different owners (two plugins claiming one setting)."""


class SettingsStoreError(SettingsError):
    """The store cannot be opened, read or written; the message names the file and the fault."""

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


class SettingsUnavailableError(SettingsStoreError):
    """The store's server cannot be reached right now (a shared database that is down or cut
    off); the process stays up and the next call tries again. The message is for users."""

    def __init__(self, message: str = "The settings are unavailable; try again shortly.") -> None:
        super().__init__(message)


# -- scopes ----------------------------------------------------------------------------------------


def resolve(per_call: T | None, channel_value: T | None, default: T) -> T:
    """The most specific value that is set: the call's option, the channel's, then the default."""
    if per_call is not None:
        return per_call
    if channel_value is not None:
        return channel_value
    return default


def _any_value(value: Any) -> Any:
    return value


# -- the registry ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingSpec:
    """One registered per-channel key."""

    key: str
    default: Any
    validate: Validator
    owner: str
    description: str = ""
    #: `MODEL`, or the `GenerationParams` field the key's value sets (None: neither).
    fills: str | None = None


class SettingsRegistry:
    """The keys plugins own; the stores validate every write through it."""

    def __init__(self) -> None:
        self._specs: dict[str, SettingSpec] = {}

    def register_channel(
        self,
        key: str,
        *,
        default: Any,
        validate: Validator | None = None,
        owner: str,
        description: str = "",
        fills: str | None = None,
    ) -> SettingSpec:
        """Register a per-channel key, and what it `fills` (`MODEL` or a `GenerationParams`
        field), if anything. The same owner may register again (an extension reload)."""
        if not key or not isinstance(key, str):
            raise SettingRegistrationError(
                f"A setting key must be a non-empty string, not {key!r}."
            )
        current = self._specs.get(key)
        if current is not None and current.owner != owner:
            raise SettingRegistrationError(
                f"Setting {key!r} is already registered by {current.owner!r}; "
                f"{owner!r} cannot register it too."
            )
        if fills is not None:
            self._check_fills(key, fills)
        # The default is stored nowhere, but it must survive the same JSON round trip as values.
        encode_value(key, default)
        spec = SettingSpec(key, default, validate or _any_value, owner, description, fills)
        self._specs[key] = spec
        return spec

    def _check_fills(self, key: str, fills: str) -> None:
        if fills not in FILLABLE:
            raise SettingRegistrationError(
                f"Setting {key!r} cannot fill {fills!r}; it may fill: "
                f"{', '.join(sorted(FILLABLE))}."
            )
        other = self.key_filling(fills)
        if other is not None and other != key:
            raise SettingRegistrationError(
                f"Setting {other!r} already fills {fills!r}; {key!r} cannot fill it too."
            )

    def unregister_owner(self, owner: str) -> None:
        """Forget the keys `owner` registered (its plugin unloaded); stored values are kept."""
        for key in [k for k, s in self._specs.items() if s.owner == owner]:
            del self._specs[key]

    def spec(self, key: str) -> SettingSpec:
        try:
            return self._specs[key]
        except KeyError:
            raise UnknownSettingError(key, list(self._specs)) from None

    def __contains__(self, key: object) -> bool:
        return key in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._specs))

    def keys(self) -> list[str]:
        return sorted(self._specs)

    def specs(self) -> list[SettingSpec]:
        """Every registered key, in the order the plugins registered them."""
        return list(self._specs.values())

    def key_filling(self, fills: str) -> str | None:
        """The key that fills `fills` (`MODEL` or a `GenerationParams` field), if one does."""
        return next((s.key for s in self._specs.values() if s.fills == fills), None)

    def param_keys(self) -> dict[str, str]:
        """`GenerationParams` field by key, for every key that fills one."""
        fields = {}
        for spec in self._specs.values():
            if spec.fills is not None and spec.fills != MODEL:
                fields[spec.key] = spec.fills
        return fields

    def default(self, key: str) -> Any:
        return self.spec(key).default

    def validate(self, key: str, value: Any) -> Any:
        """The normalized value, or `InvalidSettingError` (tagged with the key)."""
        spec = self.spec(key)
        try:
            return spec.validate(value)
        except InvalidSettingError as exc:
            exc.key = key
            raise


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def encode_value(key: str, value: Any) -> str:
    try:
        # NaN and inf are not JSON; a validator that lets them through has a bug.
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidSettingError(
            f"The value for {key!r} cannot be stored: {_shown(value)}.", key=key
        ) from exc
