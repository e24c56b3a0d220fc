"""`python -m bot store copy`: every kind a store keeps, both ways, idempotently; relative SQLite
URLs in CHARBOT_DATA_DIR (real processes); bad URLs as one sentence, no password shown."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.settings import SettingsRegistry
from bot.stores import Scope, StoreContents, open_store
from bot.stores.urls import sqlite_url
from tests.postgres import SECRET, with_password

REPO = Path(__file__).resolve().parents[3]
NOW = 2_000_000_000.0  # records that expire in 2033


async def seed(url: str) -> StoreContents:
    """Some of everything: settings of 6 channels, state of two scopes, records, meta."""
    store = await open_store(url, SettingsRegistry())
    try:
        await store.load(
            StoreContents(
                settings=(
                    *((c, "temperature", f"0.{c}") for c in range(1, 7)),
                    (3, "model", '"tiny"'),
                ),
                meta=(("commands.sha256.global", "abc"),),
            )
        )
        await store.set_state(Scope.USER, 11, "consent.opted_out", True)
        await store.set_state(Scope.USER, 12, "consent.opted_out", True)
        await store.set_state(Scope.GUILD, 21, "consent.channels", [1, 2])
        await store.put_record("completion", "aa", '{"n": 1}', expires_at=NOW)
        await store.put_record("completion", "bb", '{"n": 2}', expires_at=NOW)
        await store.swap_record("completion", "bb", '{"n": 3}', version=0, expires_at=NOW)
        return await store.dump()
    finally:
        await store.close()


async def dump(url: str) -> StoreContents:
    store = await open_store(url, SettingsRegistry())
    try:
        return await store.dump()
    finally:
        await store.close()


def report(source: str, target: str, written: bool) -> str:
    def line(kind: str, rows: int) -> str:
        done = (rows, 0) if written else (0, rows)
        return f"  {kind}: {rows} ({done[0]} written, {done[1]} already there)"

    return "\n".join(
        [
            f"Copied {source} to {target}:",
            line("settings", 7),
            line("scoped state", 3),
            line("records", 2),
            line("meta", 1),
        ]
    )


def test_store_copy_moves_every_kind_both_ways_twice(
    postgres_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    source = sqlite_url(tmp_path / "a.sqlite3")
    back = sqlite_url(tmp_path / "b.sqlite3")
    pg = with_password(postgres_url)
    seeded = asyncio.run(seed(source))
    outputs = []
    for src, dst in [(source, pg), (source, pg), (pg, back), (pg, back)]:
        assert main(["store", "copy", "--from", src, "--to", dst]) == 0
        outputs.append(capsys.readouterr())
    shown_pg = pg.replace(SECRET, "***")
    assert outputs[0].out.strip() == report(source, shown_pg, written=True)
    assert outputs[1].out.strip() == report(source, shown_pg, written=False)
    assert outputs[2].out.strip() == report(shown_pg, back, written=True)
    assert outputs[3].out.strip() == report(shown_pg, back, written=False)
    assert asyncio.run(dump(pg)) == asyncio.run(dump(back)) == seeded  # versions included

    # A changed value is copied again; what only the target holds stays.
    async def change() -> None:
        store = await open_store(source, SettingsRegistry())
        await store.set_state(Scope.GUILD, 21, "consent.channels", [1, 2, 3])
        await store.close()
        target = await open_store(pg, SettingsRegistry())
        await target.set_state(Scope.USER, 13, "consent.opted_out", True)
        await target.close()

    asyncio.run(change())
    assert main(["store", "copy", "--from", source, "--to", pg]) == 0
    assert "  scoped state: 3 (1 written, 2 already there)" in capsys.readouterr().out
    assert set(asyncio.run(dump(pg)).state) - set(seeded.state) == {
        ("guild", 21, "consent.channels", "[1,2,3]"),
        ("user", 13, "consent.opted_out", "true"),
    }

    assert main(["store", "copy", "--from", pg, "--to", pg]) == 1
    unreachable = f"postgresql://u:{SECRET}@127.0.0.1:1/x"
    assert main(["store", "copy", "--from", source, "--to", unreachable]) == 1
    typo = sqlite_url(tmp_path / "typo.sqlite3")
    assert main(["store", "copy", "--from", typo, "--to", pg]) == 1
    errors = capsys.readouterr().err
    assert "name the same store" in errors and "Cannot reach the settings store" in errors
    assert "typo.sqlite3, does not exist" in errors and not (tmp_path / "typo.sqlite3").exists()
    everything = "".join(o.out + o.err for o in outputs) + errors + caplog.text
    assert SECRET not in everything


@pytest.mark.parametrize(
    "url, sentence",
    [
        (f"postgresql://charbot:{SECRET}@127.0.0.1:99999/charbot", "has port 99999"),
        (f"mysql://charbot:{SECRET}@db/charbot", "has scheme 'mysql', which no driver handles"),
        (f"charbot:{SECRET}@db/charbot", "is not a URL such as sqlite:///charbot.sqlite3"),
        ("sqlite://charbot.sqlite3", "names no file"),
    ],
)
def test_a_bad_url_is_one_sentence(
    url: str, sentence: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["--from", url, "--to", "memory://"], ["--from", "memory://", "--to", url]):
        assert main(["store", "copy", *argv]) == 1
        captured = capsys.readouterr()
        (line,) = captured.err.splitlines()  # one line: no traceback
        assert line.startswith("error: The store to copy ") and sentence in line
        assert SECRET not in captured.out + captured.err


def copy_in(cwd: Path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """`python -m bot store copy ARGV` as its own process, run in `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", "bot", "store", "copy", *argv],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_relative_sqlite_urls_are_in_the_data_dir(postgres_url: str, tmp_path: Path) -> None:
    """README's command, from another directory: it reads the bot's file in CHARBOT_DATA_DIR."""
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    data.mkdir()
    elsewhere.mkdir()
    seeded = asyncio.run(seed(sqlite_url(data / "charbot.sqlite3")))
    env = {"CHARBOT_DATA_DIR": str(data)}

    done = copy_in(elsewhere, env, "--from", "sqlite:///charbot.sqlite3", "--to", postgres_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Copied sqlite:///{data / 'charbot.sqlite3'} to ")
    assert "  settings: 7 (7 written, 0 already there)" in done.stdout
    assert asyncio.run(dump(postgres_url)) == seeded

    back = copy_in(elsewhere, env, "--from", postgres_url, "--to", "sqlite:///back.sqlite3")
    assert back.returncode == 0, back.stderr
    assert asyncio.run(dump(sqlite_url(data / "back.sqlite3"))) == seeded
    assert list(elsewhere.iterdir()) == []  # nothing written where the command ran

    # Without the data dir, the same URL names a file in the current directory: none there.
    missing = copy_in(
        elsewhere,
        {"CHARBOT_DATA_DIR": ""},
        "--from",
        "sqlite:///charbot.sqlite3",
        "--to",
        "memory://",
    )
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        f"error: The store to copy from, sqlite:///{elsewhere / 'charbot.sqlite3'}, does not exist."
    )
    assert list(elsewhere.iterdir()) == []
