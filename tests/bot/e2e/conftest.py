"""End-to-end fixtures: the real bot, with the real discord.py client, against FakeDiscord."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config, load_config
from bot.discord.app import CharBot
from bot.generation.params import GenerationParams
from bot.testing import FakeDiscord, discord_env, running_bot

MARKOV_CORPUS = "Hear ye, @everyone! The king is dead. Long live the king, @everyone!\n" * 20


def write_config(tmp_path: Path, server: FakeDiscord, tiny_onnx: Path, **sections: str) -> Path:
    # The config serves the Markov example's model too: without the example, skip (not fail).
    pytest.importorskip(
        "charbot_markov", reason="needs the Markov example: pip install -e examples/markov"
    )
    corpus = tmp_path / "markov.txt"
    corpus.write_text(MARKOV_CORPUS)
    w = server.world
    text = f"""
[discord]
test_guild_id = {w.guild.id}
owner_ids = [{w.owner.id}]
cooldown_seconds = 0.0

[engine]
workers = 1
timeout_seconds = 30.0

[generation]
length = 40

[models]
default = "tiny"

[models.tiny]
path = "{tiny_onnx}"

[models.markov]
path = "{corpus}"
backend = "markov"

[store]
path = "{tmp_path / "settings.sqlite3"}"
"""
    for name, body in sections.items():
        text += f"\n[{name}]\n{body}\n"
    path = tmp_path / "charbot.toml"
    path.write_text(text)
    return path


def bot_config(path: Path, server: FakeDiscord) -> Config:
    return load_config(path, discord_env(server), {})


_IN_STREAM: contextvars.ContextVar[bool] = contextvars.ContextVar("in_stream", default=False)


class ParamSpy:
    """Records what reaches each backend: (model, channel prompt, params)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, GenerationParams]] = []

    def attach(self, bot: CharBot) -> None:
        """Wrap `complete` (mentions) and `stream` (/complete) of every backend."""
        for name, backend in bot.models.items():
            original = backend.complete
            original_stream = backend.stream

            async def spy(
                prompt: str,
                params: GenerationParams | None = None,
                *,
                _name: str = name,
                _original: Any = original,
                **kwargs: Any,
            ) -> Any:
                assert params is not None
                if not _IN_STREAM.get():  # a backend whose stream calls its own complete
                    self.calls.append((_name, prompt, params))
                return await _original(prompt, params, **kwargs)

            async def spy_stream(
                prompt: str,
                params: GenerationParams | None = None,
                *,
                _name: str = name,
                _original: Any = original_stream,
                **kwargs: Any,
            ) -> AsyncIterator[Any]:
                assert params is not None
                self.calls.append((_name, prompt, params))
                token = _IN_STREAM.set(True)
                try:
                    async for chunk in _original(prompt, params, **kwargs):
                        yield chunk
                finally:
                    _IN_STREAM.reset(token)

            backend.complete = spy  # type: ignore[method-assign]
            backend.stream = spy_stream  # type: ignore[method-assign]


RunBot = Callable[..., contextlib.AbstractAsyncContextManager[CharBot]]


@pytest.fixture
def run_bot(fake_discord: FakeDiscord, tmp_path: Path, tiny_onnx: Path) -> RunBot:
    """`async with run_bot() as bot:` a connected CharBot; the same store on every call."""
    path = write_config(tmp_path, fake_discord, tiny_onnx)

    @contextlib.asynccontextmanager
    async def run(config_path: Path = path) -> AsyncIterator[CharBot]:
        async with running_bot(fake_discord, config_path) as bot:
            yield bot

    return run
