"""What a setting fills, declared by the plugin owning it: the completion service reads the
declarations and names no key."""

from __future__ import annotations

import pytest

from bot.api import MODEL, CompletionService, ModelRegistry, SettingsRegistry
from bot.config import GenerationSection
from bot.settings import SettingRegistrationError
from bot.stores import MemoryStore

CHANNEL = 7


def test_a_declaration_names_a_real_field_and_one_key_fills_each() -> None:
    registry = SettingsRegistry()
    registry.register_channel("warmth", default=None, owner="a", fills="temperature")
    with pytest.raises(SettingRegistrationError, match="cannot fill 'heat'; it may fill"):
        registry.register_channel("heat", default=None, owner="b", fills="heat")
    with pytest.raises(SettingRegistrationError, match="'warmth' already fills 'temperature'"):
        registry.register_channel("heat", default=None, owner="b", fills="temperature")
    # The owner registering again (an extension reload) is fine.
    registry.register_channel("warmth", default=None, owner="a", fills="temperature")
    assert registry.key_filling("temperature") == "warmth"
    assert registry.param_keys() == {"warmth": "temperature"}


async def test_the_completion_service_follows_the_declarations() -> None:
    registry = SettingsRegistry()
    registry.register_channel("voice", default=None, owner="a", fills=MODEL)
    registry.register_channel("warmth", default=None, owner="a", fills="temperature")
    registry.register_channel("filter", default=None, owner="b", fills="top_k")
    registry.register_channel("note", default=None, owner="c")  # fills nothing
    store = MemoryStore(registry)
    defaults = GenerationSection(temperature=0.5, top_k=0, length=60)
    service = CompletionService(store, ModelRegistry(), defaults, "house")

    plain = await service.channel_params(CHANNEL)
    assert (plain.temperature, plain.top_k, plain.max_length, plain.clean_end) == (
        0.5,
        0,
        60,
        True,
    )
    assert await service.channel_model(CHANNEL) == "house"

    for key, value in (("voice", "bard"), ("warmth", 1.2), ("filter", 5), ("note", "hi")):
        await store.set(CHANNEL, key, value)
    own = await service.channel_params(CHANNEL)
    assert (own.temperature, own.top_k, own.max_length) == (1.2, 5, 60)
    assert await service.channel_model(CHANNEL) == "bard"
    # The call's own option beats the channel's.
    call = await service.channel_params(CHANNEL, temperature=0.0, length=9)
    assert (call.temperature, call.max_length) == (0.0, 9)
