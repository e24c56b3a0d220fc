"""FakeDiscord against the real discord.py client: startup, commands, messages, faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
import pytest_asyncio
from discord import app_commands
from discord.ext import commands

from bot.testing import (
    CLIENT_KWARGS,
    CommandNotPermitted,
    CommandNotRegistered,
    FakeDiscord,
    InvalidOption,
    running_client,
)


class Sampling(commands.GroupCog, group_name="sampling"):
    """Sampling settings."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object, object]] = []
        self.edit_errors: list[int] = []

    @app_commands.command(name="set")
    @app_commands.describe(temperature="0 is greedy", note="optional note")
    async def set_temperature(
        self,
        interaction: discord.Interaction,
        temperature: app_commands.Range[float, 0.0, 2.0],
        note: str | None = None,
    ) -> None:
        """Set the temperature."""
        self.calls.append(("set", temperature, note))
        await interaction.response.send_message(f"temperature={temperature}", ephemeral=True)

    @app_commands.command(name="generate")
    async def generate(
        self, interaction: discord.Interaction, length: app_commands.Range[int, 1, 100] = 10
    ) -> None:
        """Generate some text."""
        self.calls.append(("generate", length, interaction.user.id))
        await interaction.response.defer(thinking=True)
        await asyncio.sleep(0.01)  # stands in for the worker pool
        try:
            await interaction.edit_original_response(
                content="x" * length, allowed_mentions=discord.AllowedMentions.none()
            )
        except discord.HTTPException as exc:
            self.edit_errors.append(exc.status)


class Moderation(commands.Cog):
    # default_permissions only reaches Discord on top-level commands (or a GroupCog's class
    # kwargs): discord.py leaves it out of subcommands.
    @app_commands.command(name="purge")
    @app_commands.default_permissions(manage_channels=True)
    async def purge(self, interaction: discord.Interaction) -> None:
        """Moderators only."""
        await interaction.response.send_message("purged")


class EchoBot(commands.Bot):
    def __init__(self, guild_id: int) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            **CLIENT_KWARGS,
        )
        self.guild_id = guild_id
        self.seen: list[discord.Message] = []

    async def setup_hook(self) -> None:
        await self.add_cog(Sampling())
        await self.add_cog(Moderation())
        guild = discord.Object(self.guild_id)
        self.tree.copy_global_to(guild=guild)
        await self.tree.sync(guild=guild)

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot:
            return
        self.seen.append(message)
        assert self.user is not None
        if self.user in message.mentions:
            async with message.channel.typing():
                await message.reply(
                    f"you said: {message.content}",
                    allowed_mentions=discord.AllowedMentions.none(),
                )

    @property
    def sampling(self) -> Sampling:
        cog = self.get_cog("Sampling")
        assert isinstance(cog, Sampling)
        return cog


@pytest_asyncio.fixture
async def bot(fake_discord: FakeDiscord) -> AsyncIterator[EchoBot]:
    client = EchoBot(fake_discord.world.guild.id)
    async with running_client(client, fake_discord):
        yield client


@pytest.mark.asyncio
async def test_connect_ready_and_guild_available(fake_discord: FakeDiscord, bot: EchoBot) -> None:
    w = fake_discord.world
    guild = bot.get_guild(w.guild.id)
    assert guild is not None and not guild.unavailable
    assert {c.name for c in guild.text_channels} == {"general", "random"}
    assert guild.me.id == w.bot.id
    assert bot.user is not None and bot.user.id == w.bot.id
    assert await bot.is_owner(discord.Object(w.owner.id))  # type: ignore[arg-type]
    assert not await bot.is_owner(discord.Object(w.member.id))  # type: ignore[arg-type]
    await fake_discord.wait_until(lambda: fake_discord.heartbeats, what="a heartbeat")
    assert (fake_discord.connection_count, fake_discord.identify_count) == (1, 1)
    routes = [(r.method, r.route) for r in fake_discord.requests]
    assert routes[:2] == [("GET", "/users/@me"), ("GET", "/oauth2/applications/@me")]
    assert ("PUT", "/applications/{app_id}/guilds/{guild_id}/commands") in routes
    fake_discord.assert_no_unknown_requests()


@pytest.mark.asyncio
async def test_sync_schema_and_typed_invocation(fake_discord: FakeDiscord, bot: EchoBot) -> None:
    w = fake_discord.world
    synced = {c["name"]: c for c in fake_discord.synced_commands[w.guild.id]}
    assert set(synced) == {"sampling", "purge"}
    assert synced["purge"]["default_member_permissions"] == str(1 << 4)
    subs = {o["name"]: o for o in synced["sampling"]["options"]}
    assert set(subs) == {"set", "generate"}
    temperature = subs["set"]["options"][0]
    assert (temperature["type"], temperature["min_value"], temperature["max_value"]) == (10, 0, 2)

    ia = await fake_discord.invoke_command(
        "sampling set", {"temperature": 1.5, "note": "hi"}, user=w.moderator
    )
    reply = await ia.wait_response(timeout=3)
    assert (reply.kind, reply.content, reply.ephemeral) == ("message", "temperature=1.5", True)
    assert bot.sampling.calls == [("set", 1.5, "hi")]
    # An integer JSON value for a number option still arrives as float.
    ia = await fake_discord.invoke_command("sampling", {"temperature": 2}, subcommand="set")
    assert (await ia.wait_response()).content == "temperature=2.0"


@pytest.mark.asyncio
async def test_defer_then_edit_original(fake_discord: FakeDiscord, bot: EchoBot) -> None:
    ia = await fake_discord.invoke_command("sampling generate", {"length": 5})
    reply = await ia.wait_response(timeout=3)
    assert ia.callback_type == 5
    assert (reply.kind, reply.content, reply.ephemeral) == ("edit", "xxxxx", False)
    assert reply.allowed_mentions == {"parse": []}
    actions = [a.action for a in fake_discord.interaction_responses]
    assert actions == ["callback", "edit_original"]
    assert bot.sampling.calls == [("generate", 5, fake_discord.world.member.id)]


@pytest.mark.asyncio
async def test_invocations_discord_would_not_send(fake_discord: FakeDiscord, bot: EchoBot) -> None:
    w = fake_discord.world
    with pytest.raises(CommandNotRegistered):
        await fake_discord.invoke_command("temperature", {})
    with pytest.raises(CommandNotRegistered):
        await fake_discord.invoke_command("sampling reset")
    with pytest.raises(CommandNotRegistered, match="needs a subcommand"):
        await fake_discord.invoke_command("sampling")
    with pytest.raises(InvalidOption, match="expected float"):
        await fake_discord.invoke_command("sampling set", {"temperature": "hot"})
    with pytest.raises(InvalidOption, match="within"):
        await fake_discord.invoke_command("sampling set", {"temperature": 2.5})
    with pytest.raises(InvalidOption, match="missing"):
        await fake_discord.invoke_command("sampling set", {"note": "x"})
    with pytest.raises(InvalidOption, match="unknown option"):
        await fake_discord.invoke_command("sampling set", {"temperature": 1.0, "top_k": 3})
    with pytest.raises(CommandNotPermitted):
        await fake_discord.invoke_command("purge", user=w.member)
    assert fake_discord.interactions == []
    ia = await fake_discord.invoke_command("purge", user=w.moderator)
    assert (await ia.wait_response()).content == "purged"


@pytest.mark.asyncio
async def test_mention_reaches_on_message_and_reply_is_recorded(
    fake_discord: FakeDiscord, bot: EchoBot
) -> None:
    w = fake_discord.world
    plain = await fake_discord.send_message(w.general.id, w.member, "no mention here")
    msg_id = await fake_discord.send_message(w.general.id, w.member, f"{w.bot.mention} hello")
    sent = await fake_discord.wait_for_message(w.general.id, after=msg_id)
    assert sent.content == f"you said: {w.bot.mention} hello"
    assert sent.allowed_mentions == {"parse": []}
    assert sent.message_reference is not None
    assert int(sent.message_reference["message_id"]) == msg_id
    assert sent.pings == frozenset()  # <@bot> in the echo does not ping anyone
    # Without the message-content intent only the mentioning message carries content.
    by_id = {m.id: m.content for m in bot.seen}
    assert by_id == {plain: "", msg_id: f"{w.bot.mention} hello"}
    assert fake_discord.typing == [w.general.id]


@pytest.mark.asyncio
async def test_drop_gateway_resumes_without_losing_events(
    fake_discord: FakeDiscord, bot: EchoBot
) -> None:
    w = fake_discord.world
    resumed = asyncio.Event()

    async def on_resumed() -> None:
        resumed.set()

    bot.add_listener(on_resumed)
    await fake_discord.drop_gateway(code=None, wait_resume=False)  # cut TCP
    # Sent while the bot is disconnected: delivered on RESUME, exactly once.
    msg_id = await fake_discord.send_message(w.random.id, w.owner, f"{w.bot.mention} still there?")
    await fake_discord.wait_until(lambda: fake_discord.resume_count == 1, what="RESUME")
    await asyncio.wait_for(resumed.wait(), 3)
    await fake_discord.wait_for_message(w.random.id, after=msg_id)

    await fake_discord.drop_gateway()  # close 4000: resumable
    assert (fake_discord.identify_count, fake_discord.resume_count) == (1, 2)
    assert fake_discord.connection_count == 3
    ia = await fake_discord.invoke_command("sampling set", {"temperature": 0.0})
    assert (await ia.wait_response()).content == "temperature=0.0"
    await asyncio.sleep(0.1)
    assert [m.channel_id for m in fake_discord.sent_messages if m.via == "channel"] == [w.random.id]


@pytest.mark.asyncio
async def test_429_with_via_is_retried(fake_discord: FakeDiscord, bot: EchoBot) -> None:
    fault = fake_discord.fail_next("PATCH", "/webhooks/*/messages/@original", retry_after=0.05)
    ia = await fake_discord.invoke_command("sampling generate", {"length": 3})
    assert (await ia.wait_response()).content == "xxx"
    assert fault.hits == 1
    edits = [r.status for r in fake_discord.requests if r.method == "PATCH"]
    assert edits == [429, 200]


@pytest.mark.asyncio
async def test_expired_token_edit_is_refused(fake_discord: FakeDiscord, bot: EchoBot) -> None:
    fake_discord.fail_next(
        "PATCH", "/webhooks/*/messages/@original", 404, code=10015, message="Unknown Webhook"
    )
    ia = await fake_discord.invoke_command("sampling generate", {"length": 3})
    await fake_discord.wait_until(lambda: bot.sampling.edit_errors, what="the failed edit")
    assert bot.sampling.edit_errors == [404]
    assert ia.replies == []


@pytest.mark.asyncio
async def test_raw_http_contract(fake_discord: FakeDiscord) -> None:
    """Content-Type exactly application/json, auth, 404 for unknown routes, Discord's 400s."""
    base, auth = fake_discord.api_base, {"Authorization": f"Bot {fake_discord.token}"}
    channel = fake_discord.world.general.id
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/users/@me", headers=auth) as resp:
            assert resp.headers["Content-Type"] == "application/json"
            assert (await resp.json())["id"] == str(fake_discord.world.bot.id)
        async with http.get(f"{base}/users/@me") as resp:
            assert resp.status == 401
        async with http.post(f"{base}/nope/route", headers=auth) as resp:
            assert resp.status == 404
            assert "no route POST /nope/route" in (await resp.json())["message"]
        url = f"{base}/channels/{channel}/messages"
        async with http.post(url, headers=auth, json={"content": "x" * 2001}) as resp:
            body: dict[str, Any] = await resp.json()
            assert resp.status == 400 and body["code"] == 50035
            assert "content" in json.dumps(body["errors"])
        async with http.post(url, headers=auth, json={"content": ""}) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == 50006
        form = aiohttp.FormData()
        form.add_field("payload_json", json.dumps({"content": "file"}))
        form.add_field("files[0]", b"abc", filename="a.txt", content_type="text/plain")
        async with http.post(url, headers=auth, data=form) as resp:
            assert (await resp.json())["attachments"][0]["filename"] == "a.txt"
        async with http.get(f"{base}/channels/not-a-number", headers=auth) as resp:
            assert resp.status == 404
    unknown = [r.path for r in fake_discord.unknown_requests]
    assert unknown == ["/nope/route", "/channels/not-a-number"]
    assert [(m.content, m.files) for m in fake_discord.sent_messages] == [("file", ["a.txt"])]


@pytest.mark.asyncio
async def test_sharded_client_with_members_intent(fake_discord: FakeDiscord) -> None:
    """AutoShardedClient asks GET /gateway/bot; the members intent makes it chunk (op 8)."""
    intents = discord.Intents.default()
    intents.members = True
    client = discord.AutoShardedClient(intents=intents, **CLIENT_KWARGS)
    async with running_client(client, fake_discord):
        guild = client.get_guild(fake_discord.world.guild.id)
        assert guild is not None and guild.chunked
        assert {m.name for m in guild.members} == {u.username for u in fake_discord.world.users}
    assert any(r.path == "/gateway/bot" for r in fake_discord.requests)
    assert any(p.get("op") == 8 for p in fake_discord.gateway.received)
    fake_discord.assert_no_unknown_requests()


class RawGateway:
    """A hand-driven gateway client, to check the protocol without discord.py's retries."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def recv(self) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=2)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        data: dict[str, Any] = json.loads(msg.data)
        return data

    async def identify(self, token: str, intents: int = 513) -> list[dict[str, Any]]:
        await self.ws.send_json({"op": 2, "d": {"token": token, "intents": intents}})
        return [await self.recv(), await self.recv()]


@pytest.mark.asyncio
async def test_raw_gateway_protocol_and_interaction_errors() -> None:
    async with (
        FakeDiscord(callback_deadline=0.2, privileged_intents=0) as server,
        aiohttp.ClientSession() as http,
    ):
        async with http.ws_connect(server.gateway_url) as ws:
            gw = RawGateway(ws)
            assert (await gw.recv())["op"] == 10
            await ws.send_json({"op": 2, "d": {"token": "wrong", "intents": 0}})
            assert (await ws.receive()).data == 4004
        async with http.ws_connect(server.gateway_url) as ws:
            gw = RawGateway(ws)
            await gw.recv()
            await ws.send_json({"op": 2, "d": {"token": server.token, "intents": 1 << 15}})
            assert (await ws.receive()).data == 4014  # message content not enabled
        async with http.ws_connect(server.gateway_url) as ws:
            gw = RawGateway(ws)
            await gw.recv()
            ready, guild = await gw.identify(server.token)
            assert (ready["t"], ready["s"], guild["t"], guild["s"]) == (
                "READY",
                1,
                "GUILD_CREATE",
                2,
            )
            await ws.send_json({"op": 1, "d": 2})
            assert (await gw.recv())["op"] == 11
            server.seed_commands(
                [{"name": "ping", "description": "Ping.", "options": []}],
                guild_id=server.world.guild.id,
            )
            ia = await server.invoke_command("ping")
            event = await gw.recv()
            assert (event["t"], event["s"], event["d"]["data"]["name"]) == (
                "INTERACTION_CREATE",
                3,
                "ping",
            )
            assert event["d"]["member"]["permissions"] == str(
                server.world.guild.base_permissions(server.world.member.id)
            )
            base = server.api_base
            hook = f"{base}/webhooks/{server.world.application_id}/{ia.token}"
            async with http.post(hook, json={"content": "too early"}) as resp:
                assert (resp.status, (await resp.json())["code"]) == (404, 10015)
            callback = f"{base}/interactions/{ia.id}/{ia.token}/callback?with_response=1"
            async with http.post(callback, json={"type": 5}) as resp:
                body = await resp.json()
                assert body["interaction"]["response_message_loading"] is True
            async with http.post(callback, json={"type": 4, "data": {"content": "x"}}) as resp:
                assert (resp.status, (await resp.json())["code"]) == (400, 40060)
            # The first followup after a defer replaces the "thinking" message.
            async with http.post(hook + "?wait=1", json={"content": "done"}) as resp:
                assert (await resp.json())["id"] == str(ia.original_message_id)
            reply = await ia.wait_response()
            assert (reply.kind, reply.content) == ("followup", "done")

            late = await server.invoke_command("ping")
            await asyncio.sleep(0.25)
            callback = f"{base}/interactions/{late.id}/{late.token}/callback?with_response=1"
            async with http.post(callback, json={"type": 4, "data": {"content": "x"}}) as resp:
                assert (resp.status, (await resp.json())["code"]) == (404, 10062)
            assert late.error is not None and "deadline" in late.error
            await ws.close(code=4000)  # a close with 1000 would end the session

        # Events dispatched while disconnected are replayed on RESUME with their sequence.
        session_id = ready["d"]["session_id"]
        msg_id = await server.send_message(
            server.world.general.id, server.world.member, f"{server.world.bot.mention} hi"
        )
        async with http.ws_connect(ready["d"]["resume_gateway_url"]) as ws:
            gw = RawGateway(ws)
            await gw.recv()
            await ws.send_json(
                {"op": 6, "d": {"token": server.token, "session_id": session_id, "seq": 2}}
            )
            replay = [await gw.recv() for _ in range(6)]
            assert [(e["t"], e["s"]) for e in replay] == [
                ("INTERACTION_CREATE", 3),
                ("MESSAGE_CREATE", 4),  # the deferred "thinking" message
                ("MESSAGE_UPDATE", 5),  # ...replaced by the followup
                ("INTERACTION_CREATE", 6),
                ("MESSAGE_CREATE", 7),  # sent while disconnected
                ("RESUMED", 8),
            ]
            assert replay[4]["d"]["id"] == str(msg_id)
        assert server.resume_count == 1
