"""The bot's Prometheus metrics, on a registry of its own (never the process-global one: tests and
several bots in one process must not share counters).

Counted where things happen: completions by outcome (`CompletionService`), the engine's queue
and generation times and batch sizes (it is the engine's `EngineObserver`), plugin load failures.
Read when scraped: queue depth, active requests and characters from each backend's `stats()`,
settings-store errors from the store, each shard's gateway state from the Discord client.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from bot.errors import EngineBusyError, InvalidParamsError, RequestTimeoutError
from bot.generation.registry import ModelRegistry
from bot.stores.base import Store

__all__ = ["CONTENT_TYPE_LATEST", "OUTCOMES", "Metrics", "Outcome", "ShardState"]

Outcome = Literal["ok", "busy", "invalid", "timeout", "error"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("ok", "busy", "invalid", "timeout", "error")

#: Seconds: from a few milliseconds in the queue to the default request timeout.
TIME_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Requests per model step: powers of two up to a large `engine.max_batch`.
BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass(frozen=True)
class ShardState:
    connected: bool
    latency: float  # seconds; not finite before the first heartbeat is acknowledged


#: The shards this process owns, by id, as the Discord client sees them now.
ShardReader = Callable[[], Mapping[int, ShardState]]


class Metrics:
    """Every metric of one bot. `models` and `store` are read at scrape time; the gateway joins
    with `watch_gateway` once there is a Discord client."""

    def __init__(
        self,
        models: ModelRegistry | None = None,
        store: Store | None = None,
        configured_models: Iterable[str] = (),
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.completions = Counter(
            "charbot_completions",
            "Completions by model and outcome (ok, busy, invalid, timeout, error).",
            ["model", "outcome"],
            registry=r,
        )
        self.queue_wait = Histogram(
            "charbot_queue_wait_seconds",
            "Time a request waited in the engine's queue before joining a batch.",
            ["model"],
            buckets=TIME_BUCKETS,
            registry=r,
        )
        self.generation = Histogram(
            "charbot_generation_seconds",
            "Time from joining a batch to the last token of a finished request.",
            ["model"],
            buckets=TIME_BUCKETS,
            registry=r,
        )
        self.plugin_failures = Counter(
            "charbot_plugin_load_failures",
            "Plugins that failed to load or register, by plugin.",
            ["plugin"],
            registry=r,
        )
        self.batches = _BatchSizes()
        r.register(self.batches)
        ProcessCollector(registry=r)  # process_start_time_seconds, CPU, memory, open files
        self.configured_models = tuple(configured_models)
        if models is not None:
            r.register(_BackendCollector(models, self.configured_models))
        if store is not None:
            r.register(_StoreCollector(store))
        # Every configured model's series exist from the start, at 0: rate() needs them.
        for model in self.configured_models:
            for outcome in OUTCOMES:
                self.completions.labels(model, outcome)
            self.queue_wait.labels(model)
            self.generation.labels(model)

    def completion(self, model: str, outcome: Outcome) -> None:
        self.completions.labels(model, outcome).inc()

    def plugin_failed(self, plugin: str) -> None:
        self.plugin_failures.labels(plugin).inc()

    def watch_gateway(self, shards: ShardReader) -> None:
        self.registry.register(_GatewayCollector(shards))

    def exposition(self) -> bytes:
        """The text exposition format; quick (a small registry), so fine on the event loop."""
        return generate_latest(self.registry)

    # -- the engine's observer (called on worker threads; prometheus_client is thread-safe) --

    def request_started(self, model: str, queued: float) -> None:
        self.queue_wait.labels(model).observe(queued)

    def request_finished(self, model: str, generating: float) -> None:
        self.generation.labels(model).observe(generating)

    def batch_steps(self, model: str, size: int, steps: int) -> None:
        self.batches.add(model, size, steps)


class _BatchSizes(Collector):
    """A histogram of requests per model step, fed in sums (a step can be under 0.1 ms: one
    `Histogram.observe` per step would cost the engine more than the count is worth)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._steps: dict[str, dict[int, int]] = {}

    def add(self, model: str, size: int, steps: int) -> None:
        with self._lock:
            by_size = self._steps.setdefault(model, {})
            by_size[size] = by_size.get(size, 0) + steps

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            "charbot_batch_size", "Requests advanced together by one model step.", labels=["model"]
        )
        with self._lock:
            snapshot = {model: dict(by_size) for model, by_size in self._steps.items()}
        for model, by_size in sorted(snapshot.items()):
            buckets = [
                (
                    "+Inf" if math.isinf(bound) else repr(float(bound)),
                    sum(n for size, n in by_size.items() if size <= bound),
                )
                for bound in (*BATCH_BUCKETS, math.inf)
            ]
            total = sum(size * n for size, n in by_size.items())
            family.add_metric([model], buckets, total)
        yield family


class _BackendCollector(Collector):
    """Per model, from its backend's `stats()` at scrape time: works for every backend kind."""

    def __init__(self, models: ModelRegistry, configured: tuple[str, ...]) -> None:
        self.models = models
        self.configured = configured

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "charbot_queue_depth", "Requests waiting for a batch slot.", labels=["model"]
        )
        active = GaugeMetricFamily(
            "charbot_active_requests", "Requests in a batch now.", labels=["model"]
        )
        chars = CounterMetricFamily(
            "charbot_generated_characters",
            "Characters generated since the model was loaded.",
            labels=["model"],
        )
        loaded = GaugeMetricFamily(
            "charbot_model_loaded", "1 when a configured model is loaded and serving, else 0.",
            labels=["model"],
        )  # fmt: skip
        items = self.models.items()
        for name, backend in items:
            stats = backend.stats()
            depth.add_metric([name], stats.queue_depth)
            active.add_metric([name], stats.active_requests)
            chars.add_metric([name], stats.characters_generated)
        names = {name for name, _ in items}
        serving = set(self.models.serving())  # a model server out of reach is not serving
        for name in sorted(names | set(self.configured)):
            loaded.add_metric([name], 1 if name in serving else 0)
        yield from (depth, active, chars, loaded)


class _StoreCollector(Collector):
    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "charbot_settings_store_errors",
            "Settings store operations that failed (unreachable, unreadable, unwritable).",
            value=self.store.errors,
        )


class _GatewayCollector(Collector):
    def __init__(self, shards: ShardReader) -> None:
        self.shards = shards

    def collect(self) -> Iterator[GaugeMetricFamily]:
        connected = GaugeMetricFamily(
            "charbot_gateway_connected",
            "1 while the shard's gateway connection is open, else 0.",
            labels=["shard"],
        )
        latency = GaugeMetricFamily(
            "charbot_gateway_latency_seconds",
            "Time from the shard's last heartbeat to its acknowledgement.",
            labels=["shard"],
        )
        for shard, state in sorted(self.shards().items()):
            connected.add_metric([str(shard)], 1 if state.connected else 0)
            if math.isfinite(state.latency):  # no sample before the first acknowledged beat
                latency.add_metric([str(shard)], state.latency)
        yield from (connected, latency)


def outcome_of(error: BaseException) -> Outcome:
    """The outcome label of a failed completion: a full queue, bad input, too slow, or else.
    One rule for the bot's metrics and the model server's (`bot.serving.metrics`)."""
    if isinstance(error, EngineBusyError):
        return "busy"
    if isinstance(error, InvalidParamsError):
        return "invalid"
    if isinstance(error, RequestTimeoutError):
        return "timeout"
    return "error"
