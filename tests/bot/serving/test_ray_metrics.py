"""A replica's engine figures reach Ray's own Prometheus endpoint (`bot/serving/metrics.py`)."""

from __future__ import annotations

import asyncio

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.generation.params import GenerationParams
from tests.bot.serving.conftest import Served
from tests.bot.serving.test_openai_backend import remote


async def scrape(port: int) -> dict[tuple[str, str], float]:
    """(sample name, outcome or "") -> value, summed over the tags Ray adds, for model "tiny"
    (completions: on the route /v1/completions)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    values: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if labels.get("route", "/v1/completions") != "/v1/completions":
                continue
            if sample.name.startswith("ray_charbot_") and labels.get("model") == "tiny":
                key = (sample.name, sample.labels.get("outcome", ""))
                values[key] = values.get(key, 0.0) + sample.value
    return values


async def test_replicas_report_the_engines_figures_through_ray(served: Served) -> None:
    ok = ("ray_charbot_completions_total", "ok")
    before = (await scrape(served.metrics_port)).get(ok, 0.0)
    async with remote(served, "tiny") as backend:
        for seed in range(3):
            await backend.complete("To be", GenerationParams(max_length=20, seed=seed))
    async with asyncio.timeout(60):  # Ray's agent exports what replicas record periodically
        while (values := await scrape(served.metrics_port)).get(ok, 0.0) < before + 3:
            await asyncio.sleep(0.5)
    assert values[("ray_charbot_model_steps_total", "")] >= 3 * 19
    assert values[("ray_charbot_batched_requests_total", "")] >= 3 * 19
    assert values[("ray_charbot_queue_wait_seconds_count", "")] >= 3
    assert values[("ray_charbot_generation_seconds_count", "")] >= 3
    assert ("ray_charbot_queue_depth", "") in values
