"""A Ray cluster of two nodes on this machine (Ray's own `ray.cluster_utils.Cluster`) serving a
model with 2 replicas, one of the nodes then removed: what `test_two_nodes.py` checks, run as a
process of its own because a test process is already a driver of the session's cluster.

    python -m tests.bot.serving.twonodes TINY.onnx WIDE.onnx PORT   # prints one JSON object

Each replica serves "tiny" and "slow" (the wide model, whose long texts take seconds: they are
the requests in flight when a node goes) and reserves a CPU for each. Each node has 4 logical
CPUs: Serve spreads the 2 replicas over the 2 nodes, and the node that stays has room for the
replacement of the one that goes. Serve's HTTP
proxy runs on the head node only (two proxies of one machine would share its port), and routes
without preferring the replicas of its own node, so that both answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import ray
from ray import serve
from ray.cluster_utils import Cluster

from bot.errors import CharbotError
from bot.generation.params import EngineConfig, GenerationParams
from bot.serving.app import LOGGING, deploy, running_replicas
from bot.serving.cli import OBJECT_STORE_BYTES
from bot.serving.openai_backend import OpenAIBackend
from bot.serving.server import ModelDeployment

NODE: dict[str, Any] = {"num_cpus": 4, "object_store_memory": OBJECT_STORE_BYTES}
ENGINE = EngineConfig(workers=1, max_batch=8, max_queue=8)
IN_FLIGHT = 4  # streams running when the node goes (Serve balances them over the replicas)
LONG = GenerationParams(max_length=1000)
DEADLINE = 120.0  # seconds for each wait


async def placements(backend: OpenAIBackend, want: int, gone: str = "") -> dict[str, str]:
    """Replica -> node, asking until `want` replicas on nodes other than `gone` have answered."""
    seen: dict[str, str] = {}
    started = time.monotonic()
    while len(seen) < want:
        if time.monotonic() - started > DEADLINE:
            raise SystemExit(f"only {len(seen)} replica(s) answered: {seen}")
        try:
            with_facts = (await backend.describe())["charbot"]
        except CharbotError:
            await asyncio.sleep(0.2)
            continue
        if with_facts["node"] != gone:
            seen[with_facts["replica"]] = with_facts["node"]
    return seen


async def outcome(stream: Any) -> str:
    try:
        async for chunk in stream:
            if chunk.completion is not None:
                return "finished"
    except CharbotError as exc:
        return f"failed: {exc}"
    return "ended early"


async def scenario(cluster: Cluster, worker: Any, port: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/v1"
    backend = await OpenAIBackend.start("tiny", url, timeout=60.0)
    slow = await OpenAIBackend.start("slow", url, timeout=60.0)
    try:
        before = await placements(backend, 2)
        streams = [slow.stream("To be", LONG) for _ in range(IN_FLIGHT)]
        for stream in streams:
            await anext(stream)
        running = [asyncio.create_task(outcome(s)) for s in streams]
        removed_at = time.monotonic()
        cluster.remove_node(worker, allow_graceful=False)
        in_flight = await asyncio.gather(*running)
        answered_after = None  # a completion through the proxy is answered again
        while answered_after is None and time.monotonic() - removed_at < DEADLINE:
            try:
                await backend.complete("Or not", GenerationParams(max_length=20))
                answered_after = time.monotonic() - removed_at
            except CharbotError:
                await asyncio.sleep(0.5)
        # Serve has replaced the lost replica: two answer again, on the node that stays.
        after = await placements(backend, 2, gone=worker.node_id)
        replaced_after = time.monotonic() - removed_at
        replicas = await asyncio.to_thread(running_replicas)
    finally:
        await backend.close()
        await slow.close()
    return {
        "removed": worker.node_id,
        "before": before,
        "after": after,
        "in_flight": in_flight,
        "answered_after_seconds": answered_after,
        "replaced_after_seconds": replaced_after,
        "running_replicas": replicas,
    }


def alive_nodes() -> list[dict[str, str]]:
    """The alive nodes: their ids, addresses and raylets (whose socket names the session)."""
    alive = [n for n in ray.nodes() if n["Alive"]]  # type: ignore[no-untyped-call]
    described = [
        {
            "id": n["NodeID"],
            "address": f"{n['NodeManagerAddress']}:{n['NodeManagerPort']}",
            "raylet": n["RayletSocketName"],
        }
        for n in alive
    ]
    return sorted(described, key=lambda n: n["id"])


def main(tiny: Path, wide: Path, port: int) -> dict[str, Any]:
    started = time.monotonic()
    # Read by Serve's proxy, which inherits this process's environment through the raylets.
    os.environ["RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING"] = "0"
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    worker = cluster.add_node(wait=True, **NODE)
    try:
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        all_nodes = [n["id"] for n in alive_nodes()]
        http = {"host": "127.0.0.1", "port": port, "location": "HeadOnly"}
        serve.start(http_options=http, logging_config=LOGGING)
        models = [
            ModelDeployment("tiny", str(tiny), ENGINE),
            ModelDeployment("slow", str(wide), ENGINE),
        ]
        deploy(models, replicas=2)
        result = asyncio.run(scenario(cluster, worker, port))
        result["cluster_nodes"] = all_nodes
        # The GCS marks a node dead after missed health checks (seconds after Serve has already
        # replaced the replica it held): wait for it, bounded, rather than read it too soon.
        marked = time.monotonic()
        while worker.node_id in {n["id"] for n in alive_nodes()}:
            if time.monotonic() - marked > DEADLINE:
                break
            time.sleep(0.5)
        result["marked_dead_after_seconds"] = round(time.monotonic() - marked, 1)
        result["nodes_after"] = alive_nodes()
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()
        cluster.shutdown()  # type: ignore[no-untyped-call]
    result["seconds"] = time.monotonic() - started
    return result


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))))
