"""Consent end to end, with the real bot against the test Discord server and the real command
line in its own processes: an admin allows channels, a member opts out, the operator exports the
allowed history (Message Content intent off, then on; a 429 on a page; an allowed and a
not-allowed channel; an incremental run) and trains a tiny model on it. The member who opted out
is in no byte of the export. On SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from bot.testing import (
    ChannelType,
    FakeDiscord,
    FakeUser,
    Intent,
    InvalidOption,
    discord_env,
    running_bot,
)
from tests.bot.e2e.reliability import REPO, bot_process
from tests.bot.plugins.consent.history import QUIET, QUIET_NICK, seed_guild

pytestmark = pytest.mark.asyncio


@pytest.fixture(params=[pytest.param("sqlite", marks=pytest.mark.torch), "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store under test. On SQLite the whole loop also trains a model (torch)."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'charbot.sqlite3'}"


def write_config(tmp_path: Path, server: FakeDiscord, store_url: str) -> Path:
    """The bundled model, the store under test, commands synced to the test guild."""
    path = tmp_path / "charbot.toml"
    path.write_text(
        f"[discord]\ntest_guild_id = {server.world.guild.id}\n"
        f"owner_ids = [{server.world.owner.id}]\ncooldown_seconds = 0.0\n"
        f'[store]\nurl = "{store_url}"\n'
    )
    return path


async def cli(server: FakeDiscord, config: Path, *argv: str) -> tuple[int, str, str]:
    """`python -m bot ARGV` as its own process, as the operator runs it."""
    env = {**os.environ, **discord_env(server), "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *argv, "--config", str(config),
        cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def one_sentence(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


async def command(server: FakeDiscord, name: str, user: FakeUser, **options: object) -> str:
    handle = await server.invoke_command(name, options, user=user)
    reply = await handle.wait_response()
    assert reply.ephemeral, f"/{name} answered in public"
    return reply.content or ""


async def test_the_whole_loop(fake_discord: FakeDiscord, tmp_path: Path, store_url: str) -> None:
    server = fake_discord
    seeded = seed_guild(server, count=320)
    w = server.world
    voice = w.guild.add_channel(1_000_000_000_000_000_406, "lounge", type_=ChannelType.VOICE)
    config = write_config(tmp_path, server, store_url)
    out = tmp_path / "export"

    async def export(*channels: int) -> tuple[int, str, str]:
        chosen = [arg for c in channels for arg in ("--channel", str(c))]
        guild = ("--guild", str(w.guild.id), "--out", str(out))
        return await cli(server, config, "history", "export", *guild, *chosen)

    async with running_bot(server, config):
        # A member without Manage Server cannot allow a channel; an admin can.
        refused = await command(server, "training allow", w.moderator, channel=seeded.allowed)
        assert "Manage Server" in refused and "nothing was changed" in refused
        assert "No channel" in await command(server, "training show", w.member)
        for channel in (seeded.allowed, seeded.forum):
            allowed = await command(server, "training allow", w.owner, channel=channel)
            assert "may now train" in allowed
        with pytest.raises(InvalidOption):  # Discord does not offer a voice channel
            await server.invoke_command("training allow", {"channel": voice}, user=w.owner)
        shown = await command(server, "training show", w.owner)
        assert f"<#{seeded.allowed.id}>" in shown and f"<#{seeded.forum.id}>" in shown
        assert f"python -m bot history export --guild {w.guild.id}" in shown
        assert "python -m bot" not in await command(server, "training show", w.member)
        # The quiet member opts out; the acknowledgement comes once it is stored.
        assert "You have opted out" in await command(server, "privacy optout", QUIET)
        assert "You have opted out" in await command(server, "privacy show", QUIET)

        # The export runs while the bot does. Without the Message Content intent: nothing.
        server.privileged_intents = Intent.GUILD_MEMBERS
        status, _, err = await export()
        assert status == 1 and "Message Content" in one_sentence(err)
        assert not out.exists()
        server.privileged_intents = Intent.PRIVILEGED
        # A channel nobody allowed: named, and nothing is exported.
        status, _, err = await export(seeded.allowed.id, seeded.secret.id)
        assert status == 1 and str(seeded.secret.id) in one_sentence(err)
        assert not out.exists()
        # Every allowed channel and its threads, with a 429 on the second page.
        fault = server.fail_next(
            "GET", f"/channels/{seeded.allowed.id}/messages", skip=1, retry_after=0.2
        )
        status, printed, err = await export()
        assert status == 0, err
        assert fault.hits == 1
        lines = printed.splitlines()
        assert lines[0].startswith("#general: ") and "4 page(s)" in lines[0]
        assert len(lines) == 6 and lines[-1].startswith("exported ")  # 5 channels and threads
        first = exported(out)
        assert sorted(first) == sorted(m.id for m in seeded.exportable)

        # New messages, then the same command: only they are fetched, and written once.
        new = [
            await server.send_message(seeded.allowed.id, w.member, f"fresh {n} ✨")
            for n in range(5)
        ]
        await server.send_message(seeded.allowed.id, QUIET, "me again")
        status, printed, _ = await export()
        assert status == 0 and printed.startswith("#general: 5 messages in 1 page(s)")
        assert sorted(exported(out)) == sorted([*first, *new])

        status, printed, _ = await cli(server, config, "privacy", "list")
        assert (status, printed) == (0, f"{QUIET.id}\n")
    assert_no_trace(out)

    if store_url.startswith("sqlite"):  # the torch lane: a tiny model learns the export
        train(tmp_path, out)


def train(tmp_path: Path, out: Path) -> None:
    from exporter.cli import main as exporter_main
    from tests.exporter.test_cli import TINY

    files = [str(p) for p in sorted(out.glob("*.json"))]
    run = tmp_path / "run"
    assert exporter_main(["train", *files, "--out", str(run), *TINY]) == 0
    assert (run / "best.pt").is_file()


def exported(out: Path) -> list[int]:
    ids = []
    for path in sorted(out.glob("*.json")):
        ids += [int(m["id"]) for m in json.loads(path.read_text(encoding="utf-8"))["messages"]]
    return ids


def assert_no_trace(out: Path) -> None:
    everything = b"".join(p.read_bytes() for p in sorted(out.iterdir())).lower()
    names = " ".join(p.name for p in out.iterdir()).lower()
    for trace in (str(QUIET.id), QUIET.username, str(QUIET.global_name), QUIET_NICK):
        assert trace.lower().encode() not in everything, trace
        assert trace.lower() not in names, trace


async def test_an_acknowledged_opt_out_survives_a_kill(
    fake_discord: FakeDiscord, tmp_path: Path, store_url: str
) -> None:
    server = fake_discord
    member = server.world.member
    config = write_config(tmp_path, server, store_url)
    run = ("run", "--config", str(config))
    async with bot_process(server, tmp_path / "first.log", *run) as proc:
        handle = await server.invoke_command("privacy optout", user=member)
        reply = await handle.wait_response(timeout=15)
        proc.send_signal(signal.SIGKILL)  # right after the acknowledgement: no clean shutdown
        await proc.wait()
    assert "You have opted out" in (reply.content or "")
    async with bot_process(server, tmp_path / "second.log", *run):
        handle = await server.invoke_command("privacy show", user=member)
        shown = await handle.wait_response(timeout=15)
    assert "You have opted out" in (shown.content or "")
