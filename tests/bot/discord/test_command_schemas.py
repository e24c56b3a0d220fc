"""Every declared command's Discord schema is its declaration (`bot.core.commands`): names, help,
options, bounds and choices, whether the table built the slash command or a cog did. The two
surfaces cannot drift."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.api import Channel, Command, CommandError, CommandGroup, Option
from bot.config import load_config
from bot.discord.app import CharBot
from bot.runtime import assemble
from bot.settings import SettingsRegistry
from bot.stores import MemorySettingsStore

#: Discord's option types: string, integer, channel, number.
OPTION_TYPES = {str: 3, int: 4, Channel: 7, float: 10}


@pytest.fixture
async def bot(tmp_path: Path, tiny_onnx: Path) -> AsyncIterator[CharBot]:
    """The bot with every built-in plugin and the Markov example loaded, never connected."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat. the dog sat on the log.\n" * 5)
    path = tmp_path / "charbot.toml"
    path.write_text(
        f'[engine]\nmax_length = 700\nmax_prompt_chars = 500\n[models]\ndefault = "tiny"\n'
        f'[models.tiny]\npath = "{tiny_onnx}"\n'
        f'[models.chain]\npath = "{corpus}"\nbackend = "markov"\n'
    )
    registry = SettingsRegistry()
    built = CharBot(assemble(load_config(path, {}, {}), MemorySettingsStore(registry), registry))
    await built.prepare()
    yield built
    await built.services.close()


def declared_option(option: Option) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "name": option.name,
        "description": option.help,
        "type": OPTION_TYPES[option.type],
        "required": option.required,
    }
    if option.choices:
        schema["choices"] = [{"name": c, "value": c} for c in option.choices]
    prefix = "length" if option.type is str else "value"
    for bound, value in (("min", option.min), ("max", option.max)):
        if value is not None:
            schema[f"{bound}_{prefix}"] = value
    if option.suggest is not None:
        schema["autocomplete"] = True
    if option.channel_types:
        schema["channel_types"] = sorted(option.channel_types)
    return schema


def declared(command: Command) -> dict[str, Any]:
    # Discord lists the required options first; discord.py orders them so.
    options = sorted(command.options, key=lambda o: not o.required)
    return {
        "name": command.name,
        "description": command.help,
        "options": [declared_option(o) for o in options],
    }


def shown(schema: dict[str, Any]) -> dict[str, Any]:
    """What Discord shows of a command, in the declaration's terms."""
    keys = ("name", "description", "type", "choices", "min_value", "max_value")
    options = []
    for option in schema.get("options", []):
        kept = {k: option[k] for k in (*keys, "min_length", "max_length") if k in option}
        kept["required"] = option.get("required", False)
        if option.get("autocomplete"):
            kept["autocomplete"] = True
        if option.get("channel_types"):
            kept["channel_types"] = sorted(option["channel_types"])
        options.append(kept)
    return {"name": schema["name"], "description": schema["description"], "options": options}


async def test_every_declared_command_is_on_discord_as_declared(bot: CharBot) -> None:
    entries = bot.services.commands.entries()
    names = {entry.name for entry in entries}
    assert {"temperature", "settings", "model", "complete", "admin", "markov", "training"} <= names
    for entry in entries:
        app_command = bot.tree.get_command(entry.name)
        assert app_command is not None, f"/{entry.name} is declared but not on Discord"
        schema = app_command.to_dict(bot.tree)
        if isinstance(entry, CommandGroup):
            assert schema["description"] == entry.help
            subcommands = {s["name"]: s for s in schema["options"]}
            assert list(subcommands) == [c.name for c in entry.commands]
            for command in entry.commands:
                assert shown(subcommands[command.name]) == declared(command), entry.name
        else:
            assert shown(schema) == declared(entry)
    # The configured bounds reach Discord's schema.
    complete = bot.tree.get_command("complete")
    assert complete is not None
    options = {o["name"]: o for o in complete.to_dict(bot.tree)["options"]}
    assert (options["length"]["max_value"], options["prompt"]["max_length"]) == (700, 500)


async def test_every_slash_command_is_declared(bot: CharBot) -> None:
    """No slash command escapes the table (the console's help lists them all)."""
    slash = {c.name for c in bot.tree.get_commands() if c.to_dict(bot.tree).get("type") == 1}
    assert slash == {entry.name for entry in bot.services.commands.entries()}


async def test_an_unloaded_plugin_takes_its_commands_along(bot: CharBot) -> None:
    await bot.unload_plugin("temperature")
    assert bot.tree.get_command("temperature") is None
    assert bot.services.commands.get("temperature") is None
    await bot.load_plugin("temperature")
    assert bot.tree.get_command("temperature") is not None
    await bot.reload_plugin("model")
    assert bot.tree.get_command("model") is not None


def test_a_channel_option_takes_a_channel_id() -> None:
    option = Option("channel", Channel, "A channel", channel_types=(0, 15))
    assert option.check(123) == Channel(123) and isinstance(option.check(123), Channel)
    assert option.parse("<#456>") == 456 and option.parse("789") == 789
    for bad in (True, 0, "123", 1.5):
        with pytest.raises(CommandError, match="The channel must be a channel"):
            option.check(bad)
    with pytest.raises(CommandError, match="got 'general'"):
        option.parse("general")
