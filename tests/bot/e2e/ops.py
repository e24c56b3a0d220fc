"""Helpers for the operations tests: the endpoints over HTTP, the process's sockets."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

#: A sample's name and its labels, sorted: ("charbot_completions_total", (("model", "tiny"), ...))
SampleKey = tuple[str, tuple[tuple[str, str], ...]]


async def http_get(port: int, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status, await response.text()


async def probe(port: int, path: str) -> tuple[int, Any]:
    """`/healthz` or `/readyz`: the status and the JSON body."""
    status, text = await http_get(port, path)
    return status, json.loads(text)


async def scrape(port: int) -> dict[SampleKey, float]:
    """`/metrics` parsed by prometheus_client's own parser: every sample by name and labels."""
    status, text = await http_get(port, "/metrics")
    assert status == 200, text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0
) -> None:
    """Poll `check` until it holds; a failure to get there within `timeout` fails the test."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    if await check():
                        return
                except aiohttp.ClientConnectionError:
                    pass  # the endpoint is not up yet
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"never happened within {timeout:g} s: {what}") from None


def listening_ports() -> set[int]:
    """TCP ports this process listens on: /proc's LISTEN sockets whose inode is one of our fds."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as f:
            next(f)  # the header
            for line in f:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and inode in inodes:  # 0A: LISTEN
                    ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports
