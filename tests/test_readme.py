"""What the README says about installing, checked against the files it describes."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def test_the_cpu_torch_command_installs_the_version_constraints_txt_pins() -> None:
    pins = [
        line.strip()
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if line.strip().startswith("torch")
    ]
    assert len(pins) == 1 and pins[0].startswith("torch==")
    readme = (REPO / "README.md").read_text()
    # The pin is a version, not a build: the README gives the command that gets the CPU build
    # of exactly that version, which the pin then keeps.
    assert f"pip install {pins[0]} --index-url {CPU_INDEX}" in readme
    assert f"`{pins[0]}`" in readme
