"""Per-channel settings: scopes, the registry and its validators (the stores that keep the values
are tested in tests/bot/stores)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bot.plugins.temperature import validate_temperature
from bot.settings import (
    InvalidSettingError,
    SettingRegistrationError,
    SettingsError,
    SettingsRegistry,
    UnknownSettingError,
    resolve,
)


def validate_model(value: Any) -> str:
    if value not in ("shakespeare", "lyrics"):
        raise InvalidSettingError(f"Model must be one of shakespeare, lyrics, not {value!r}.")
    return str(value)


def validate_counter(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10**12:
        raise InvalidSettingError(f"Counter must be a whole number, not {value!r}.")
    return value


def make_registry() -> SettingsRegistry:
    registry = SettingsRegistry()
    registry.register_channel(
        "temperature", default=None, validate=validate_temperature, owner="temperature"
    )
    registry.register_channel(
        "model", default="shakespeare", validate=validate_model, owner="models"
    )
    registry.register_channel("counter", default=0, validate=validate_counter, owner="tests")
    return registry


# -- scopes and validators -------------------------------------------------------------------------


def test_resolve_most_specific_non_none_wins() -> None:
    assert resolve(0.2, 1.5, 0.8) == 0.2
    assert resolve(None, 1.5, 0.8) == 1.5
    assert resolve(None, None, 0.8) == 0.8
    # 0.0 is a value (greedy), not "unset".
    assert resolve(0.0, 1.5, 0.8) == 0.0
    assert resolve(None, 0.0, 0.8) == 0.0


@pytest.mark.parametrize("value", [0.0, 2.0, 1, 0.7])
def test_temperature_validator_accepts(value: float) -> None:
    assert validate_temperature(value) == float(value)
    assert isinstance(validate_temperature(value), float)


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, -1, 2.0001, "hot", "0.5", None, True, [1.0]]
)
def test_temperature_validator_rejects(value: Any) -> None:
    with pytest.raises(InvalidSettingError, match=r"^The temperature must be from 0.0 to 2.0"):
        validate_temperature(value)


# -- the registry ----------------------------------------------------------------------------------


def test_registry_defaults_and_unknown_key() -> None:
    registry = make_registry()
    assert registry.keys() == ["counter", "model", "temperature"]
    assert list(registry) == registry.keys()
    assert registry.default("temperature") is None
    assert "model" in registry and "nope" not in registry
    with pytest.raises(UnknownSettingError, match="no setting named 'nope'") as info:
        registry.spec("nope")
    assert info.value.key == "nope"
    assert isinstance(info.value, SettingsError)


def test_registry_two_owners_one_key_is_an_error() -> None:
    registry = make_registry()
    with pytest.raises(SettingRegistrationError, match="already registered by 'temperature'"):
        registry.register_channel("temperature", default=1.0, owner="other-plugin")


def test_registry_same_owner_may_register_again_and_unregister() -> None:
    # An extension reload runs its setup again.
    registry = make_registry()
    registry.register_channel("temperature", default=0.5, owner="temperature")
    assert registry.default("temperature") == 0.5
    registry.unregister_owner("temperature")
    assert "temperature" not in registry
    registry.register_channel("temperature", default=None, owner="other-plugin")


def test_registry_validate_tags_the_key() -> None:
    with pytest.raises(InvalidSettingError) as info:
        make_registry().validate("temperature", -1)
    assert info.value.key == "temperature"


def test_registry_refuses_a_default_that_is_not_json() -> None:
    with pytest.raises(InvalidSettingError, match="cannot be stored"):
        SettingsRegistry().register_channel("x", default=object(), owner="t")
