"""`python -m bot history` and `python -m bot privacy` as the command line parses and refuses
them; the exports themselves are in test_export.py and tests/bot/e2e/test_consent.py."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import DEFAULT_PLUGINS
from bot.plugins.consent import state
from bot.settings import SettingsRegistry
from bot.stores import open_store


def config_file(tmp_path: Path, *, plugins: tuple[str, ...] | None = None) -> Path:
    path = tmp_path / "charbot.toml"
    text = f'[store]\nurl = "sqlite:///{tmp_path / "store.sqlite3"}"\n'
    if plugins is not None:
        text += "[plugins]\nenabled = [" + ", ".join(f'"{p}"' for p in plugins) + "]\n"
    path.write_text(text)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`main(argv)` in this process; the logging it sets up (quiet discord.py, a root handler)
    is put back after, for the tests that come next."""
    root, library = logging.getLogger(), logging.getLogger("discord")
    saved = (root.level, list(root.handlers), library.level)
    capsys.readouterr()
    try:
        status = main(list(argv))
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        library.setLevel(saved[2])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_privacy_list_prints_the_opted_out_ids_one_a_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file(tmp_path)

    async def opt_out() -> None:
        store = await open_store(f"sqlite:///{tmp_path / 'store.sqlite3'}", SettingsRegistry())
        try:
            for user in (30, 10, 20):
                await state.opt_out(store, user)
            await state.opt_in(store, 20)
        finally:
            await store.close()

    asyncio.run(opt_out())
    assert run(capsys, "privacy", "list", "--config", str(config)) == (0, "10\n30\n", "")


def test_without_the_consent_plugin_there_is_no_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "a-token")
    without = tuple(p for p in DEFAULT_PLUGINS if p != "bot.plugins.consent")
    config = config_file(tmp_path, plugins=without)
    argv = ("history", "export", "--guild", "1", "--out", str(tmp_path / "out"))
    status, out, err = run(capsys, *argv, "--config", str(config))
    assert status == 1 and out == ""
    assert err == (
        "error: `python -m bot history` comes with the plugin bot.plugins.consent, which this "
        "config's plugins.enabled leaves out; add it back to use it.\n"
    )
    assert not (tmp_path / "out").exists()


def test_the_export_needs_the_bots_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    config = config_file(tmp_path)
    argv = ("history", "export", "--guild", "1", "--out", str(tmp_path / "out"))
    status, _, err = run(capsys, *argv, "--config", str(config))
    assert status == 1
    assert err.startswith("error: ") and "DISCORD_TOKEN is not set" in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("history", "export", "--out", "x"), "the following arguments are required: --guild"),
        (("history", "import", "--guild", "1", "--out", "x"), "invalid choice: 'import'"),
        (("history", "export", "--guild", "g", "--out", "x"), "invalid int value: 'g'"),
        (("privacy", "show"), "invalid choice: 'show'"),
    ],
)
def test_bad_arguments_are_argparse_sentences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], expected: str
) -> None:
    status, _, err = run(capsys, *argv, "--config", str(config_file(tmp_path)))
    assert status == 2 and expected in err and "Traceback" not in err
