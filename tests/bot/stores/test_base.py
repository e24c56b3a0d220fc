"""The seam itself: abstract hooks, the driver table, and reading store URLs."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bot.settings import SettingsRegistry
from bot.stores import (
    DRIVERS,
    MemoryStore,
    SqliteStore,
    Store,
    StoreUrlError,
    open_store,
    resolve_url,
)
from bot.stores.urls import mask_url
from tests.bot.stores.conftest import STORE_URLS

SECRET = "pw-never-shown-7f3a"


@pytest.mark.parametrize("hook", sorted(Store.__abstractmethods__))
def test_a_driver_missing_a_hook_cannot_be_made(hook: str) -> None:
    """Every hook is abstract: a driver that misses one fails when constructed, not when a
    user's command first reaches the missing method."""
    methods = {name: getattr(MemoryStore, name) for name in Store.__abstractmethods__}
    complete = type("Complete", (Store,), methods)
    complete(SettingsRegistry())  # all the hooks: fine
    del methods[hook]
    incomplete = type("Incomplete", (Store,), methods)
    with pytest.raises(TypeError, match=rf"abstract method.*\b{hook}\b"):
        incomplete(SettingsRegistry())


def test_the_seam_has_the_hooks_the_docs_name() -> None:
    assert {"ping", "close", "_read", "_swap_state", "_swap_record", "_dump", "_load"} <= set(
        Store.__abstractmethods__
    )


def test_every_driver_runs_the_conformance_suite(tmp_path: Path) -> None:
    """A driver added to DRIVERS without its line in the suite's table fails here."""

    class Request:  # what the table's postgres line asks for, without a server
        def getfixturevalue(self, name: str) -> str:
            return "postgresql://postgres@127.0.0.1/db"

    tested = {
        DRIVERS[urlsplit(driver.url(Request(), tmp_path)).scheme]  # type: ignore[arg-type]
        for driver in STORE_URLS.values()
    }
    assert tested == set(DRIVERS.values())


# -- store URLs ------------------------------------------------------------------------------------


def test_relative_sqlite_paths_live_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    env = {"CHARBOT_DATA_DIR": str(data)}
    found = resolve_url("sqlite:///charbot.sqlite3", env)
    assert found.path == data / "charbot.sqlite3"
    assert found.url == f"sqlite:///{data / 'charbot.sqlite3'}" and found.scheme == "sqlite"
    assert resolve_url(found.url, {}) == found  # an absolute URL stays as it is
    assert resolve_url("sqlite:///s.db", {}).path == tmp_path / "s.db"  # no data dir: here
    relative = resolve_url("sqlite:///s.db", {"CHARBOT_DATA_DIR": "rel"})
    assert relative.path == tmp_path / "rel" / "s.db"
    assert resolve_url("sqlite:////abs/s.db", env).path == Path("/abs/s.db")
    assert resolve_url("sqlite:///~/s.db", env).path == Path.home() / "s.db"
    monkeypatch.setenv("CHARBOT_DATA_DIR", str(data))
    assert resolve_url("sqlite:///charbot.sqlite3").path == data / "charbot.sqlite3"


def test_other_drivers_urls_pass_as_they_are() -> None:
    pg = f"postgresql://bot:{SECRET}@db:5432/charbot"
    assert (resolve_url(pg).url, resolve_url(pg).path) == (pg, None)
    several = "postgres://bot@h1:5432,h2:5433,[::1]:5434,[::1]/charbot"  # libpq's host lists
    assert resolve_url(several).scheme == "postgres"
    assert resolve_url("memory://").scheme == "memory"


@pytest.mark.parametrize(
    "url, sentence",
    [
        (f"postgresql://u:{SECRET}@127.0.0.1:99999/db", "has port 99999, which is not a TCP port"),
        (f"postgresql://u:{SECRET}@h1:5432,h2:0/db", "has port 0, which is not a TCP port"),
        (f"postgresql://u:{SECRET}@h:abc/db", "has port abc, which is not a TCP port"),
        (f"u:{SECRET}@h/db", "is not a URL such as sqlite:///charbot.sqlite3"),
        (SECRET, "is not a URL such as"),
        ("", "is not a URL such as"),
        (f"postgresql://u:{SECRET}@[::1/db", "cannot be parsed as a URL"),
        ("sqlite://charbot.sqlite3", "names no file: a SQLite URL is sqlite:/// and then"),
        ("sqlite:///", "names no file"),
    ],
)
def test_a_bad_url_is_one_sentence_without_the_password(url: str, sentence: str) -> None:
    with pytest.raises(StoreUrlError) as info:
        resolve_url(url, name="The store to copy from")
    message = str(info.value)
    assert message.startswith("The store to copy from ") and sentence in message
    assert message.endswith(".") and "\n" not in message and SECRET not in message


def test_mask_url_hides_passwords_wherever_they_are() -> None:
    assert mask_url(f"postgresql://bot:{SECRET}@db:5432/x") == "postgresql://bot:***@db:5432/x"
    assert mask_url(f"postgresql://bot@db/x?password={SECRET}&sslmode=require") == (
        "postgresql://bot@db/x?password=***&sslmode=require"
    )
    assert mask_url(f"postgresql://bot:{SECRET}@db:99999/x") == "postgresql://bot:***@db:99999/x"
    assert SECRET not in mask_url(f"postgresql://bot:{SECRET}@[::1/x")
    assert mask_url("sqlite:////var/lib/charbot.sqlite3") == "sqlite:////var/lib/charbot.sqlite3"


@pytest.mark.parametrize(
    "url, driver", [("memory://", MemoryStore), ("sqlite:///s.sqlite3", SqliteStore)]
)
async def test_open_store_picks_the_driver_by_scheme(
    url: str, driver: type[Store], tmp_path: Path
) -> None:
    store = await open_store(url, SettingsRegistry(), {"CHARBOT_DATA_DIR": str(tmp_path)})
    try:
        assert type(store) is driver
    finally:
        await store.close()
    with pytest.raises(StoreUrlError) as info:
        await open_store(f"mysql://u:{SECRET}@db/charbot", SettingsRegistry(), name="--to")
    assert str(info.value) == (
        "--to has scheme 'mysql', which no driver handles (known: memory, postgres, postgresql, "
        "sqlite)."
    )
