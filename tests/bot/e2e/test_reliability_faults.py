"""Faults around a running bot: a dropped gateway, rate limits, expired tokens, a failing worker,
a garbage model file. Each time the user gets an answer or is told, and the bot keeps serving."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from bot.generation.model import LoadedModel
from bot.testing import FakeDiscord, running_bot
from tests.bot.e2e.conftest import write_config
from tests.bot.e2e.reliability import Gate

FOLLOWUP = "/webhooks/*/*"  # the answer after a defer: the first followup edits "thinking..."


async def complete_ok(server: FakeDiscord, prompt: str = "To be") -> str:
    w = server.world
    ia = await server.invoke_command("complete", {"prompt": prompt}, user=w.member)
    content = (await ia.wait_response(timeout=20)).content or ""
    assert content.startswith(f"**{prompt}**"), content
    return content


async def test_gateway_dropped_mid_generation_the_answer_still_arrives(
    fake_discord: FakeDiscord, tmp_path: Path, tiny_onnx: Path
) -> None:
    path = write_config(tmp_path, fake_discord, tiny_onnx)
    async with running_bot(fake_discord, path) as bot:
        gate = Gate(bot)
        ia = await fake_discord.invoke_command("complete", {"prompt": "To be"})
        await fake_discord.wait_until(lambda: ia.deferred and gate.entered, what="the defer")
        await fake_discord.drop_gateway()  # waits for the RESUME
        gate.open()
        reply = await ia.wait_response(timeout=20)
        assert (reply.content or "").startswith("**To be**")
        assert len(ia.replies) == 1
        assert fake_discord.resume_count >= 1


async def test_429_on_the_answer_is_waited_out(
    fake_discord: FakeDiscord, tmp_path: Path, tiny_onnx: Path
) -> None:
    path = write_config(tmp_path, fake_discord, tiny_onnx)
    async with running_bot(fake_discord, path):
        fault = fake_discord.fail_next("POST", FOLLOWUP, 429, retry_after=0.4)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await complete_ok(fake_discord)
        assert fault.hits == 1
        assert loop.time() - started >= 0.4  # it waited retry_after before retrying


@pytest.mark.parametrize("how", ["expired-token", "edit-refused-10015"])
async def test_expired_interaction_is_logged_and_the_bot_goes_on(
    fake_discord: FakeDiscord,
    tmp_path: Path,
    tiny_onnx: Path,
    caplog: pytest.LogCaptureFixture,
    how: str,
) -> None:
    path = write_config(tmp_path, fake_discord, tiny_onnx)
    caplog.set_level(logging.WARNING)
    async with running_bot(fake_discord, path) as bot:
        gate = Gate(bot)
        ia = await fake_discord.invoke_command("complete", {"prompt": "To be"})
        await fake_discord.wait_until(lambda: ia.deferred and gate.entered, what="the defer")
        if how == "expired-token":
            fake_discord.expire_interaction(ia)
        else:
            fake_discord.fail_next(
                "*", FOLLOWUP, 404, code=10015, message="Unknown Webhook", count=5
            )
        gate.open()
        await fake_discord.wait_until(lambda: gate.finished, what="the generation")
        await asyncio.sleep(0.3)
        assert not ia.replies
        assert not bot.is_closed()
        assert bot.completions.inflight == 0
        # Told as what it is (the user left / the token expired), not as a bug with a traceback.
        bot_records = [r for r in caplog.records if r.name.startswith("bot.")]
        assert any("expired" in r.getMessage() for r in bot_records), caplog.text
        assert not any(r.levelno >= logging.ERROR for r in bot_records), caplog.text
        for fault in fake_discord.faults:
            fault.remaining = 0
        await complete_ok(fake_discord, "Or")


async def test_a_failing_worker_fails_one_request_and_the_pool_lives_on(
    fake_discord: FakeDiscord,
    tmp_path: Path,
    tiny_onnx: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_config(tmp_path, fake_discord, tiny_onnx)
    original = LoadedModel.run
    raised: list[bool] = []

    def run_once_broken(
        self: LoadedModel, tokens: np.ndarray, state: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        if not raised:
            raised.append(True)
            raise RuntimeError("simulated onnxruntime failure")
        return original(self, tokens, state)

    async with running_bot(fake_discord, path) as bot:
        monkeypatch.setattr(LoadedModel, "run", run_once_broken)
        ia = await fake_discord.invoke_command("complete", {"prompt": "To be"})
        reply = await ia.wait_response(timeout=20)
        assert "failed while generating" in (reply.content or ""), reply.content
        assert raised
        await complete_ok(fake_discord, "Or")
        stats = bot.models.get("tiny").stats()
        assert stats.requests_failed == 1 and stats.requests_served >= 1


async def test_reloading_a_garbage_model_file_is_refused_and_the_old_one_serves(
    fake_discord: FakeDiscord, tmp_path: Path, tiny_onnx: Path
) -> None:
    w = fake_discord.world
    model = tmp_path / "tiny-copy.onnx"
    shutil.copy(tiny_onnx, model)
    path = write_config(tmp_path, fake_discord, model)
    async with running_bot(fake_discord, path) as bot:
        before = bot.models.get("tiny").info
        model.write_bytes(b"this is not an onnx model \x00\xff" * 100)
        ia = await fake_discord.invoke_command(
            "admin reload-model", {"name": "tiny"}, user=w.moderator
        )
        refused = await ia.wait_response()
        assert refused.ephemeral and "owner" in (refused.content or "")
        ia = await fake_discord.invoke_command("admin reload-model", {"name": "tiny"}, user=w.owner)
        reply = await ia.wait_response(timeout=20)
        assert reply.ephemeral
        assert "is not a readable ONNX model" in (reply.content or ""), reply.content
        assert str(model) in (reply.content or "")
        assert bot.models.get("tiny").info is before
        await complete_ok(fake_discord)
