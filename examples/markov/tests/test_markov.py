"""The Markov example as a third party would test it: through charbot's public API alone."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

pytest.importorskip(
    "charbot_markov", reason="the Markov example is not installed: pip install -e examples/markov"
)

from charbot_markov.backend import MarkovBackend
from charbot_markov.chain import MarkovChain

from bot.api import GenerationBackend, GenerationParams, InvalidParamsError, ModelLoadError
from bot.testing import FakeDiscord, running_bot
from models import BUNDLED_MODEL

CORPUS = "the cat sat on the mat. the dog sat on the log. the cat saw the dog.\n" * 5


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS)
    return path


async def test_the_backend_implements_the_public_protocol(corpus: Path) -> None:
    backend = await MarkovBackend.start("chain", corpus)
    assert isinstance(backend, GenerationBackend)
    info = backend.info
    assert (info.name, info.kind, info.level) == ("chain", "markov", "word")
    assert info.description.startswith("word-level Markov chain of order 2")
    greedy = GenerationParams(max_length=12, temperature=0)
    first = await backend.complete("the cat", greedy)
    assert first.text and first.tokens == 12 and first.finish_reason == "length"
    assert (await backend.complete("the cat", greedy)).text == first.text
    chunks = [chunk async for chunk in backend.stream("the dog", GenerationParams(seed=1))]
    assert chunks[-1].completion is not None
    with pytest.raises(InvalidParamsError):
        await backend.complete("the", GenerationParams(temperature=9.0))
    await backend.close()


async def test_an_unreadable_corpus_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="Cannot build a Markov chain"):
        await MarkovBackend.start("chain", tmp_path / "missing.txt")


# -- /markov stats, written once: the console chat and Discord --------------------------------


def write_config(tmp_path: Path, corpus: Path, discord: str = "") -> Path:
    """Two Markov models, `chain` (the default, of order 2) and `short`, and the bundled one."""
    short = tmp_path / "short.txt"
    short.write_text("a b a c. " * 3)
    path = tmp_path / "charbot.toml"
    path.write_text(
        f'{discord}\n[models]\ndefault = "chain"\n'
        f'[models.chain]\npath = "{corpus}"\nbackend = "markov"\n'
        f'[models.short]\npath = "{short}"\nbackend = "markov"\n'
        f'[models.shakespeare]\npath = "{BUNDLED_MODEL}"\n'
        f'[store]\npath = "{tmp_path / "settings.sqlite3"}"\n'
    )
    return path


def figures(corpus: Path) -> str:
    chain = MarkovChain(corpus.read_text(), 2)
    return (
        f"a Markov chain of order 2, {chain.transitions:,} transitions, "
        f"a vocabulary of {len(chain.vocab):,} tokens."
    )


def python_m_bot(*args: str, lines: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input="".join(line + "\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_the_console_lists_and_runs_markov_stats(corpus: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, corpus)
    lines = ["/help", "/markov stats", "/markov stats short", "/markov stats shakespeare"]
    result = python_m_bot("--config", str(config), "chat", lines=lines)
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert any(line.strip().startswith("/markov stats [MODEL]") for line in out), out
    assert f"chain: {figures(corpus)}" in out
    assert any(line.startswith("short: a Markov chain of order 2, ") for line in out), out
    assert (
        "error: Model 'shakespeare' is not a Markov chain; the Markov models: chain, short."
    ) in out
    assert "Traceback" not in result.stderr


def test_the_plugin_adds_a_subcommand(corpus: Path, tmp_path: Path) -> None:
    config = str(write_config(tmp_path, corpus))
    assert "markov-stats" in python_m_bot("--help").stdout
    done = python_m_bot("--config", config, "markov-stats", "chain")
    assert (done.returncode, done.stdout) == (0, f"chain: {figures(corpus)}\n"), done.stderr
    refused = python_m_bot("--config", config, "markov-stats", "ghost")
    assert refused.returncode == 1
    assert refused.stderr == "error: The config names no model 'ghost'.\n"


async def test_markov_stats_on_discord(
    fake_discord: FakeDiscord, corpus: Path, tmp_path: Path
) -> None:
    w = fake_discord.world
    discord = f"[discord]\ntest_guild_id = {w.guild.id}\ncooldown_seconds = 0.0\n"
    async with running_bot(fake_discord, write_config(tmp_path, corpus, discord)):
        ia = await fake_discord.invoke_command("markov stats", channel_id=w.general.id)
        reply = await ia.wait_response(timeout=20)
        assert reply.content == f"**chain**: {figures(corpus)}"
        ia = await fake_discord.invoke_command("markov stats", {"model": "ghost"})
        refused = await ia.wait_response(timeout=20)
        assert refused.ephemeral
        assert (
            refused.content
            == "There is no model named 'ghost'; available: chain, shakespeare, short."
        )
