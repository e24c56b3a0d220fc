"""Several bot processes opening one fresh SQLite store at once (a fleet's first start)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROCESSES = 4
ROUNDS = 6

# Each round, every process waits at the same gate, then opens the round's fresh store.
_OPENER = textwrap.dedent(
    """
    import asyncio, os, sys, time

    from bot.settings import SettingsError, SettingsRegistry
    from bot.stores import SqliteSettingsStore

    root, rounds = sys.argv[1], int(sys.argv[2])

    async def main():
        print("ready", flush=True)
        for r in range(rounds):
            while not os.path.exists(os.path.join(root, f"go{r}")):
                time.sleep(0.0005)
            try:
                path = os.path.join(root, f"round{r}.sqlite3")
                store = await SqliteSettingsStore.open(path, SettingsRegistry())
                await store.close()
                print("ok", flush=True)
            except SettingsError as exc:
                print(exc, flush=True)

    asyncio.run(main())
    """
)


def test_concurrent_first_opens_all_succeed(tmp_path: Path) -> None:
    script = tmp_path / "opener.py"
    script.write_text(_OPENER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), str(ROUNDS)],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    outcomes: list[str] = []
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        for r in range(ROUNDS):
            (tmp_path / f"go{r}").touch()
            for proc in procs:
                assert proc.stdout is not None
                outcomes.append(proc.stdout.readline().strip())
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    assert outcomes == ["ok"] * (PROCESSES * ROUNDS)
