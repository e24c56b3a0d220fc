"""The real `python -m bot` process: SIGTERM with requests in flight, and a corrupt store.

(SIGKILL during settings writes and unwritable or corrupt SQLite files at the store level are in
tests/bot/test_settings.py: test_sigkill_during_writes_leaves_a_consistent_file,
test_corrupt_file_is_refused_and_left_untouched, test_truncated_database_is_refused,
test_unwritable_directory_is_an_error, test_read_only_file_is_an_error.)
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from bot.generation.model import LoadedModel
from bot.testing import FakeDiscord, running_bot
from tests.bot.e2e.conftest import write_config
from tests.bot.e2e.reliability import REPO, bot_process
from tests.tinymodels import TINY_LSTM, widened

LENGTH = 1500


@pytest.fixture(scope="module")
def slow_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 x 256 LSTM (random weights): slow enough that 1,500 characters take a while."""
    return widened(TINY_LSTM, tmp_path_factory.mktemp("models") / "wide.onnx", hidden=256)


def long_config(tmp_path: Path, server: FakeDiscord, model: Path) -> Path:
    path = write_config(tmp_path, server, model)
    text = path.read_text()
    text = text.replace("length = 40", f"length = {LENGTH}")
    text = text.replace("workers = 1\n", "workers = 1\nmax_length = 2000\n")
    path.write_text(text)
    return path


async def test_sigterm_with_requests_in_flight_answers_each_and_exits_0(
    fake_discord: FakeDiscord, tmp_path: Path, slow_onnx: Path
) -> None:
    w = fake_discord.world
    path = long_config(tmp_path, fake_discord, slow_onnx)
    log_path = tmp_path / "bot.log"
    async with bot_process(fake_discord, log_path, "--config", str(path), "run") as proc:
        handles = [
            await fake_discord.invoke_command(
                "complete", {"prompt": f"To be {i}"}, channel_id=channel.id, user=user
            )
            for i, (channel, user) in enumerate(
                [(w.general, w.member), (w.random, w.moderator), (w.general, w.owner)]
            )
        ]
        mid = await fake_discord.send_message(
            w.random.id, w.member, f"{w.bot.mention} Or not", mentions=[w.bot]
        )
        await fake_discord.wait_until(
            lambda: all(h.deferred for h in handles) and w.random.id in fake_discord.typing,
            timeout=10,
            what="the bot to start on all four",
        )
        in_flight = sum(not h.replies for h in handles)
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 60)
    log_text = log_path.read_text(errors="replace")
    assert rc == 0, log_text[-3000:]
    assert in_flight >= 2, "the generations finished before SIGTERM: make them longer"
    assert "received SIGTERM" in log_text
    for i, handle in enumerate(handles):
        # One message each; a completion still running after a second is edited in as it comes.
        assert len({r.message_id for r in handle.replies}) == 1, (i, handle.replies)
        assert all(r.kind == "edit" for r in handle.replies[1:]), (i, handle.replies)
        content = handle.replies[-1].content or ""
        assert content.startswith(f"**To be {i}**") or "shut" in content, content
    answer = await fake_discord.wait_for_message(
        w.random.id,
        lambda m: int((m.message_reference or {}).get("message_id", 0)) == mid,
        timeout=1,
    )
    assert answer.content.startswith("**Or not**") or "shut" in answer.content
    assert fake_discord.token not in log_text


def test_chat_with_a_corrupt_store_is_one_sentence_and_a_nonzero_exit(
    fake_discord_free_config: Path,
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(fake_discord_free_config), "chat"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        input="To be\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert "store.sqlite3" in err, err
    assert "Traceback" not in proc.stderr and not proc.stdout


@pytest.fixture
def fake_discord_free_config(tmp_path: Path, tiny_onnx: Path) -> Path:
    store = tmp_path / "store.sqlite3"
    store.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    path = tmp_path / "chat.toml"
    path.write_text(
        f'[models]\ndefault = "tiny"\n\n[models.tiny]\npath = "{tiny_onnx}"\n\n'
        f'[store]\npath = "{store}"\n'
    )
    return path


async def test_shutdown_tells_late_and_overlong_requests(
    fake_discord: FakeDiscord,
    tmp_path: Path,
    tiny_onnx: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In process, the same `close()` that SIGTERM starts: a request that outlives the time
    limit is told so, and one that arrives while the bot drains is told to try again."""
    w = fake_discord.world
    original = LoadedModel.run

    def slow_run(
        self: LoadedModel, tokens: np.ndarray, state: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        time.sleep(0.005)  # 1,000 steps: 5 s, far past the 1 s limit
        return original(self, tokens, state)

    path = write_config(tmp_path, fake_discord, tiny_onnx)
    overrides = {"engine.timeout_seconds": 1.0, "engine.max_length": 1000}
    async with running_bot(fake_discord, path, overrides) as bot:
        monkeypatch.setattr(LoadedModel, "run", slow_run)
        slow = await fake_discord.invoke_command("complete", {"prompt": "To be", "length": 1000})
        backend = bot.models.get("tiny")
        await fake_discord.wait_until(
            lambda: backend.stats().active_requests, what="the generation to start"
        )
        closing = asyncio.create_task(bot.close())
        await fake_discord.wait_until(lambda: not bot.completions.accepting, what="the drain")
        late = await fake_discord.invoke_command("complete", {"prompt": "Or"}, user=w.moderator)
        mid = await fake_discord.send_message(w.random.id, w.member, f"{w.bot.mention} Or")
        told = (await late.wait_response(timeout=5)).content or ""
        assert "shutting down" in told and "try again" in told, told
        said = await fake_discord.wait_for_message(
            w.random.id,
            lambda m: int((m.message_reference or {}).get("message_id", 0)) == mid,
            timeout=5,
        )
        assert "shutting down" in said.content, said.content
        timed_out = (await slow.wait_response(timeout=5)).content or ""
        assert "longer than 1 seconds" in timed_out, timed_out
        await asyncio.wait_for(closing, 10)
    assert len(slow.replies) == 1 and len(late.replies) == 1


async def test_a_request_failing_during_shutdown_is_still_told(
    fake_discord: FakeDiscord,
    tmp_path: Path,
    tiny_onnx: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The last request in flight fails while the bot drains: its error reply must go out before
    the connection closes (the handler's tracking covers the failure reply too)."""
    original = LoadedModel.run
    started = threading.Event()

    def failing_run(
        self: LoadedModel, tokens: np.ndarray, state: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        if tokens.shape[1] > 1:  # priming: let it start
            return original(self, tokens, state)
        started.set()
        time.sleep(0.2)
        raise RuntimeError("simulated failure during shutdown")

    path = write_config(tmp_path, fake_discord, tiny_onnx)
    async with running_bot(fake_discord, path) as bot:
        monkeypatch.setattr(LoadedModel, "run", failing_run)
        ia = await fake_discord.invoke_command("complete", {"prompt": "To be"})
        await fake_discord.wait_until(started.is_set, what="the generation to start")
        await bot.close()
        assert "failed while generating" in ((await ia.wait_response(timeout=2)).content or "")
