"""The soak run (`bench/soak.py`, docs/soak.md), short: the same code as the 5-minute run, as a
process of its own, on a topology small enough for 2 cores. It asserts the invariants only (no
answer given twice, no setting lost, every unanswered request explained, every fault recovered
from, no button stuck), never a timing; and with a defect put into the bot processes on purpose,
that the run reports it and fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
# Safety bounds only: a run takes its duration, plus start-up and the settling of the last fault.
SOAK_TIMEOUT = 480
DEFECT_TIMEOUT = 300

pytestmark = [pytest.mark.soak, pytest.mark.e2e]
# What a failure shows of the report.
DETAILS: tuple[str, ...] = (
    "invariants",
    "faults",
    "unexplained_detail",
    "twice_detail",
    "settings",
    "buttons",
)
DETAILS += ("unexpected_exits", "faults_failed")


def run_soak(tmp_path: Path, admin_url: str, *flags: str, timeout: int) -> tuple[int, Any, str]:
    out = tmp_path / "soak.json"
    command = [
        sys.executable, str(REPO / "bench" / "soak.py"), "--json", str(out), "--no-plot",
        "--workdir", str(tmp_path / "work"), "--postgres", admin_url, *flags,
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = done.stdout + done.stderr
    assert out.is_file(), f"no report (exit {done.returncode}):\n{output[-4000:]}"
    return done.returncode, json.loads(out.read_text()), output


@pytest.mark.ray
def test_a_minute_under_load_and_faults_loses_nothing(
    postgres_database: str, tmp_path: Path
) -> None:
    rc, summary, output = run_soak(
        tmp_path,
        postgres_database,
        "--duration", "60", "--rate", "2", "--fault-interval", "15", "--seed", "7",
        "--replicas", "1",
        timeout=SOAK_TIMEOUT,
    )  # fmt: skip
    details = json.dumps(
        {k: summary[k] for k in DETAILS},
        indent=1,
    )
    assert summary["invariants"] == {
        "answered_twice": 0,
        "unexplained_unanswered": 0,
        "settings_lost": 0,
        "faults_not_recovered": 0,
        "buttons_stuck": 0,
        "end_presses_unanswered": 0,
        "unexpected_exits": 0,
        "faults_failed": 0,
    }, details
    assert summary["ok"] and rc == 0, output[-4000:]
    assert len(summary["faults"]) == 3  # at 15, 30 and 45 s
    totals = summary["totals"]
    assert totals["sent"] >= 60 and totals["answered"] >= totals["sent"] // 2, totals
    assert summary["settings"]["confirmed_writes"] > 0 and summary["buttons"]["messages"] > 0
    assert "invariants: " in output and "-> OK" in output


def test_a_skipped_claim_and_a_setting_kept_in_memory_are_caught(
    postgres_database: str, tmp_path: Path
) -> None:
    """The bots run with two defects (bot/testing/defects.py): presses that skip the claim on
    their record, and settings kept in the process's memory only. No faults, no model server:
    the defects alone must fail the run."""
    rc, summary, output = run_soak(
        tmp_path,
        postgres_database,
        "--duration", "25", "--rate", "4", "--fault-interval", "0", "--seed", "3",
        "--replicas", "0", "--defect", "skip-claim", "--defect", "memory-setting",
        timeout=DEFECT_TIMEOUT,
    )  # fmt: skip
    invariants = summary["invariants"]
    assert rc == 1 and not summary["ok"], output[-4000:]
    assert invariants["answered_twice"] > 0, summary["by_kind"]
    assert invariants["settings_lost"] > 0, summary["settings"]
    assert summary["settings"]["lost"] == invariants["settings_lost"]
    assert "-> FAILED" in output
