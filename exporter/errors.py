"""The exporter's errors. The CLI prints one sentence for each and exits non-zero.

ExporterError
 ├── ConfigError          an option value that cannot work, a resume with an incompatible config
 ├── CorpusError          missing, empty or too-short corpus
 ├── CheckpointError      a corrupt, foreign or unreadable checkpoint or model file
 │    └── NotOnnxError    a file ONNX Runtime cannot open as a model (perhaps a checkpoint)
 ├── ExportError          an ONNX export or check that failed, an unwritable output
 ├── DeviceError          a device that this machine does not have
 ├── TrainingDiverged     the training loss became NaN or infinite: the run stopped
 └── TrainingInterrupted  Ctrl-C during training: `last.pt` was saved (the CLI exits 130)
"""

from __future__ import annotations

from pathlib import Path


class ExporterError(Exception):
    """Base of every error the exporter reports to its user."""


class ConfigError(ExporterError):
    pass


class CorpusError(ExporterError):
    pass


class CheckpointError(ExporterError):
    pass


class NotOnnxError(CheckpointError):
    pass


class ExportError(ExporterError):
    pass


class DeviceError(ExporterError):
    pass


class TrainingDiverged(ExporterError):
    pass


class TrainingInterrupted(ExporterError):
    """Training stopped by the user; `checkpoint` is where it can resume from (None: nowhere)."""

    def __init__(self, message: str, step: int, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.step = step
        self.checkpoint = checkpoint
