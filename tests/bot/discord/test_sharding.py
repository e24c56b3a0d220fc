"""Shard config (file, env, flags; one-sentence errors) and IDENTIFY spacing per bucket."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.cli import main
from bot.config import IDENTIFY_SPACING_SECONDS, MAX_SHARD_COUNT, ConfigError, load_config
from bot.discord.sharding import IdentifyGate, LocalLocks, runs_shard_zero


def test_defaults_run_every_shard_recommended_by_discord() -> None:
    discord = load_config(None, {}, {}).discord
    assert (discord.shard_count, discord.shard_ids) == (0, ())
    assert discord.identify_spacing_seconds == IDENTIFY_SPACING_SECONDS == 5.0
    assert runs_shard_zero(discord.shard_ids)


def test_env_and_flags() -> None:
    env = {"CHARBOT_DISCORD_SHARD_COUNT": "4", "CHARBOT_DISCORD_SHARD_IDS": "2, 3"}
    discord = load_config(None, env, {}).discord
    assert (discord.shard_count, discord.shard_ids) == (4, (2, 3))
    assert not runs_shard_zero(discord.shard_ids)
    # Flags beat the environment; --shard-ids arrives as text, like the variable.
    flags = {"discord.shard_count": 3, "discord.shard_ids": "0"}
    discord = load_config(None, env, flags).discord
    assert (discord.shard_count, discord.shard_ids) == (3, (0,))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CHARBOT_DISCORD_SHARD_IDS": "0,1"}, "discord.shard_ids needs discord.shard_count"),
        (
            {"CHARBOT_DISCORD_SHARD_COUNT": "2", "CHARBOT_DISCORD_SHARD_IDS": "1,2"},
            "holds 2, outside 0 to 1",
        ),
        (
            {"CHARBOT_DISCORD_SHARD_COUNT": "2", "CHARBOT_DISCORD_SHARD_IDS": "-1"},
            "holds -1, outside 0 to 1",
        ),
        (
            {"CHARBOT_DISCORD_SHARD_COUNT": "4", "CHARBOT_DISCORD_SHARD_IDS": "1,3,1"},
            "lists shard 1 twice",
        ),
        ({"CHARBOT_DISCORD_SHARD_COUNT": "-1"}, "discord.shard_count must be from 0 to"),
        (
            {"CHARBOT_DISCORD_SHARD_COUNT": "99999999999999999999"},
            f"discord.shard_count must be from 0 to {MAX_SHARD_COUNT}, not 99999999999999999999",
        ),
        ({"CHARBOT_DISCORD_SHARD_IDS": "a"}, "discord.shard_ids[0] must be a whole number"),
    ],
)
def test_bad_shards_are_one_sentence(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env, {})
    text = str(info.value)
    assert message in text and "\n" not in text, text
    assert text.startswith("Environment variable CHARBOT_DISCORD_SHARD_"), text


def test_bad_shard_flags_exit_with_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--shard-count", "2", "--shard-ids", "0,5"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: Command-line override: discord.shard_ids holds 5, outside 0 to 1 "
        "(discord.shard_count is 2)."
    )


def test_a_shard_count_beyond_any_bot_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--shard-count", "99999999999999999999"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: Command-line override: discord.shard_count must be from 0 to "
        f"{MAX_SHARD_COUNT}, not 99999999999999999999."
    )


async def test_identify_gate_spaces_each_bucket() -> None:
    """Shards 0 and 2 share bucket 0 (max_concurrency 2): the second waits the spacing; shard 1
    (bucket 1) does not wait for either."""
    gate = IdentifyGate(LocalLocks(), spacing=0.3, max_concurrency=2)
    turns: dict[int, float] = {}

    async def identify(shard_id: int) -> None:
        await gate.wait_turn(shard_id)
        turns[shard_id] = time.monotonic()

    await asyncio.gather(identify(0), identify(2), identify(1))
    await gate.close()
    first, second = sorted([turns[0], turns[2]])
    assert second - first >= 0.3
    assert turns[1] < second  # a bucket of its own: not queued behind bucket 0's lock
