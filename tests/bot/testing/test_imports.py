from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
STAGES = ("bot.api, bot.cli, bot.runtime, bot.console", "bot.testing", "bot.testing.fixtures")


def test_only_bot_testing_fixtures_loads_pytest_and_the_bot_loads_neither() -> None:
    code = "import sys\n" + "".join(
        f"import {stage}\nprint(' '.join(sys.modules))\n" for stage in STAGES
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    app, testing, fixtures = (set(line.split()) for line in out.stdout.splitlines())
    assert "bot.runtime" in app and "bot.testing" not in app and "pytest" not in app
    assert "bot.testing" in testing and "pytest" not in testing
    assert "pytest" in fixtures
