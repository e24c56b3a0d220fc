"""`/model show|use` and `/complete`'s schema, without Discord: what the commands build."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.api import MESSAGE_LIMIT, Context
from bot.config import load_config
from bot.core.services import Services
from bot.generation.backend import Completion, ModelInfo
from bot.plugins.model import describe_model, show_model, usable_models, use_model
from bot.plugins.replies import format_completion
from bot.runtime import assemble, build_bot
from bot.settings import InvalidSettingError, SettingsRegistry
from bot.stores import MemoryStore
from models import BUNDLED_MODEL


@pytest.fixture
async def services(tmp_path: Path, tiny_onnx: Path) -> AsyncIterator[Services]:
    """`tiny` loads; `lost` is configured but its file is missing."""
    path = tmp_path / "charbot.toml"
    path.write_text(
        f'[models]\ndefault = "tiny"\n[models.tiny]\npath = "{tiny_onnx}"\n'
        f'[models.lost]\npath = "{tmp_path / "lost.onnx"}"\n'
    )
    registry = SettingsRegistry()
    services = assemble(load_config(path, {}, {}), MemoryStore(registry), registry)
    services.register_plugins()
    await services.start_models()
    yield services
    await services.close()


async def test_a_model_that_failed_to_load_is_refused(services: Services) -> None:
    console = Context(services, 7, markdown=False)
    with pytest.raises(InvalidSettingError) as caught:
        await use_model(console, "lost")
    lost = services.config.models.models["lost"].path
    assert str(caught.value) == (
        f"Model 'lost' is not available: The model file {lost} does not exist. Choose one of: tiny."
    )
    assert usable_models(services) == ["tiny"]  # what autocomplete offers
    assert await use_model(console, "tiny") == "This channel now uses tiny."
    assert await use_model(Context(services, 7), "tiny") == "This channel now uses **tiny**."
    assert "tiny" in await show_model(console)


async def test_the_bundled_model_missing_from_a_config_says_how_to_keep_it(
    services: Services,
) -> None:
    with pytest.raises(InvalidSettingError, match="no model named 'shakespeare'") as caught:
        await use_model(Context(services, 7), "shakespeare")
    assert f'[models.shakespeare] path = "{BUNDLED_MODEL}"' in str(caught.value)


def test_model_show_summarises_a_long_provenance() -> None:
    files: list[dict[str, Any]] = [
        {"name": f"lyrics-{i:03d}-{'x' * 30}.txt", "characters": 20_000} for i in range(150)
    ]
    info = ModelInfo(
        name="lyrics",
        kind="onnx",
        description="char-level LSTM, 2 × 256 units",
        parameters=876_929,
        vocab_size=98,
        training={
            "corpus": ", ".join(f["name"] for f in files),  # as the exporter writes it
            "files": files,
            "characters": 3_000_000,
            "steps": 12_000,
            "seconds": 900.4,
            "best_val_loss": 1.46171,
        },
    )
    text = describe_model(info)
    assert len(text) < MESSAGE_LIMIT
    assert text.splitlines()[-1] == (
        "Training: corpus 150 files, 3,000,000 characters, 12,000 steps, 900 s, "
        "best validation loss 1.4617"
    )
    one_long_name = describe_model(ModelInfo("m", "onnx", "x", training={"corpus": "y" * 5000}))
    assert len(one_long_name) < 200


async def test_complete_advertises_the_configured_bounds(tmp_path: Path) -> None:
    overrides = {"engine.max_length": 700, "engine.max_prompt_chars": 500}
    bot = await build_bot(load_config(None, {"CHARBOT_DATA_DIR": str(tmp_path)}, overrides))
    try:
        await bot.load_extension("bot.plugins.completion")
        command = bot.tree.get_command("complete")
        assert command is not None
        options = {o["name"]: o for o in command.to_dict(bot.tree)["options"]}
    finally:
        await bot.services.close()
    assert options["length"]["max_value"] == 700
    assert options["prompt"]["max_length"] == 500
    assert options["temperature"]["max_value"] == 2.0


def test_the_unknown_pieces_note_on_discord_lists_them_apart_without_repr() -> None:
    done = Completion("text", "To be", 4, "length", ("\\", "*", "\\"), "m", 0.1)
    shown = format_completion(done)
    # Markdown-escaped once, so Discord shows “\”, “*”; no repr quoting, no doubled escapes.
    assert shown.endswith("\n-# The model does not know “\\\\”, “\\*”: they were left out.")
    replaced = format_completion(dataclasses.replace(done, unknown=("qqq",), unknown_token="<unk>"))
    assert replaced.endswith("-# The model does not know “qqq”: it became <unk>.")
