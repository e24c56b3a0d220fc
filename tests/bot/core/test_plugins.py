"""Plugin discovery and loading, without Discord: the bot object is built but never connected."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.config import load_config
from bot.core.plugins import discover_entry_points
from bot.discord.app import CharBot
from bot.errors import PluginError
from bot.runtime import assemble
from bot.settings import SettingsRegistry
from bot.stores import MemoryStore


def test_the_markov_example_is_found_through_its_entry_point() -> None:
    sources = {s.name: s for s in discover_entry_points()}
    assert sources["markov"].module == "charbot_markov.plugin"
    assert "charbot-markov" in sources["markov"].origin


@pytest.fixture
async def offline_bot(tmp_path: Path, tiny_onnx: Path) -> AsyncIterator[CharBot]:
    broken = tmp_path / "broken_plugin.py"
    broken.write_text("async def setup(bot):\n    raise RuntimeError('boom')\n")
    sys.path.insert(0, str(tmp_path))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat. the dog sat on the log.\n" * 5)
    config_path = tmp_path / "charbot.toml"
    config_path.write_text(
        f"""
[plugins]
enabled = ["bot.plugins.temperature", "broken_plugin", "bot.plugins.model"]

[models]
default = "tiny"

[models.tiny]
path = "{tiny_onnx}"

[models.markov]
path = "{corpus}"
backend = "markov"
"""
    )
    config = load_config(config_path, {}, {})
    registry = SettingsRegistry()
    bot = CharBot(assemble(config, MemoryStore(registry), registry))
    yield bot
    await bot.models.close()
    sys.path.remove(str(tmp_path))
    sys.modules.pop("broken_plugin", None)


async def test_a_broken_plugin_is_reported_and_skipped(offline_bot: CharBot) -> None:
    await offline_bot.prepare()
    assert set(offline_bot.loaded_plugins()) == {"temperature", "model", "markov"}
    assert "boom" in offline_bot.plugin_failures["broken_plugin"]
    # The entry-point plugin brought the backend kind the config's second model needs.
    assert offline_bot.models.names == ["markov", "tiny"]
    completion = await offline_bot.models.get("markov").complete("the cat")
    assert completion.text


async def test_plugins_load_only_from_the_config_and_entry_points(offline_bot: CharBot) -> None:
    await offline_bot.prepare()
    for name in ("os", "/tmp/evil.py", "bot.plugins.admin", "../x"):
        with pytest.raises(PluginError, match="no plugin named"):
            await offline_bot.load_plugin(name)


async def test_unload_and_reload_at_run_time(offline_bot: CharBot) -> None:
    await offline_bot.prepare()
    await offline_bot.unload_plugin("temperature")
    assert "temperature" not in offline_bot.loaded_plugins()
    assert "temperature" not in offline_bot.settings_registry
    await offline_bot.load_plugin("temperature")
    await offline_bot.reload_plugin("temperature")
    assert "temperature" in offline_bot.settings_registry
    with pytest.raises(PluginError, match="already loaded"):
        await offline_bot.load_plugin("temperature")
