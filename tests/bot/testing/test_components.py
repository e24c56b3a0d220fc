"""FakeDiscord's message components and context menus, against the real discord.py client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import discord
import pytest
import pytest_asyncio
from discord.ext import commands
from discord.http import Route

from bot.testing import CLIENT_KWARGS, FakeDiscord, InvalidOption, InvocationError, running_client

NO_MENTIONS = discord.AllowedMentions.none()


class Panel(discord.ui.View):
    """Two persistent buttons: one answers with UPDATE_MESSAGE, one with a deferred update."""

    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Update", custom_id="panel:update")
    async def update(
        self, interaction: discord.Interaction, button: discord.ui.Button[Any]
    ) -> None:
        button.disabled = True
        await interaction.response.edit_message(
            content=f"updated by {interaction.user.id}", view=self
        )

    @discord.ui.button(label="Later", custom_id="panel:later")
    async def later(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        await interaction.response.defer()  # DEFERRED_UPDATE_MESSAGE for a component
        await interaction.edit_original_response(content="edited after a deferred update")
        await interaction.followup.send("done", ephemeral=True)


class PanelBot(commands.Bot):
    def __init__(self, guild_id: int) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            **CLIENT_KWARGS,
        )
        self.guild_id = guild_id

    async def setup_hook(self) -> None:
        self.add_view(Panel())

        @self.tree.command(name="panel")
        async def panel(interaction: discord.Interaction) -> None:
            """Post the panel."""
            await interaction.response.send_message("panel", view=Panel())

        @self.tree.context_menu(name="Echo")
        async def echo(interaction: discord.Interaction, message: discord.Message) -> None:
            await interaction.response.send_message(
                f"{message.author.id} said: {message.content}", allowed_mentions=NO_MENTIONS
            )

        guild = discord.Object(self.guild_id)
        self.tree.copy_global_to(guild=guild)
        await self.tree.sync(guild=guild)


@pytest_asyncio.fixture
async def panel_bot(fake_discord: FakeDiscord) -> AsyncIterator[PanelBot]:
    bot = PanelBot(fake_discord.world.guild.id)
    async with running_client(bot, fake_discord):
        yield bot


async def test_update_message_and_deferred_update(
    fake_discord: FakeDiscord, panel_bot: PanelBot
) -> None:
    w = fake_discord.world
    ia = await fake_discord.invoke_command("panel", user=w.member)
    message_id = (await ia.wait_response()).message_id
    press = await fake_discord.press_button(message_id, "Update", user=w.moderator)
    update = await press.wait_response()
    assert update.kind == "update" and update.content == f"updated by {w.moderator.id}"
    message = fake_discord.messages[message_id]
    assert message.content == update.content
    assert [b["disabled"] for b in _buttons(message.payload)] == [True, False]
    with pytest.raises(InvocationError, match="disabled"):
        await fake_discord.press_button(message_id, "Update")
    with pytest.raises(InvalidOption, match="no single button"):
        await fake_discord.press_button(message_id, "Nope")

    later = await fake_discord.press_button(message_id, "Later", user=w.member)
    edit, followup = await later.wait_replies(2)
    assert later.callback_type == 6
    assert edit.kind == "edit" and edit.message_id == message_id
    assert message.content == "edited after a deferred update"
    assert followup.ephemeral and followup.message_id != message_id
    fake_discord.assert_no_unknown_requests()


async def test_message_context_menu(fake_discord: FakeDiscord, panel_bot: PanelBot) -> None:
    w = fake_discord.world
    synced = fake_discord.synced_commands[w.guild.id]
    assert {(c["name"], c["type"]) for c in synced} == {("panel", 1), ("Echo", 3)}
    said = await fake_discord.send_message(w.general.id, w.owner, "hello @everyone")
    ia = await fake_discord.invoke_message_command("Echo", said, user=w.member)
    reply = await ia.wait_response()
    assert reply.content == f"{w.owner.id} said: hello @everyone"
    assert not fake_discord.messages[reply.message_id].pings_everyone


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ([{"label": str(i), "custom_id": f"b{i}"} for i in range(6)], "components.0.components"),
        ([{"label": "x", "custom_id": "c" * 101}], "components.0.components.0.custom_id"),
        ([{"label": "y" * 81, "custom_id": "ok"}], "components.0.components.0.label"),
        ([{"label": "a", "custom_id": "same"}, {"label": "b", "custom_id": "same"}], "custom_id"),
    ],
)
async def test_invalid_components_are_refused(
    fake_discord: FakeDiscord, panel_bot: PanelBot, row: list[dict[str, Any]], field: str
) -> None:
    buttons = [{"type": 2, "style": 1, **item} for item in row]
    route = Route(
        "POST", "/channels/{channel_id}/messages", channel_id=fake_discord.world.general.id
    )
    with pytest.raises(discord.HTTPException) as info:
        await panel_bot.http.request(
            route, json={"content": "x", "components": [{"type": 1, "components": buttons}]}
        )
    assert info.value.status == 400 and info.value.code == 50035
    assert field.split(".")[-1] in str(info.value)


def _buttons(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for row in payload["components"] for item in row["components"]]
