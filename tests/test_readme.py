"""What the README says about installing, checked against the files it describes."""

from __future__ import annotations

import json
from pathlib import Path

import onnxruntime as ort

from models import BUNDLED_MODEL
from models.contract import META_TRAINING

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


def test_the_bundled_models_provenance_is_one_rerunnable_story() -> None:
    """Its metadata, its card and the docs (training, benchmarks) give the same commands, which
    run from the repository root on any machine: no path of the machine that trained it, a step
    budget."""
    session = ort.InferenceSession(str(BUNDLED_MODEL), providers=["CPUExecutionProvider"])
    training = json.loads(session.get_modelmeta().custom_metadata_map[META_TRAINING])
    commands = [training["command"], training["export_command"]]
    card = BUNDLED_MODEL.with_suffix(".md").read_text(encoding="utf-8")
    docs = "".join(
        (REPO / "docs" / page).read_text(encoding="utf-8")
        for page in ("training.md", "benchmarks.md")
    )
    for command in commands:
        assert command.startswith("python -m exporter ")
        assert "/" + "work" not in command and "/tmp" not in command and " /" not in command
        assert f"    {command}\n" in card and f"\n{command}\n" in docs
    assert f"--max-steps {training['steps']}" in commands[0]
    assert f"{training['steps']:,} steps" in card
    assert f"best at {training['steps']:,}" in docs
