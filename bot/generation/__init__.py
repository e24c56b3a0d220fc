"""Text generation: the ONNX char-RNN engine, its sampling and batching worker pool, and the
`GenerationBackend` interface other backends implement.

    engine = await Engine.start(path, EngineConfig(workers=2))
    completion = await engine.complete("ROMEO:", GenerationParams(temperature=0.5, seed=1))
    async for chunk in engine.stream("JULIET:", GenerationParams(max_length=200)):
        ...
    await engine.close()
"""

from bot.generation.backend import (
    BackendStats,
    Completion,
    FinishReason,
    GenerationBackend,
    ModelInfo,
    StreamChunk,
)
from bot.generation.engine import Engine
from bot.generation.model import LoadedModel, load_model
from bot.generation.params import (
    EngineConfig,
    GenerationLimits,
    GenerationParams,
    Provider,
    validate_prompt,
)

__all__ = [
    "BackendStats",
    "Completion",
    "Engine",
    "EngineConfig",
    "FinishReason",
    "GenerationBackend",
    "GenerationLimits",
    "GenerationParams",
    "LoadedModel",
    "ModelInfo",
    "Provider",
    "StreamChunk",
    "load_model",
    "validate_prompt",
]
