from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
APP = "import bot.api, bot.cli, bot.runtime, bot.console"


def modules_after(imports: str) -> set[str]:
    """The names in sys.modules after `imports` runs in a fresh interpreter."""
    code = f"import sys; {imports}; print(' '.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def test_the_bot_never_loads_its_testing_tools() -> None:
    loaded = modules_after(APP)
    assert "bot.runtime" in loaded and "bot.testing" not in loaded


def test_the_testing_tools_load_pytest_only_for_the_fixtures() -> None:
    without_fixtures = modules_after(f"{APP}, bot.testing")
    assert "bot.testing" in without_fixtures and "pytest" not in without_fixtures
    assert "pytest" in modules_after("import bot.testing.fixtures")
