"""int8 models, judged by validation loss: a static int8 rewrite that keeps the engine's guarantees.

`exporter.int8` rewrites an fp32 contract file as a Scan of its recurrent step, every MatMul in
int8 with activation scales fixed at export (calibrated on the training text), so that a row's
logits depend neither on its batch neighbours nor on how its prompt was chunked: a seed repeats
under load as with fp32. (ONNX Runtime's dynamic quantization, used before, scaled activations
per call and broke that.) Inputs, outputs, state and metadata keep the contract (float32 state
and logits), so the bot loads the file like any other. The metadata gains a
`charbot.quantization` entry saying how, and what it cost (`models.contract.Quantization`):

    {"method": "static", "weights": "int8", "tool": "charbot exporter.int8, onnxruntime 1.22.0",
     "fp32_val_loss": 1.4587, "quantized_val_loss": 1.4590, "max_loss_increase": 0.02,
     "val_loss_unit": "nats per token"}

`--quantize int8-dynamic` opts into ONNX Runtime's dynamic quantization instead (method
"dynamic"): it primes a prompt faster (its LSTM stays one fused op), but its activation scales
depend on the whole call, so `models.contract.DYNAMIC_SEED_CAVEAT` holds ("a seed repeats only
when the request runs alone"), and the card, `/model show` and the docs say so.

Logits move by far more than the 1e-4 of an fp32 export, so the check of a quantized file is its
validation loss against the fp32 model's on the same text, not logit parity.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from exporter.checkpoint import Checkpoint, build_tokenizer
from exporter.config import TrainConfig
from exporter.data import encode_splits, read_corpora
from exporter.discord_export import DiscordOptions
from exporter.errors import CorpusError, ExportError
from exporter.int8 import static_int8
from exporter.onnx_export import open_session, read_metadata
from models import contract
from models.contract import Quantization
from models.ort import ORT_ERRORS

log = logging.getLogger(__name__)

#: `--quantize` choices and their methods: static keeps the engine's guarantees (exporter.int8);
#: dynamic (ONNX Runtime's quantize_dynamic) is an explicit opt-in, with the seed caveat.
METHODS = {"int8": "static", "int8-dynamic": "dynamic"}
QUANTIZE_CHOICES = tuple(METHODS)
#: How much the validation loss may rise, nats per token, before an int8 export is refused.
DEFAULT_MAX_LOSS_INCREASE = 0.02
EVAL_STREAMS = 16  # as the trainer's final validation reads the text
EVAL_CHUNK = 256
# What the rewrite raises on a graph it cannot handle (onnx's checker: a ValidationError).
QUANTIZE_ERRORS: tuple[type[Exception], ...] = (ValueError, RuntimeError, *ORT_ERRORS)


@dataclass(frozen=True)
class QualityReport:
    fp32_val_loss: float
    int8_val_loss: float
    max_loss_increase: float

    @property
    def increase(self) -> float:
        return self.int8_val_loss - self.fp32_val_loss

    @property
    def ok(self) -> bool:
        return self.increase <= self.max_loss_increase

    @property
    def shown_increase(self) -> str:
        """The rise with 4 decimals, or with as many more as tell it from the limit: at
        --max-loss-increase 0, a rise of 3e-5 shows as +0.00003, not as +0.0000."""
        for decimals in range(4, 9):
            text = f"{self.increase:+.{decimals}f}"
            if text != f"{self.max_loss_increase:+.{decimals}f}":
                return text
        return f"{self.increase:+.2e}"

    def table(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        return "\n".join(
            [
                "model  validation loss (nats/token)",
                f"fp32   {self.fp32_val_loss:.4f}",
                f"int8   {self.int8_val_loss:.4f}",
                f"increase {self.shown_increase} (allowed {self.max_loss_increase:+g}): {verdict}",
            ]
        )

    def refusal(self, path: Path) -> str:
        return (
            f"refusing to write {path}: int8 quantization raises the validation loss from "
            f"{self.fp32_val_loss:.4f} to {self.int8_val_loss:.4f} nats/token "
            f"({self.shown_increase}, more than --max-loss-increase {self.max_loss_increase:g})"
        )


def quantize_int8(
    source: Path,
    target: Path,
    calibration_ids: np.ndarray | None = None,
    method: str = "static",
) -> None:
    """Write `source` (a contract fp32 file) to `target` with int8 weights, its metadata kept:
    static, the rewrite of `exporter.int8` with activation scales calibrated on
    `calibration_ids` (training text; None: the hidden states' bound), or dynamic."""
    metadata = read_metadata(source)  # a contract file, or the reader's one sentence
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if method == "dynamic":
            _quantize_dynamic(source, target)
            proto = onnx.load(str(target))
            _set_props(proto, metadata.to_props())
        else:
            proto = static_int8(onnx.load(str(source)), source, calibration_ids)
        onnx.save(proto, str(target))
    except OSError as exc:
        raise ExportError(f"cannot write {target}: {exc.strerror or exc}") from exc
    except QUANTIZE_ERRORS as exc:
        raise ExportError(f"could not rewrite {source} in int8: {exc}") from exc


def _quantize_dynamic(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # It logs a hint about pre-processing (for convolutional models) on the root logger.
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(source, target, weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)


def _set_props(proto: onnx.ModelProto, props: dict[str, str]) -> None:
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)


def quantization_entry(report: QualityReport, method: str = "static") -> Quantization:
    tool = "charbot exporter.int8, " if method == "static" else ""
    return Quantization(
        method=method,
        weights="int8",
        tool=f"{tool}onnxruntime {ort.__version__}",
        fp32_val_loss=round(report.fp32_val_loss, 6),
        quantized_val_loss=round(report.int8_val_loss, 6),
        max_loss_increase=report.max_loss_increase,
    )


def validation_ids(checkpoint: Checkpoint, path: Path) -> np.ndarray:
    """The checkpoint's validation tokens, re-read from its corpus files as it was trained."""
    return corpus_ids(checkpoint, path)[1]


def corpus_ids(checkpoint: Checkpoint, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The checkpoint's training and validation tokens, re-read from its corpus files."""
    config = TrainConfig.from_dict(checkpoint["train_config"])
    files = [Path(f["path"]) for f in checkpoint["corpus"].get("files", [])]
    missing = [str(f) for f in files if not f.is_file()]
    if not files or missing:
        raise CorpusError(
            f"cannot measure the validation loss of {path}: its corpus file "
            f"{missing[0] if missing else '(none recorded)'} is not here"
        )
    corpus = read_corpora(files, config.corpus_format, DiscordOptions.of(config))
    if corpus.sha256 != checkpoint["corpus"]["sha256"]:
        raise CorpusError(
            f"cannot measure the validation loss of {path}: its corpus files changed since "
            "training (their sha256 differs)"
        )
    splits = encode_splits(corpus, build_tokenizer(checkpoint, path), config.val_fraction)
    return splits.train.numpy(), splits.val.numpy()


def onnx_val_loss(path: Path, val_ids: np.ndarray) -> float:
    """Mean cross-entropy (nats per token) of a contract file on `val_ids`, read as up to 16
    contiguous streams with the state carried: the trainer's final validation, in ONNX Runtime."""
    session = open_session(path)
    shape = read_metadata(path, session).model
    if len(val_ids) < 2:
        raise CorpusError("the validation text is too short to measure a loss on")
    streams = max(1, min(EVAL_STREAMS, (len(val_ids) - 1) // 64))
    length = (len(val_ids) - 1) // streams
    x = val_ids[: streams * length].reshape(streams, length).astype(np.int64)
    y = val_ids[1 : streams * length + 1].reshape(streams, length)
    state = np.zeros(
        contract.state_shape(shape.cell, shape.layers, streams, shape.hidden),
        dtype=np.float32,
    )
    total = 0.0
    for start in range(0, length, EVAL_CHUNK):
        end = min(length, start + EVAL_CHUNK)
        try:
            logits, state = session.run(
                list(contract.OUTPUT_NAMES),
                {contract.INPUT_TOKENS: x[:, start:end], contract.INPUT_STATE: state},
            )
        except ORT_ERRORS as exc:
            raise ExportError(f"ONNX Runtime cannot run {path}") from exc
        logits = logits.astype(np.float64)  # (S, chunk, vocab)
        top = logits.max(axis=-1, keepdims=True)
        log_z = np.log(np.exp(logits - top).sum(axis=-1)) + top[..., 0]
        picked = np.take_along_axis(logits, y[:, start:end, None], axis=-1)[..., 0]
        total += float((log_z - picked).sum())
    return total / (streams * length)


def measure_quality(
    fp32: Path, int8: Path, val_ids: np.ndarray, max_loss_increase: float
) -> QualityReport:
    return QualityReport(
        onnx_val_loss(fp32, val_ids), onnx_val_loss(int8, val_ids), max_loss_increase
    )


def export_int8(
    fp32: Path,
    target: Path,
    val_ids: np.ndarray,
    max_loss_increase: float,
    calibration_ids: np.ndarray | None = None,
    method: str = "static",
) -> QualityReport:
    """Quantize `fp32` into `target` if the validation loss rises by at most
    `max_loss_increase`; else write nothing and raise ExportError with both figures."""
    with tempfile.TemporaryDirectory(prefix="charbot-int8-") as tmp:
        candidate = Path(tmp) / target.name
        quantize_int8(fp32, candidate, calibration_ids, method)
        report = measure_quality(fp32, candidate, val_ids, max_loss_increase)
        if not report.ok:
            raise ExportError(report.refusal(target))
        proto = onnx.load(str(candidate))
        metadata = replace(
            read_metadata(candidate), quantization=quantization_entry(report, method)
        )
        _set_props(proto, metadata.to_props())
        onnx.save(proto, str(candidate))
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(candidate.read_bytes())
        except OSError as exc:
            raise ExportError(f"cannot write {target}: {exc.strerror or exc}") from exc
    log.info("quantized %s -> %s", fp32, target)
    return report
