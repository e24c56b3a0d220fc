"""Several machines, shown on one: a Ray cluster of two nodes serves a model with 2 replicas, one
on each; a node goes, and completions through the HTTP proxy are answered again once Serve has
replaced the replica it took. The cluster runs in a process of its own (`twonodes.py`): this test
process is a driver of the session's cluster already. About a minute on 2 busy cores."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bot.testing.ports import free_port
from tests.bot.serving.conftest import REPO
from tests.tinymodels import TINY_LSTM, widened

# It starts a Ray cluster of its own (in a process of its own), not through the `served` fixture.
pytestmark = pytest.mark.ray


def test_two_nodes_two_replicas_and_one_node_lost(tiny_onnx: Path, tmp_path: Path) -> None:
    wide = widened(TINY_LSTM, tmp_path / "wide.onnx", hidden=1024)
    log = tmp_path / "twonodes.log"
    command = ["-m", "tests.bot.serving.twonodes", str(tiny_onnx), str(wide), str(free_port())]
    # A Ray temp directory of its own (short: Ray's socket paths under it have 107 bytes at
    # most), so the cluster's sessions, and the address Ray writes for `ray.init()` to find,
    # meet no other Ray instance of this machine.
    ray_tmp = tempfile.mkdtemp(prefix="cbtwo", dir="/tmp")
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_TMPDIR": ray_tmp}
    env.pop("RAY_ADDRESS", None)
    try:
        with log.open("wb") as err:
            run = subprocess.run(
                [sys.executable, *command],
                stdout=subprocess.PIPE,
                stderr=err,
                cwd=REPO,
                env=env,
                timeout=540,
            )
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert run.returncode == 0, log.read_text()[-3000:]
    result = json.loads(run.stdout.decode().strip().splitlines()[-1])
    nodes, removed = result["cluster_nodes"], result["removed"]
    assert len(nodes) == 2 and removed in nodes
    (stayed,) = (n for n in nodes if n != removed)
    # What matters: the removed node is no longer alive, the one that stayed is (and, below,
    # the replicas answer from it). Any other node alive is shown with its raylet's socket,
    # whose path names the Ray session it belongs to.
    alive = [n["id"] for n in result["nodes_after"]]
    assert removed not in alive and stayed in alive, result["nodes_after"]
    others = [n for n in result["nodes_after"] if n["id"] != stayed]
    # The 2 replicas ran on both nodes.
    assert sorted(result["before"].values()) == nodes
    # In flight when the node went: finished (on the node that stayed), or one clear sentence.
    for outcome in result["in_flight"]:
        assert outcome == "finished" or (
            outcome.startswith("failed: The connection to the model server at")
            and outcome.endswith("try again.")
        ), outcome
    assert any(o != "finished" for o in result["in_flight"])  # some ran on the node that went
    # Answered again; the lost replica replaced by a new one on the node that stays.
    assert result["answered_after_seconds"] is not None
    after = result["after"]
    assert len(after) == 2 and set(after.values()) == {stayed}, (after, others)
    assert set(after) != set(result["before"])
    assert result["running_replicas"] == 2
    print(
        f"\ntwo nodes: answered again {result['answered_after_seconds']:.1f} s and replaced "
        f"{result['replaced_after_seconds']:.1f} s after the node went; {result['seconds']:.0f} s "
        f"in all; other nodes alive: {others or 'none'}"
    )
