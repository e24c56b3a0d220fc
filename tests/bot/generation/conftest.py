from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from bot.generation import model as model_module
from tests.bot.generation.fakemodels import SlowSession, build_bigram

SlowFactory = Callable[..., list[SlowSession]]


@pytest.fixture
def slow_sessions(monkeypatch: pytest.MonkeyPatch) -> SlowFactory:
    """Make every session opened from now on sleep `delay` seconds per run (and fail on demand).

    Returns the list the wrappers are appended to, one per model load.
    """

    def install(delay: float, fail_on: Sequence[int] = ()) -> list[SlowSession]:
        made: list[SlowSession] = []
        real = model_module.create_session

        def create(*args: Any, **kwargs: Any) -> SlowSession:
            session = SlowSession(real(*args, **kwargs), delay, fail_on)
            made.append(session)
            return session

        monkeypatch.setattr(model_module, "create_session", create)
        return made

    return install


@pytest.fixture(scope="session")
def bigram_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hand-built contract model over the vocabulary "\\n", "a", "b", "c" (see fakemodels)."""
    return build_bigram(tmp_path_factory.mktemp("bigram") / "bigram.onnx")
