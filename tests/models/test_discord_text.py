"""The one rule for a Discord message as model text, shared by the exporter and the bot."""

from __future__ import annotations

from models.discord_text import DiscordNames, message_text

NAMES = DiscordNames(
    users={"111": "Alice", "222": "Bob B."}, roles={"333": "mods"}, channels={"444": "general"}
)


def test_mentions_become_names_and_emoji_their_shortcode() -> None:
    content = "<@111> and <@!222>: <@&333> in <#444> <:pepe:123456> <a:dance_2:99>!"
    assert message_text(content, NAMES) == "@Alice and @Bob B.: @mods in #general :pepe: :dance_2:!"


def test_ids_nobody_named_become_neutral() -> None:
    assert message_text("<@9> <@&9> <#9>") == "@user @role #channel"


def test_everything_else_is_left_as_written() -> None:
    content = "**bold** \\*not\\* <:broken:x> <@abc> @everyone\nline two  https://example.org"
    assert message_text(content, NAMES) == content
