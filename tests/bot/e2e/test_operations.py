"""Operating the bot: /metrics counts exactly what happened, /readyz follows the gateway, the
JSON logs follow a request from the interaction to the engine and back, and a port left at 0
opens no socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import threading
from pathlib import Path

import discord
import numpy as np
import pytest
from discord.ext import commands

from bot.config import DEFAULT_PLUGINS
from bot.generation.model import LoadedModel
from bot.generation.params import WORD_END_SLACK
from bot.ops.health import gateway_verdict, shard_states
from bot.testing import CLIENT_KWARGS, FakeDiscord, InteractionHandle, running_bot, running_client
from bot.testing.ports import free_port
from tests.bot.e2e.conftest import write_config
from tests.bot.e2e.ops import eventually, listening_ports, probe, scrape
from tests.bot.e2e.reliability import bot_process

LENGTH = 40  # write_config's generation.length; the tiny model is char-level: 40 characters


def tiny(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"model": "tiny", **labels}.items()))


async def complete(server: FakeDiscord, prompt: str) -> InteractionHandle:
    return await server.invoke_command("complete", {"prompt": prompt}, user=server.world.member)


async def test_metrics_count_each_completion_and_the_busy_one(
    fake_discord: FakeDiscord, tmp_path: Path, tiny_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    path = write_config(tmp_path, fake_discord, tiny_onnx)
    overrides = {
        "metrics.port": port,
        # One request generating and one waiting fill the engine: a third is refused as busy.
        "engine.max_batch": 1,
        "engine.max_queue": 1,
        "plugins.enabled": [*DEFAULT_PLUGINS, "bot.plugins.missing"],
    }
    running = threading.Event()
    running.set()
    run = LoadedModel.run

    def run_when_let(
        self: LoadedModel, tokens: np.ndarray, state: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        running.wait(timeout=30)  # holds the worker while the test fills the queue
        return run(self, tokens, state)

    monkeypatch.setattr(LoadedModel, "run", run_when_let)
    async with running_bot(fake_discord, path, overrides) as bot:
        assert port in listening_ports()
        first = await complete(fake_discord, "To be")
        assert ((await first.wait_response(timeout=20)).content or "").startswith("**To be**")

        running.clear()
        held = [await complete(fake_discord, prompt) for prompt in ("Or not", "That is")]
        stats = bot.models.get("tiny").stats

        async def engine_full() -> bool:
            return stats().active_requests == 1 and stats().queue_depth == 1

        await eventually(engine_full, "one request generating and one waiting")
        full = await scrape(port)
        assert full[("charbot_queue_depth", tiny())] == 1
        assert full[("charbot_active_requests", tiny())] == 1
        refused = await complete(fake_discord, "Whether")
        assert "busy" in ((await refused.wait_response(timeout=20)).content or "")
        running.set()
        for handle in held:
            assert ((await handle.wait_response(timeout=20)).content or "").startswith("**")

        metrics = await scrape(port)
        completions = {
            outcome: metrics[("charbot_completions_total", tiny(outcome=outcome))]
            for outcome in ("ok", "busy", "invalid", "timeout", "error")
        }
        assert completions == {"ok": 3, "busy": 1, "invalid": 0, "timeout": 0, "error": 0}
        assert metrics[("charbot_completions_total", (("model", "markov"), ("outcome", "ok")))] == 0
        assert metrics[("charbot_queue_depth", tiny())] == 0
        assert metrics[("charbot_active_requests", tiny())] == 0
        generated = metrics[("charbot_generated_characters_total", tiny())]
        # 40 characters each, then perhaps the end of a word (answers end cleanly: clean_end).
        assert 3 * LENGTH <= generated <= 3 * (LENGTH + WORD_END_SLACK + 1)
        assert metrics[("charbot_queue_wait_seconds_count", tiny())] == 3
        assert metrics[("charbot_generation_seconds_count", tiny())] == 3
        # The first token comes from the prompt's own call; each of the others is one step of a
        # batch of one (engine.max_batch = 1).
        steps = generated - 3
        assert metrics[("charbot_batch_size_count", tiny())] == steps
        assert metrics[("charbot_batch_size_bucket", tiny(le="1.0"))] == steps
        assert metrics[("charbot_batch_size_sum", tiny())] == steps
        assert metrics[("charbot_model_loaded", tiny())] == 1
        assert metrics[("charbot_plugin_load_failures_total", (("plugin", "missing"),))] == 1
        assert metrics[("charbot_plugin_load_failures_total", (("plugin", "completion"),))] == 0
        assert metrics[("charbot_gateway_connected", (("shard", "0"),))] == 1
        assert metrics[("process_start_time_seconds", ())] > 0
        assert metrics[("charbot_settings_store_errors_total", ())] == 0

        # The store goes away: the probe says so, and what fails on it is counted.
        await bot.settings.close()
        status, body = await probe(port, "/readyz")
        assert status == 503 and body["checks"]["settings_store"] != "ok", body
        assert body["checks"]["gateway"] == body["checks"]["models"] == "ok", body
        ia = await fake_discord.invoke_command(
            "temperature show", {}, user=fake_discord.world.member
        )
        assert "closed" in ((await ia.wait_response()).content or "")
        assert (await scrape(port))[("charbot_settings_store_errors_total", ())] == 1


async def test_readyz_follows_the_gateway_and_healthz_stays_up(
    fake_discord: FakeDiscord, tmp_path: Path, tiny_onnx: Path
) -> None:
    port = free_port()
    path = write_config(tmp_path, fake_discord, tiny_onnx)

    async def readyz_is(status: int) -> bool:
        got, _ = await probe(port, "/readyz")
        healthz, _ = await probe(port, "/healthz")
        assert healthz == 200
        return bool(got == status)

    # Discord is unreachable at first: the endpoint is up (it starts before the gateway does),
    # and not ready.
    fake_discord.hold_gateway()
    bot_running = running_bot(fake_discord, path, {"metrics.port": port})
    starting = asyncio.create_task(bot_running.__aenter__())
    try:
        await eventually(lambda: readyz_is(503), "/readyz answering 503")
        status, body = await probe(port, "/readyz")
        assert body["status"] == "not ready" and body["checks"]["gateway"] != "ok", body
        assert not starting.done()

        fake_discord.release_gateway()
        await starting
        status, body = await probe(port, "/readyz")
        assert (status, body) == (
            200,
            {
                "status": "ready",
                "checks": dict.fromkeys(("gateway", "models", "settings_store"), "ok"),
            },
        )

        fake_discord.hold_gateway()
        resumes = fake_discord.resume_count
        await fake_discord.drop_gateway(wait_resume=False)
        await eventually(lambda: readyz_is(503), "/readyz 503 while the gateway is down")
        status, body = await probe(port, "/readyz")
        assert body["checks"]["gateway"] == "shard 0 not connected", body
        metrics = await scrape(port)
        assert metrics[("charbot_gateway_connected", (("shard", "0"),))] == 0

        fake_discord.release_gateway()
        await fake_discord.wait_until(
            lambda: fake_discord.resume_count > resumes and fake_discord.gateway.connected(),
            what="the RESUME",
        )
        await eventually(lambda: readyz_is(200), "/readyz 200 after the resume")
    finally:
        fake_discord.release_gateway()
        if starting.done() and starting.exception() is None:
            await bot_running.__aexit__(None, None, None)
        else:
            starting.cancel()
            with contextlib.suppress(BaseException):
                await starting


async def test_with_the_metrics_port_off_no_socket_is_opened(
    fake_discord: FakeDiscord, tmp_path: Path, tiny_onnx: Path
) -> None:
    path = write_config(tmp_path, fake_discord, tiny_onnx)
    before = listening_ports()
    assert fake_discord.port in before  # the check sees this process's listening sockets
    async with running_bot(fake_discord, path) as bot:
        assert bot.config.metrics.port == 0
        assert bot.ops_server is None
        assert listening_ports() == before


async def test_json_logs_follow_a_request_and_hold_no_token_and_no_prompt(
    fake_discord: FakeDiscord, tmp_path: Path, tiny_onnx: Path
) -> None:
    """The real process, started with the flags: `--log-format json --metrics-port PORT`."""
    w = fake_discord.world
    port = free_port()
    path = write_config(tmp_path, fake_discord, tiny_onnx)
    log_path = tmp_path / "bot.log"
    prompts = ("Zounds quoth Bardolph", "Verily Pistol")
    argv = ["--config", str(path), "--log-level", "DEBUG", "--log-format", "json"]
    async with bot_process(
        fake_discord, log_path, *argv, "run", "--metrics-port", str(port)
    ) as proc:

        async def ready() -> bool:
            return (await probe(port, "/readyz"))[0] == 200

        await eventually(ready, "the process's /readyz")
        ia = await complete(fake_discord, prompts[0])
        assert ((await ia.wait_response(timeout=20)).content or "").startswith("**Zounds")
        mid = await fake_discord.send_message(
            w.random.id, w.member, f"{w.bot.mention} {prompts[1]}", mentions=[w.bot]
        )
        await fake_discord.wait_for_message(w.random.id, after=mid, timeout=20)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0

    text = log_path.read_text()
    assert fake_discord.token not in text  # at any level
    lines = [json.loads(line) for line in text.splitlines()]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    loud = [line for line in lines if line["level"] in ("INFO", "WARNING", "ERROR", "CRITICAL")]
    for line in loud:  # discord.py's DEBUG lines show the gateway's payloads, prompts included
        shown = json.dumps(line)
        assert not any(word in shown for prompt in prompts for word in prompt.split()), line

    done = [line for line in loud if line["message"].startswith("completion ok on tiny")]
    assert [line["channel"] for line in done] == [w.general.id, w.random.id]
    assert len({line["request_id"] for line in done}) == 2
    steps = [
        ("bot.core.completions", "request started"),  # the interaction's handler
        ("bot.core.completions", "completion started"),
        ("bot.generation.batcher", "request joined a batch"),  # a worker thread
        ("bot.generation.batcher", "request finished"),
        ("bot.core.completions", "completion ok on tiny"),  # back on the event loop
    ]
    for line in done:
        trail = [each for each in lines if each.get("request_id") == line["request_id"]]
        ours = [each for each in trail if each["logger"].startswith("bot.")]
        assert len(ours) == len(steps), ours
        assert [
            (each["logger"], each["message"][: len(start)])
            for each, (_, start) in zip(ours, steps, strict=True)
        ] == steps, ours
        assert all(
            (each["guild"], each["channel"], each["shard"]) == (w.guild.id, line["channel"], 0)
            for each in trail
        ), trail
        assert all(each["model"] == "tiny" for each in ours[1:]), ours
        # ... and back: discord.py's requests sending the answer carry the id too.
        after = trail[trail.index(ours[-1]) :]
        assert any(
            each["logger"].startswith("discord.") and "POST" in each["message"] for each in after
        ), trail


async def test_an_auto_sharded_bot_is_read_alike(fake_discord: FakeDiscord) -> None:
    """The gateway check reads shards generically: an AutoShardedBot's, not only a Bot's."""
    bot = commands.AutoShardedBot(
        command_prefix=commands.when_mentioned,
        intents=discord.Intents.default(),
        shard_count=1,
        **CLIENT_KWARGS,
    )
    (before,) = shard_states(bot).values()  # shard 0 is owned before it connects
    assert not before.connected and math.isnan(before.latency)
    assert gateway_verdict(bot) == "shard 0 not connected"
    async with running_client(bot, fake_discord):
        assert gateway_verdict(bot) == "ok" and shard_states(bot)[0].connected
        fake_discord.hold_gateway()
        try:
            await fake_discord.drop_gateway(wait_resume=False)

            async def down() -> bool:
                return gateway_verdict(bot) == "shard 0 not connected"

            await eventually(down, "the shard to be seen down")
        finally:
            fake_discord.release_gateway()

        async def up() -> bool:
            return gateway_verdict(bot) == "ok"

        await eventually(up, "the shard to be seen up again")


async def test_an_unreachable_served_model_is_not_called_ready(
    fake_discord: FakeDiscord, tmp_path: Path, tiny_onnx: Path
) -> None:
    port, nobody = free_port(), free_port()  # nothing listens on `nobody`
    url = f"http://127.0.0.1:{nobody}/v1"
    far = f'backend = "openai"\nurl = "{url}"'
    path = write_config(tmp_path, fake_discord, tiny_onnx, **{"models.far": far})
    async with running_bot(fake_discord, path, {"metrics.port": port}) as bot:
        w = fake_discord.world
        use = await fake_discord.invoke_command("model use", {"name": "far"}, user=w.moderator)
        await use.wait_response()
        ia = await fake_discord.invoke_command("complete", {"prompt": "To be"}, user=w.member)
        told = (await ia.wait_response()).content or ""
        assert "cannot be reached" in told, told  # what users get...
        status, body = await probe(port, "/readyz")  # ...is what the probe and the gauge say
        assert status == 503, body
        assert body["checks"]["models"].startswith("model far unavailable: "), body
        assert url in body["checks"]["models"], body
        metrics = await scrape(port)
        loaded = {m: metrics[("charbot_model_loaded", (("model", m),))] for m in ("far", "tiny")}
        assert loaded == {"far": 0, "tiny": 1}, loaded
        assert "far" in bot.models.names  # loaded, only unreachable


async def test_auto_workers_fit_the_cores_the_process_may_use(
    fake_discord: FakeDiscord, tmp_path: Path, tiny_onnx: Path
) -> None:
    """The default engine.workers (auto) follows the process's CPU affinity, not the machine's
    core count, and says what it chose: in the log at start and in /admin status."""
    path = write_config(tmp_path, fake_discord, tiny_onnx)
    path.write_text(path.read_text().replace("workers = 1\n", ""))  # the default: auto
    log_path = tmp_path / "bot.log"
    one_core = {min(os.sched_getaffinity(0))}
    async with bot_process(fake_discord, log_path, "--config", str(path), "run", cpus=one_core):
        owner = fake_discord.world.owner
        ia = await fake_discord.invoke_command("admin status", {}, user=owner)
        status = (await ia.wait_response()).content or ""
    assert (
        "Model tiny (CPUExecutionProvider; 1 worker(s) of 1 thread(s), engine.workers auto): "
    ) in status, status
    assert (
        "engine: each ONNX model runs 1 worker(s) of 1 thread(s) (auto, sized to 1 core(s)); "
        "this process may use 1 core(s), shared with the event loop"
    ) in log_path.read_text(), log_path.read_text()[-3000:]
