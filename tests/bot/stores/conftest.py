"""The store tests' drivers. A driver of `bot.stores.DRIVERS` gets its tests from one line in
`STORE_URLS`: how a test gets the URL of a fresh, empty store of that driver (and the test lane,
tests/lanes.py, of a driver that needs a server)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from bot.settings import InvalidSettingError, SettingsRegistry
from bot.stores import Store, open_store
from bot.stores.urls import sqlite_url


class Driver(NamedTuple):
    #: (the test's request, its tmp_path) -> the URL of a fresh, empty store.
    url: Callable[[pytest.FixtureRequest, Path], str]
    lane: str | None = None  # the marker of the server it needs, as tests/lanes.py names it


STORE_URLS: dict[str, Driver] = {
    "memory": Driver(lambda request, tmp: "memory://"),
    "sqlite": Driver(lambda request, tmp: sqlite_url(tmp / "store.sqlite3")),
    "postgresql": Driver(lambda request, tmp: request.getfixturevalue("postgres_url"), "postgres"),
}

#: Drivers whose every open of one URL reaches the same data (a second process would see it).
SHARED = {"sqlite", "postgresql"}


def validate_temperature(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 2:
        raise InvalidSettingError(f"The temperature must be from 0.0 to 2.0, not {value!r}.")
    return float(value)


def validate_model(value: Any) -> str:
    if value not in ("shakespeare", "lyrics"):
        raise InvalidSettingError(f"Model must be one of shakespeare, lyrics, not {value!r}.")
    return str(value)


def validate_counter(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10**12:
        raise InvalidSettingError(f"Counter must be a whole number, not {value!r}.")
    return value


def make_registry() -> SettingsRegistry:
    """Three channel keys, owned by three "plugins"."""
    registry = SettingsRegistry()
    registry.register_channel(
        "temperature", default=None, validate=validate_temperature, owner="temperature"
    )
    registry.register_channel(
        "model", default="shakespeare", validate=validate_model, owner="models"
    )
    registry.register_channel("counter", default=0, validate=validate_counter, owner="tests")
    return registry


@pytest.fixture(
    params=[
        pytest.param(name, marks=[getattr(pytest.mark, d.lane)] if d.lane else [])
        for name, d in sorted(STORE_URLS.items())
    ]
)
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(driver: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(STORE_URLS[driver].url(request, tmp_path))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """A fresh, empty store of each driver in turn."""
    opened = await open_store(store_url, make_registry())
    yield opened
    await opened.close()
