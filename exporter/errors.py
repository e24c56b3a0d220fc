"""The exporter's errors. The CLI prints one sentence for each and exits non-zero.

ExporterError
 ├── CorpusError        missing, empty or too-short corpus
 ├── CheckpointError    a corrupt, foreign or unreadable checkpoint
 ├── ExportError        an ONNX export or check that failed, an unwritable output
 └── DeviceError        a device that this machine does not have
"""


class ExporterError(Exception):
    """Base of every error the exporter reports to its user."""


class CorpusError(ExporterError):
    pass


class CheckpointError(ExporterError):
    pass


class ExportError(ExporterError):
    pass


class DeviceError(ExporterError):
    pass
