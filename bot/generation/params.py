"""What a request asks for (`GenerationParams`), what the engine allows (`GenerationLimits`), and
how the engine is set up (`EngineConfig`). Params are separate from the loaded model, as in
onnxruntime-genai: one engine serves requests with different params side by side.

This module is the one table of generation defaults and bounds: the dataclasses' defaults are
the defaults everywhere (the config's `[engine]` and `[generation]` sections take theirs from
here), and `MAX_TEMPERATURE` bounds a request, a channel's setting, the config and the slash
commands alike (the bound itself lives in `models.sampling`, shared with the exporter's `sample`).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Final, Literal, TypeGuard

from bot.errors import InvalidParamsError
from models import sampling
from models.sampling import MAX_TEMPERATURE as MAX_TEMPERATURE  # the bot's public name

Provider = Literal["auto", "cuda", "cpu"]
PROVIDERS: tuple[Provider, ...] = ("auto", "cuda", "cpu")

#: Whether a batch's state stays on the device between steps (ONNX Runtime's IOBinding):
#: "auto" binds under CUDA only; see `bot.generation.device`.
IoBinding = Literal["auto", "on", "off"]
IO_BINDINGS: tuple[IoBinding, ...] = ("auto", "on", "off")

#: Seconds a request may take, queueing included, unless configured otherwise.
REQUEST_TIMEOUT: Final = 60.0

#: Worker threads an engine may run: each holds a session, and more than cores only thrash.
MAX_WORKERS: Final = 64

#: The highest top_k anyone may set. A top_k at or above a model's vocabulary keeps every token,
#: as 0 (off) does; the bound keeps the figure one a person would type (the exporter's word
#: models keep 10,000 words by default).
MAX_TOP_K: Final = 100_000

#: With `clean_end`, how many characters a text may run past its length to finish its last word.
WORD_END_SLACK: Final = 10


def check_temperature(value: object) -> float:
    """`value` as a temperature from 0 to MAX_TEMPERATURE, or `InvalidParamsError`."""
    try:
        return sampling.check_temperature(value)
    except ValueError as exc:
        raise InvalidParamsError(str(exc)) from exc


@dataclass(frozen=True)
class GenerationLimits:
    """Bounds the engine enforces on every request (the config's `[engine]` section sets them)."""

    max_length: int = 1000  # tokens generated per request
    max_prompt: int = 2000  # characters of prompt
    max_stop: int = 8  # stop sequences per request
    max_stop_length: int = 100  # characters per stop sequence


@dataclass(frozen=True)
class GenerationParams:
    """How to generate one text.

    temperature 0 is greedy (argmax); top_k 0 and top_p 1.0 are off; seed None draws fresh
    entropy; generation stops after `max_length` tokens or when the text ends with one of `stop`
    (which is then left out of the text). With `clean_end`, a text whose length runs out inside a
    word finishes that word when it takes at most `WORD_END_SLACK` more characters, and is
    otherwise cut back to its last whitespace; a stop sequence still ends it where it occurs.
    """

    max_length: int = 300
    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    clean_end: bool = False

    def validate(self, limits: GenerationLimits | None = None) -> GenerationParams:
        """Check every field, raising `InvalidParamsError` with a user-facing sentence."""
        limits = limits or GenerationLimits()
        if not _is_int(self.max_length) or not 1 <= self.max_length <= limits.max_length:
            raise InvalidParamsError(
                f"The length must be a whole number from 1 to {limits.max_length}; "
                f"got {self.max_length!r}."
            )
        check_temperature(self.temperature)
        if not _is_int(self.top_k) or not 0 <= self.top_k <= MAX_TOP_K:
            raise InvalidParamsError(
                f"top_k must be a whole number from 0 (off) to {MAX_TOP_K}; got {self.top_k!r}."
            )
        if not _is_real(self.top_p) or not 0.0 < self.top_p <= 1.0:
            raise InvalidParamsError(
                f"top_p must be above 0 and at most 1 (1 is off); got {self.top_p!r}."
            )
        if self.seed is not None and (not _is_int(self.seed) or self.seed < 0):
            raise InvalidParamsError(
                f"The seed must be a whole number of 0 or more; got {self.seed!r}."
            )
        if not isinstance(self.stop, tuple) or not all(isinstance(s, str) for s in self.stop):
            raise InvalidParamsError("Stop sequences must be given as a tuple of texts.")
        if len(self.stop) > limits.max_stop:
            raise InvalidParamsError(
                f"At most {limits.max_stop} stop sequences are allowed; got {len(self.stop)}."
            )
        for s in self.stop:
            if not s or len(s) > limits.max_stop_length:
                raise InvalidParamsError(
                    f"Each stop sequence must have 1 to {limits.max_stop_length} characters."
                )
        return self


def validate_prompt(prompt: str, limits: GenerationLimits | None = None) -> str:
    """Check a prompt's type and length; raise `InvalidParamsError`. An empty prompt is allowed."""
    limits = limits or GenerationLimits()
    if not isinstance(prompt, str):
        raise InvalidParamsError("The prompt must be text.")
    if len(prompt) > limits.max_prompt:
        raise InvalidParamsError(
            f"The prompt is {len(prompt)} characters long; the limit is {limits.max_prompt}."
        )
    return prompt


#: Seconds over which a backend's `stats()` measures its characters per second (`CharRate`).
STATS_WINDOW: Final = 10.0


#: `engine.workers` and `engine.intra_op_threads` sized to the cores (`engine_threads`).
AUTO: Final = "auto"
Auto = Literal["auto"]


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, which `taskset`, cpusets and
    container limits narrow (the machine's count where the platform has no affinity)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def engine_cores() -> int:
    """The cores an engine beside an event loop may keep busy: all usable ones but one, which
    the event loop (Discord, the endpoints, the deliveries) keeps; at least 1."""
    return max(1, usable_cores() - 1)


@dataclass(frozen=True)
class EngineThreads:
    """What an engine runs: `workers` threads, each session run on `intra_op_threads`."""

    workers: int
    intra_op_threads: int
    cores: int  # the cores `auto` was sized to
    auto: bool  # whether either was `auto`

    def __str__(self) -> str:
        text = f"{self.workers} worker(s) of {self.intra_op_threads} thread(s)"
        return f"{text} (auto, sized to {self.cores} core(s))" if self.auto else text


def engine_threads(
    workers: int | Auto, intra_op_threads: int | Auto, cores: int, *, gpu: bool = False
) -> EngineThreads:
    """`auto` workers: one per core (a worker runs its own batch, so they scale with cores), or
    one on a GPU (the device runs a batch at once; more workers would only split it);
    `auto` intra-op threads: the cores each worker has to itself (1 when the workers are auto),
    or 1 on a GPU (which does the work)."""
    per_core = min(MAX_WORKERS, max(1, cores))
    count = (1 if gpu else per_core) if workers == AUTO else workers
    share = 1 if gpu else max(1, cores // count)
    threads = share if intra_op_threads == AUTO else intra_op_threads
    return EngineThreads(count, threads, cores, AUTO in (workers, intra_op_threads))


@dataclass(frozen=True)
class EngineConfig:
    """How the ONNX engine runs. `workers` and `intra_op_threads` default to `auto`: sized to
    `cores`, by default this process's usable cores less one for the event loop
    (`engine_cores`); a model-server replica gives the CPUs Ray reserved for it."""

    provider: Provider = "auto"  # auto: CUDA when ONNX Runtime offers it, else CPU
    workers: int | Auto = AUTO  # worker threads, each running its own batch
    intra_op_threads: int | Auto = AUTO  # per session run: auto gives each worker its cores
    cores: int | None = None  # what `auto` sizes to; None: `engine_cores()`
    max_batch: int = 32  # requests stacked into one model step, per worker
    max_queue: int = 256  # requests waiting for a batch slot; more are refused (EngineBusyError)
    request_timeout: float | None = REQUEST_TIMEOUT  # seconds per request, None = no limit
    drain_timeout: float = 10.0  # seconds close() lets in-flight requests finish
    stats_window: float = STATS_WINDOW  # seconds over which stats() measures characters/s
    stream_interval: float = 0.05  # seconds between deliveries of streamed text (coalescing)
    io_binding: IoBinding = "auto"  # state on the device between steps: CUDA yes, CPU no
    limits: GenerationLimits = field(default_factory=GenerationLimits)

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise ValueError(
                f"provider must be one of {', '.join(PROVIDERS)}; got {self.provider!r}"
            )
        for name in ("workers", "intra_op_threads"):
            value = getattr(self, name)
            if value != AUTO and not (_is_int(value) and value >= 1):
                raise ValueError(f"{name} must be {AUTO!r} or at least 1; got {value!r}")
        if self.max_batch < 1 or (self.cores is not None and self.cores < 1):
            raise ValueError("max_batch and cores must be at least 1")
        if self.threads.workers > MAX_WORKERS:
            raise ValueError(f"workers must be at most {MAX_WORKERS}")
        if self.io_binding not in IO_BINDINGS:
            raise ValueError(
                f"io_binding must be one of {', '.join(IO_BINDINGS)}; got {self.io_binding!r}"
            )
        if self.max_queue < 0:
            raise ValueError("max_queue must be 0 or more")
        if self.request_timeout is not None and self.request_timeout <= 0:
            raise ValueError("request_timeout must be positive (or None for no limit)")
        if self.drain_timeout < 0 or self.stream_interval < 0 or self.stats_window <= 0:
            raise ValueError(
                "drain_timeout and stream_interval must be 0 or more, stats_window positive"
            )

    @functools.cached_property
    def threads(self) -> EngineThreads:
        """The workers and threads this config runs on a CPU, `auto` resolved (once)."""
        return self.threads_on(gpu=False)

    def threads_on(self, *, gpu: bool) -> EngineThreads:
        cores = engine_cores() if self.cores is None else self.cores
        return engine_threads(self.workers, self.intra_op_threads, cores, gpu=gpu)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
