"""`/settings set` through the test Discord server: a value out of bounds is one sentence."""

from __future__ import annotations

from bot.generation.params import MAX_TOP_K
from bot.testing import FakeDiscord
from tests.bot.e2e.conftest import RunBot


async def test_a_huge_top_k_is_refused_with_its_bounds(
    fake_discord: FakeDiscord, run_bot: RunBot
) -> None:
    w = fake_discord.world
    async with run_bot() as bot:
        for value in (1e30, MAX_TOP_K + 1):
            ia = await fake_discord.invoke_command(
                "settings set", {"key": "top_k", "value": value}, user=w.moderator
            )
            refused = await ia.wait_response()
            assert refused.ephemeral, refused
            assert refused.content == (
                f"top_k must be a whole number from 0 (off) to {MAX_TOP_K}; got {value!r}."
            )
        assert await bot.settings.get(w.general.id, "top_k") is None
        ia = await fake_discord.invoke_command(
            "settings set", {"key": "top_k", "value": MAX_TOP_K}, user=w.moderator
        )
        assert (await ia.wait_response()).content == f"top_k set to {MAX_TOP_K} for this channel."
