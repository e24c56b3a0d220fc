"""The whole deployment under load and faults, for minutes: a soak run that proves nothing is lost.

    python bench/soak.py [--duration S] [--rate R] [--fault-interval S] [--seed N] [--json OUT]

On this machine, every part real (docs/soak.md): the test Discord server (8 guilds, 64
channels, a few hundred members), a fresh PostgreSQL database (created and dropped by the run),
two `python -m bot run` processes with 2 shards each of 4, and `python -m bot serve` with 2
replicas, which a quarter of the channels use through the `openai` backend while the others use
a model in the bot processes. Members complete, mention, set settings, press Continue and
Regenerate (double presses among them) and use the context menu; one fault every interval
(a process SIGKILLed or SIGTERMed and restarted, the database's connections terminated and the
database unreachable for 5 s, a Serve replica killed, a shard's connection dropped or its
session invalidated, a 429 storm), from a seeded schedule. Then every request's outcome is
accounted for, the settings read back from a fresh process, the buttons checked.

Prints the table, writes the JSON (and a plot beside it when matplotlib is installed), and exits
1 when an invariant fails: an answer given twice, an unanswered request the faults do not
explain, a setting lost, a fault not recovered from, a button stuck, a process that died alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from bench.common import write_json
from bench.soaking import checks, faults, ledger, report
from bench.soaking.ledger import Judge
from bench.soaking.load import Load
from bench.soaking.topology import SERVED_MODEL, Deployment, Topology
from tests.postgres import DEFAULT_URL, URL_ENV

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "soak.json"
SETUP_TIMEOUT = 120.0  # seconds for the served model to answer once before the load starts
SETTLE_TIMEOUT = 120.0  # seconds the load goes on after the duration, until every fault recovered
DRAIN_TIMEOUT = 60.0  # seconds to wait for the last answers once the load stopped
LOAD_SAMPLE = 10.0  # seconds between samples of the load average
END_PRESSES = 5  # pressable messages pressed once the load stopped


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load (300)")
    parser.add_argument("--rate", type=float, default=4.0, help="requests a second (4)")
    parser.add_argument(
        "--fault-interval", type=float, default=20.0, help="seconds between faults (20; 0: none)"
    )
    parser.add_argument("--seed", type=int, default=1, help="the load's and the faults' seed")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write figures")
    parser.add_argument(
        "--faults",
        default=",".join(faults.KINDS),
        help=f"the fault kinds, comma-separated (default: all: {','.join(faults.KINDS)})",
    )
    parser.add_argument("--replicas", type=int, default=2, help="model server replicas (0: none)")
    parser.add_argument("--processes", type=int, default=2, help="bot processes")
    parser.add_argument("--shards", type=int, default=4, help="shards across the processes")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(URL_ENV) or DEFAULT_URL,
        help="a PostgreSQL server whose user may create databases (the run creates its own)",
    )
    parser.add_argument("--workdir", type=Path, help="keep the logs and configs here")
    parser.add_argument("--no-plot", action="store_true", help="skip the plot")
    # Test-only: the bot processes run with these defects (bot/testing/defects.py).
    parser.add_argument("--defect", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--read-store", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    kinds = [k for k in args.faults.split(",") if k]
    unknown = [k for k in kinds if k not in faults.KINDS]
    if unknown:
        parser.error(f"unknown fault kind(s) {unknown}; known: {', '.join(faults.KINDS)}")
    if args.shards % args.processes:
        parser.error("--shards must divide evenly among --processes")
    if args.replicas == 0 and faults.REPLICA in kinds:
        kinds.remove(faults.REPLICA)  # no model server, no replica to kill
    args.fault_kinds = kinds
    return args


async def setup(load: Load, served: bool) -> None:
    """A quarter of the channels use the served model; the load starts once it answered."""
    if not served:
        return
    for channel in load.channels:
        if channel.model == SERVED_MODEL:
            await load.use_model(channel, SERVED_MODEL)
    channel = next(c for c in load.channels if c.model == SERVED_MODEL)
    deadline = time.monotonic() + SETUP_TIMEOUT
    while time.monotonic() < deadline:
        probe = await load.complete(channel)
        for _ in range(20):
            await asyncio.sleep(0.5)
            load.judge.forget()
            load.judge.judge(probe)
            if probe.status != "unanswered":
                break
        if probe.status == "answered":
            return
    raise RuntimeError(f"the served model did not answer in {SETUP_TIMEOUT:g} s")


async def drain(load: Load, judge: Judge, injected: Sequence[faults.Fault]) -> None:
    """Until every request sent has an outcome or cannot have one (in flight on a killed
    process, sent while its shard was down, refused as too late), or DRAIN_TIMEOUT."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while time.monotonic() < deadline:
        judge.judge_open(load.requests)
        checks.explain(load.requests, injected, judge)
        if not any(r.reason == ledger.UNEXPLAINED for r in load.requests):
            return
        await asyncio.sleep(1.0)


async def sample_load(samples: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        samples.append(os.getloadavg()[0])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), LOAD_SAMPLE)


async def soak(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    topology = Topology(processes=args.processes, shards=args.shards, replicas=args.replicas)
    deployment = Deployment(topology, workdir, args.postgres, args.defect)
    rng = random.Random(args.seed)
    load_before = os.getloadavg()
    started = time.monotonic()
    samples: list[float] = []
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(sample_load(samples, stop_sampling))
    try:
        await deployment.start()
        start_seconds = time.monotonic() - started
        loop = asyncio.get_running_loop()
        loop_start, wall_start = loop.time(), time.time()

        def clock() -> float:
            return loop.time() - loop_start

        judge = Judge(deployment.server, loop_start, wall_start)
        load = Load(deployment, judge, random.Random(rng.random()), clock)
        await setup(load, deployment.model_server is not None)
        load_from = clock()
        injector = faults.Faults(
            deployment, judge, load.requests, random.Random(rng.random()), clock, loop_start
        )
        end = load_from + float(args.duration)
        fault_task = asyncio.create_task(
            injector.run(args.fault_kinds, args.fault_interval, load_from, args.duration)
        )
        limit = int(args.rate * (args.duration + SETTLE_TIMEOUT) * 2) + 100

        def recovered() -> bool:
            """Past the duration, every fault done and answered on its path since."""
            if clock() < end:
                return False
            if clock() > end + SETTLE_TIMEOUT or not fault_task.done():
                return clock() > end + SETTLE_TIMEOUT
            judge.judge_open(load.requests)
            checks.recover(injector.faults, load.requests)
            return all(f.recovery is not None for f in injector.faults)

        await load.run(recovered, args.rate, limit)
        if not fault_task.done():  # a settle timeout with a fault still running
            fault_task.cancel()
        await asyncio.gather(fault_task, return_exceptions=True)
        load_to = clock()
        await drain(load, judge, injector.faults)
        await injector.check_processes()
        judge.forget()
        for request in load.requests:
            judge.judge(request)
        checks.explain(load.requests, injector.faults, judge)
        checks.recover(injector.faults, load.requests)
        stored = await asyncio.to_thread(checks.read_back, deployment.database.url)
        settings = checks.check_settings(load.requests, stored)
        buttons = checks.check_buttons(
            deployment.server, injector.faults, load.requests, judge, stored
        )
        await checks.press_at_end(deployment.server, buttons, END_PRESSES)
        internal = list(deployment.server.internal_errors)
    finally:
        stop_sampling.set()
        await sampler
        await deployment.close()
    run = {
        "seed": args.seed,
        "duration_s": args.duration,
        "rate_per_s": args.rate,
        "fault_interval_s": args.fault_interval,
        "fault_kinds": args.fault_kinds,
        "defects": args.defect,
        "topology": {
            "guilds": topology.guilds,
            "channels": topology.guilds * topology.channels_per_guild,
            "members": topology.members,
            "processes": topology.processes,
            "shards": topology.shards,
            "replicas": topology.replicas,
        },
        "start_s": round(start_seconds, 1),
        "load_s": round(load_to - load_from, 1),
        "wall_s": round(time.monotonic() - started, 1),
        "unsendable_arrivals": load.unsendable,
        "fake_discord_internal_errors": internal,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": [round(x, 2) for x in load_before],
            "load_mean_during": round(sum(samples) / len(samples), 2) if samples else None,
            "load_after": [round(x, 2) for x in os.getloadavg()],
        },
    }
    summary = report.summarize(
        load.requests,
        injector.faults,
        settings,
        buttons,
        injector.unexpected_exits,
        injector.failed,
        run,
    )
    if internal:
        summary["invariants"]["fake_discord_internal_errors"] = len(internal)
        summary["ok"] = False
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.read_store:
        return checks.read_store(args.read_store)
    kinds = ", ".join(args.fault_kinds) if args.fault_interval > 0 else "none"
    print(
        f"soak: {args.duration:g} s at {args.rate:g} requests/s, a fault every "
        f"{args.fault_interval:g} s ({kinds}), seed {args.seed}; {os.cpu_count()} CPU(s), "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        summary = asyncio.run(soak(args, args.workdir))
    else:
        with tempfile.TemporaryDirectory(prefix="charbot-soak-") as tmp:
            summary = asyncio.run(soak(args, Path(tmp)))
    print()
    print(report.table(summary))
    write_json(args.json, summary)
    if not args.no_plot:
        drawn = report.plot(summary, args.json.with_suffix(".png"))
        print(f"wrote {drawn}" if drawn else "(no plot: matplotlib is not installed)")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
