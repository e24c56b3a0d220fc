"""The test lanes: a test's markers follow from where it lives and what it uses, so a new test
lands in its lane without a decorator. The markers are described in pyproject.toml; the
commands that pick lanes are in docs/testing.md.

Where torch is not installed (a bot-only `pip install -e ".[dev]"`), the torch directories are
reported as skipped instead of failing to import, and the tests marked `torch` skip.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

# Every test under these directories (relative to tests/) is in the lane.
LANE_DIRECTORIES: dict[str, tuple[str, ...]] = {
    "e2e": ("bot/e2e",),
    "torch": ("exporter",),
}
# A test that uses one of these fixtures, directly or through another fixture, is in the lane.
# (`fake_discord` puts its tests in `e2e` itself: bot/testing/fixtures.py.)
LANE_FIXTURES: dict[str, tuple[str, ...]] = {
    "postgres": ("postgres_database",),
    "ray": ("served",),  # the model server, `python -m bot serve` on a local Ray cluster
}
TORCH_INSTALLED = importlib.util.find_spec("torch") is not None
NEEDS_TORCH = 'needs torch: pip install -c constraints.txt -e ".[train]"'


def lanes_of(path: Path, fixtures: list[str]) -> set[str]:
    lanes = {
        lane
        for lane, directories in LANE_DIRECTORIES.items()
        if any(path.is_relative_to(TESTS / d) for d in directories)
    }
    lanes |= {lane for lane, names in LANE_FIXTURES.items() if set(names) & set(fixtures)}
    return lanes


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for lane in sorted(lanes_of(item.path, list(getattr(item, "fixturenames", ())))):
            item.add_marker(lane)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if not TORCH_INSTALLED and item.get_closest_marker("torch") is not None:
        pytest.skip(NEEDS_TORCH)


class NeedsTorch(pytest.File):
    """A torch directory where torch is missing: one skip with the reason, nothing imported (a
    File, not a Directory, so that pytest does not import the directory's conftest first)."""

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        raise pytest.skip.Exception(NEEDS_TORCH)


def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if not TORCH_INSTALLED and any(path == TESTS / d for d in LANE_DIRECTORIES["torch"]):
        return NeedsTorch.from_parent(parent, path=path)
    return None
