"""Overload: 200 completions from 20 channels within a second, against a small engine queue.

Each is answered or refused politely, none is lost or answered twice, the queue stays bounded and
the gateway heartbeat keeps its rhythm (nothing blocks the event loop).
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from bot.testing import FakeChannel, FakeDiscord, InteractionHandle, RecordedMessage, running_bot
from tests.bot.e2e.conftest import write_config

CHANNELS = 20
COMMANDS = 150
MENTIONS = 50
MAX_BATCH = 4
MAX_QUEUE = 6
BUSY = "busy"


def answered(content: str, prompt: str) -> bool:
    return content.startswith(f"**{prompt}**")


async def test_200_completions_from_20_channels_in_one_second(
    fake_discord: FakeDiscord, tmp_path: Path, tiny_onnx: Path
) -> None:
    w = fake_discord.world
    # The default world has two channels: add 18 before the bot connects (GUILD_CREATE).
    for i in range(CHANNELS - 2):
        w.guild.channels.append(FakeChannel(1_000_000_000_000_000_500 + i, f"load-{i}", 2 + i))
    channels = [c.id for c in w.guild.channels]
    assert len(channels) == CHANNELS
    users = [w.member, w.moderator, w.owner]
    path = write_config(tmp_path, fake_discord, tiny_onnx)
    overrides = {
        "engine.max_batch": MAX_BATCH,
        "engine.max_queue": MAX_QUEUE,
        "engine.workers": 1,
        "generation.length": 400,  # long enough to keep the engine full for a while
    }
    async with running_bot(fake_discord, path, overrides) as bot:
        backend = bot.models.get("tiny")
        depth: list[int] = []
        stop = asyncio.Event()

        async def sample_queue() -> None:
            while not stop.is_set():
                s = backend.stats()
                depth.append(s.queue_depth + s.active_requests)
                await asyncio.sleep(0.005)

        sampler = asyncio.create_task(sample_queue())
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def command(i: int) -> InteractionHandle:
            return await fake_discord.invoke_command(
                "complete",
                {"prompt": f"To be {i}"},
                channel_id=channels[i % CHANNELS],
                user=users[i % len(users)],
            )

        async def mention(i: int) -> int:
            return await fake_discord.send_message(
                channels[i % CHANNELS],
                users[i % len(users)],
                f"{w.bot.mention} Or not {i}",
                mentions=[w.bot],
            )

        # Ten bursts of twenty, 0.1 s apart: 200 within one second, each burst all at once.
        sends = [command(i) for i in range(COMMANDS)] + [mention(i) for i in range(MENTIONS)]
        results = []
        for burst in range(10):
            if burst:
                await asyncio.sleep(0.1)
            results += await asyncio.gather(*sends[burst * 20 : burst * 20 + 20])
        sent_in = loop.time() - started
        handles = [r for r in results if isinstance(r, InteractionHandle)]
        mention_ids = {r: i for i, r in enumerate(results[COMMANDS:]) if isinstance(r, int)}

        def reply_to(message: RecordedMessage) -> int | None:
            ref = message.message_reference or {}
            mid = int(ref.get("message_id", 0))
            return mid if mid in mention_ids else None

        def all_done() -> bool:
            replied = {reply_to(m) for m in fake_discord.sent_messages} - {None}
            # In flight until the last edit: a slow /complete shows its text as it arrives.
            done = all(h.replies for h in handles) and bot.completions.inflight == 0
            return done and len(replied) == MENTIONS

        await fake_discord.wait_until(all_done, timeout=40, what="an answer to all 200")
        finished_in = loop.time() - started
        await asyncio.sleep(0.5)  # anything answered twice would show up now
        stop.set()
        await sampler

        # From the last beat before the load to the end of it.
        heartbeats = [h.at for h in fake_discord.heartbeats if started - 0.6 <= h.at]
        heartbeats.append(loop.time())
        counts = {"answered": 0, "busy": 0}
        for i, handle in enumerate(handles):
            # One message; a slow completion edits it as its text arrives, the last edit whole.
            assert len({r.message_id for r in handle.replies}) == 1, (i, handle.replies)
            assert all(r.kind == "edit" for r in handle.replies[1:]), (i, handle.replies)
            content = handle.replies[-1].content or ""
            if answered(content, f"To be {i}"):
                counts["answered"] += 1
            else:
                assert BUSY in content and "try again" in content, content
                counts["busy"] += 1
        by_mention: dict[int, list[str]] = {}
        for message in fake_discord.sent_messages:
            mid = reply_to(message)
            if mid is not None:
                by_mention.setdefault(mid, []).append(message.content)
        assert sorted(by_mention) == sorted(mention_ids)
        for mid, contents in by_mention.items():
            assert len(contents) == 1, contents
            i = mention_ids[mid]
            ok = answered(contents[0], f"Or not {i}")
            assert ok or (BUSY in contents[0] and "try again" in contents[0]), contents
            counts["answered" if ok else "busy"] += 1

    print(
        f"\nload: sent 200 in {sent_in:.2f}s, all answered by {finished_in:.2f}s; {counts}; "
        f"max in engine {max(depth)}; heartbeats {len(heartbeats) - 1}, max gap "
        f"{max(b - a for a, b in itertools.pairwise(heartbeats)):.2f}s"
    )
    # No assertion on `sent_in`: how fast a shared machine sends is not the bot's behaviour. The
    # burst did its job when it overflowed the bounded queue (busy > 0 below).
    assert counts["answered"] + counts["busy"] == COMMANDS + MENTIONS
    assert counts["busy"] > 0 and counts["answered"] >= MAX_BATCH + MAX_QUEUE
    assert max(depth) <= MAX_BATCH + MAX_QUEUE  # the queue is bounded
    # The heartbeat (interval 0.5 s) kept beating. Generation on the loop would stall it for the
    # whole burst (all 200 answers: well over 3 s); a loaded machine's scheduler alone stretched
    # one gap to 1.6 s, so the bound tells the two apart with room for such a machine.
    gaps = [b - a for a, b in itertools.pairwise(heartbeats)]
    assert len(heartbeats) >= 4 and max(gaps) < 3.0, gaps
