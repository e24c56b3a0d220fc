"""The engine's figures from a model-server replica, through Ray's metrics API.

`ray.util.metrics` metrics are exported by every Ray node's metrics agent, so Ray's own Prometheus
endpoint (each node's `--metrics-export-port`) carries them, with Ray's `ray_` prefix and tags
naming the deployment and replica: `ray_charbot_completions_total{model,route,outcome}`,
`ray_charbot_queue_wait_seconds`, `ray_charbot_generation_seconds`, `ray_charbot_model_steps_total`
and `ray_charbot_batched_requests_total` (their ratio is the mean batch size),
`ray_charbot_queue_depth` and `ray_charbot_active_requests`. The names and buckets follow the
bot's own `/metrics` (`bot.ops.metrics`), so one dashboard reads both.
"""

from __future__ import annotations

from ray.util import metrics

from bot.errors import CharbotError
from bot.generation.backend import BackendStats
from bot.ops.metrics import TIME_BUCKETS, outcome_of

MODEL = ("model",)


class ReplicaMetrics:
    """An `EngineObserver` for a replica's engines, plus the request outcomes and gauges its
    routes record. Called from the engines' worker threads: Ray's metrics are thread-safe."""

    def __init__(self) -> None:
        self.completions = metrics.Counter(
            "charbot_completions",
            "Requests by model, route and outcome (ok, busy, invalid, timeout, error).",
            tag_keys=("model", "route", "outcome"),
        )
        self.queue_wait = metrics.Histogram(
            "charbot_queue_wait_seconds",
            "Time a request waited in the engine's queue before joining a batch.",
            boundaries=list(TIME_BUCKETS),
            tag_keys=MODEL,
        )
        self.generation = metrics.Histogram(
            "charbot_generation_seconds",
            "Time from joining a batch to the request's end.",
            boundaries=list(TIME_BUCKETS),
            tag_keys=MODEL,
        )
        self.steps = metrics.Counter(
            "charbot_model_steps", "Model steps run by the replica's engine.", tag_keys=MODEL
        )
        self.batched = metrics.Counter(
            "charbot_batched_requests",
            "Requests advanced by those steps, summed: divided by the steps, the mean batch size.",
            tag_keys=MODEL,
        )
        self.queue_depth = metrics.Gauge(
            "charbot_queue_depth", "Requests waiting for a batch slot.", tag_keys=MODEL
        )
        self.active = metrics.Gauge(
            "charbot_active_requests", "Requests in a batch now.", tag_keys=MODEL
        )

    # -- EngineObserver ----------------------------------------------------------------------

    def request_started(self, model: str, queued: float) -> None:
        self.queue_wait.observe(queued, {"model": model})

    def request_finished(self, model: str, generating: float) -> None:
        self.generation.observe(generating, {"model": model})

    def batch_steps(self, model: str, size: int, steps: int) -> None:
        self.steps.inc(steps, {"model": model})
        self.batched.inc(size * steps, {"model": model})

    # -- what the routes record ----------------------------------------------------------------

    def finished(self, model: str, route: str, error: CharbotError | None) -> None:
        """A request's outcome (`RequestObserver`); a request naming no model counts as ""."""
        outcome = "ok" if error is None else outcome_of(error)
        self.completions.inc(1, {"model": model, "route": route, "outcome": outcome})

    def gauges(self, model: str, stats: BackendStats) -> None:
        self.queue_depth.set(stats.queue_depth, {"model": model})
        self.active.set(stats.active_requests, {"model": model})
