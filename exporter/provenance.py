"""How an exported model came to be, as commands anyone can rerun from the repository root.

A model's metadata (`charbot.training`) and its card carry two commands, written at export:

    python -m exporter train shakespeare.txt --out runs/shake --dropout 0.25 --max-steps 9000
    python -m exporter export runs/shake/best.pt -o models/shake.onnx

The training command is rebuilt from the run's resolved options, not copied from what was typed:
what was typed may hold paths of the machine that trained it, a wrapper (`bench/training.py`), or
a time budget. Corpus files are arguments, relative to the directory the export ran in when they
lie under it, else by name (put the file there: its sha256 is in the card). A dropout the run
chose from its size and the precision `auto` chose (bf16 steps round differently) are written
out, and a run bounded by minutes is bounded instead by the steps
its weights had, so the rerun does the same steps on any machine (its learning rate then follows
steps, not the clock). Options with no command-line flag, and those that only say where or how
fast to run (device, threads, logging), are left out.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROG = "python -m exporter"
#: Options that change where and how fast a run goes, not what it learns.
MACHINE_OPTIONS = frozenset({"device", "threads", "log_interval"})


@dataclass(frozen=True)
class Flag:
    """How an option of `exporter train` is written: `--hidden 256`, or `--carry-state` /
    `--no-carry-state` for a switch."""

    flag: str
    switch: bool = False

    def words(self, value: Any) -> list[str]:
        if self.switch:
            return [self.flag if value else "--no-" + self.flag.removeprefix("--")]
        return [self.flag, f"{value:g}" if isinstance(value, float) else str(value)]


def portable_path(path: str | Path, root: Path) -> str:
    """`path` relative to `root` when it lies under it, else its file name alone."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(os.path.abspath(root)).as_posix()
    except ValueError:
        return absolute.name


def train_command(
    config: Mapping[str, Any],
    defaults: Mapping[str, Any],
    flags: Mapping[str, Flag],
    corpus: Sequence[str],
    out: str,
    step: int,
) -> str:
    """The `exporter train` command that repeats a run whose resolved options are `config`, up
    to the `step` of the weights exported."""
    words = [*PROG.split(), "train", *corpus, "--out", out]
    timed = config.get("max_minutes") is not None
    for name, value in config.items():
        if name in MACHINE_OPTIONS or name in ("max_steps", "max_minutes") or name not in flags:
            continue
        if value != defaults.get(name) or name == "dropout":
            words += flags[name].words(value)
    # A step budget repeats itself (and its best.pt); a time budget becomes the weights' steps.
    steps = step if timed or config.get("max_steps") is None else config["max_steps"]
    words += flags["max_steps"].words(steps)
    return shlex.join(words)


def export_command(checkpoint: str, output: str, options: Sequence[str] = ()) -> str:
    return shlex.join([*PROG.split(), "export", checkpoint, "-o", output, *options])


def rerun_metadata(
    checkpoint: Mapping[str, Any],
    checkpoint_path: Path,
    output: Path,
    export_options: Sequence[str],
    defaults: Mapping[str, Any],
    flags: Mapping[str, Flag],
    root: Path | None = None,
) -> dict[str, Any]:
    """The `charbot.training` entries an export adds: both commands, and the resolved options
    (so that a card written without the checkpoint still shows them)."""
    root = root or Path.cwd()
    config: dict[str, Any] = dict(checkpoint["train_config"])
    if checkpoint.get("precision"):  # what `auto` chose there: bf16 steps round differently
        config["precision"] = checkpoint["precision"]
    if config.get("exclude_authors"):  # a file, like the corpus
        config["exclude_authors"] = portable_path(config["exclude_authors"], root)
    files = checkpoint["corpus"].get("files", [])
    corpus = [portable_path(f.get("path") or f["name"], root) for f in files]
    out = f"runs/{output.stem}"
    step = int(checkpoint["step"])
    return {
        "command": train_command(config, defaults, flags, corpus, out, step),
        "export_command": export_command(
            f"{out}/{checkpoint_path.name}", portable_path(output, root), export_options
        ),
        "config": {k: v for k, v in config.items() if k not in MACHINE_OPTIONS},
    }
