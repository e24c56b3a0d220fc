"""Model cards: `NAME.md` beside `NAME.onnx`, written by every `exporter export`.

A card says what the file is and how it came to be: the model, the corpus (names, sizes,
sha256), the recipe, the wall time, the best validation loss, the export check (logit parity,
or for an int8 file the validation loss against fp32), the loss curve (`NAME.curve.png`) and
samples at temperatures 0.2, 0.8 and 1.2 with the seed that repeats them.

Everything comes from the `.onnx` file's metadata, plus the checkpoint and its run directory
(metrics.csv) when they are at hand: `python -m exporter card MODEL.onnx` writes the card of a
model whose checkpoint is gone, and says what it could not know.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.checkpoint import Checkpoint
from exporter.errors import ExportError
from exporter.metrics import METRICS_FILE, MetricsRow, read_metrics, rows_from_history
from exporter.onnx_export import ParityReport, read_metadata
from exporter.plots import draw_curve
from exporter.quantize import QualityReport
from exporter.sampling import SamplingParams, encode_prompt, generate, open_backend
from models.contract import ContractMetadata, Quantization

CARD_TEMPERATURES = (0.2, 0.8, 1.2)


@dataclass(frozen=True)
class SampleSpec:
    prompt: str = ""
    length: int = 300
    seed: int = 1


def card_path(model_path: Path) -> Path:
    return model_path.with_suffix(".md")


def curve_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.stem + ".curve.png")


def write_card(
    model_path: Path,
    *,
    checkpoint: Checkpoint | None = None,
    checkpoint_path: Path | None = None,
    parity: ParityReport | None = None,
    quality: QualityReport | None = None,
    samples: SampleSpec = SampleSpec(),
) -> Path:
    """Write `NAME.md` (and `NAME.curve.png` when there is a curve to draw); return the card."""
    metadata = read_metadata(model_path)
    training = dict(metadata.training)
    rows = _curve_rows(checkpoint, checkpoint_path)
    curve = curve_path(model_path)
    if rows:
        draw_curve(rows, curve, title=model_path.name)
    kept_curve = not rows and curve.is_file()  # drawn at export; the run is not here to redraw
    sections = [
        _header(model_path, metadata, training),
        _corpus(training, checkpoint),
        _recipe(training, checkpoint),
        _training(training),
        _check(parity, quality, metadata.quantization),
        _curve(curve if rows or kept_curve else None, checkpoint_path, rows),
        _samples(model_path, samples, metadata.quantization),
    ]
    path = card_path(model_path)
    try:
        path.write_text("\n\n".join(s.strip() for s in sections) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ExportError(f"cannot write the model card {path}: {exc.strerror or exc}") from exc
    return path


# --- sections -------------------------------------------------------------------------------


def _header(path: Path, metadata: ContractMetadata, training: dict[str, Any]) -> str:
    model, level = metadata.model, metadata.tokenizer.level
    cell = model.cell.upper()
    quantization = metadata.quantization
    weights = (
        f"{quantization.weights} weights ({quantization.method} quantization)"
        if quantization
        else "float32 weights"
    )
    size = path.stat().st_size
    dropout = f"; dropout {model.dropout:g} (training only)" if model.dropout else ""
    lines = [
        f"# {path.name}",
        "",
        f"A {level}-level {cell} trained on {training.get('corpus', 'an unrecorded corpus')}. "
        "Written by `python -m exporter`.",
        "",
        "| | |",
        "| --- | --- |",
        f"| model | {cell}, {model.layers} layers x {model.hidden} units, embedding "
        f"{model.embedding}, {metadata.tokenizer.vocab_size} {level} tokens{dropout} |",
        f"| parameters | {model.parameters:,} |",
        f"| file | `{path.name}`, {size:,} bytes ({size / 2**20:.2f} MiB), {weights}; contract "
        f"format {metadata.format} |",
    ]
    return "\n".join(lines)


def _corpus(training: dict[str, Any], checkpoint: Checkpoint | None) -> str:
    corpus: dict[str, Any] = checkpoint["corpus"] if checkpoint else {}
    files = corpus.get("files") or training.get("files") or []
    lines = ["## Corpus", ""]
    if files:
        lines += ["| file | format | characters | sha256 |", "| --- | --- | --- | --- |"]
        for f in files:
            lines.append(
                f"| `{f.get('name')}` | {f.get('format', 'text')} | {f.get('characters', 0):,} | "
                f"`{f.get('sha256')}` |"
            )
    else:
        lines.append(
            f"`{training.get('corpus')}`: {training.get('characters', 0):,} characters, sha256 "
            f"`{training.get('sha256')}`."
        )
    if len(files) > 1:
        lines += ["", f"All files together: sha256 `{training.get('sha256')}`."]
    summary = corpus.get("summary") or training.get("summary")
    if summary:
        from exporter.data import describe_summary

        lines += ["", describe_summary(summary) + "."]
    fraction = training.get("val_fraction")
    if fraction:
        lines += ["", f"Validation: the last {fraction:.0%} of each file."]
    return "\n".join(lines)


def _recipe(training: dict[str, Any], checkpoint: Checkpoint | None) -> str:
    commands = [c for c in (training.get("command"), training.get("export_command")) if c]
    lines = ["## Recipe", ""]
    if "export_command" in training:  # rerunnable commands (exporter.provenance)
        lines += ["From the repository root, with the corpus files above where it names them:", ""]
    lines += ["    " + str(c) for c in commands] or ["    (not recorded)"]
    config = checkpoint["train_config"] if checkpoint else training.get("config")
    if config and config.get("max_minutes") is not None and "export_command" in training:
        lines += [
            "",
            f"The run was bounded by {config['max_minutes']:g} minutes; the command bounds it "
            f"by the {int(training.get('steps') or 0):,} steps of these weights instead, so "
            "that it does the same steps on any machine (its learning rate then follows the "
            "steps, not the clock).",
        ]
    if config:
        shown = ", ".join(
            f"{key} {value}"
            for key, value in config.items()
            if key not in ("device", "threads", "log_interval")
        )
        lines += ["", f"Resolved options: {shown}."]
    else:
        lines += ["", "The checkpoint is not at hand: the options are those of the command above."]
    return "\n".join(lines)


def _training(training: dict[str, Any]) -> str:
    seconds = float(training.get("seconds") or 0.0)
    steps = int(training.get("steps") or 0)
    tokens = int(training.get("tokens") or 0)
    rate = f", {tokens / seconds:,.0f} tokens/s" if seconds and tokens else ""
    loss = training.get("best_val_loss")
    unit = training.get("val_loss_unit", "nats per token")
    loss_text = f"**{loss:.4f}** {unit}" if isinstance(loss, float) else "not recorded"
    precision = training.get("precision")
    precision_text = (
        "bf16 autocast (weights, optimiser and loss in fp32; this file is fp32)"
        if precision == "bf16"
        else str(precision or "not recorded")
    )
    lines = [
        "## Training",
        "",
        f"- wall time: {seconds:,.1f} s of training, {steps:,} steps{rate}",
        f"- precision of the training steps: {precision_text}",
        f"- best validation loss: {loss_text} (on the whole validation text, read as 16 "
        "streams with the state carried)",
    ]
    return "\n".join(lines)


def _check(
    parity: ParityReport | None, quality: QualityReport | None, quantization: Quantization | None
) -> str:
    lines = ["## Export check", ""]
    if quality is not None:
        lines += ["Validation loss, fp32 against int8 (ONNX Runtime):", ""]
        lines += ["    " + line for line in quality.table().splitlines()]
    elif quantization is not None:
        lines.append(
            f"{quantization.weights} file: validation loss {quantization.quantized_val_loss:.4f} "
            f"against {quantization.fp32_val_loss:.4f} for fp32 (recorded at quantization)."
        )
    if parity is not None:
        if quality is not None:
            lines += ["", "Logit parity of the fp32 export against PyTorch:", ""]
        lines += ["    " + line for line in parity.table().splitlines()]
    if parity is None and quality is None and quantization is None:
        lines.append(
            "Not checked here: the checkpoint is not at hand (`python -m exporter verify MODEL "
            "CKPT` compares the file with it)."
        )
    return "\n".join(lines)


def _curve(curve: Path | None, checkpoint_path: Path | None, rows: list[MetricsRow]) -> str:
    if curve is None:
        return "## Loss curve\n\nNo curve: the training run's history is not at hand."
    if not rows:
        return f"## Loss curve\n\n![loss curve]({curve.name})\n\nDrawn when the model was exported."
    source = "metrics.csv"
    if checkpoint_path is None or not (checkpoint_path.parent / METRICS_FILE).is_file():
        source = "the checkpoint's history (the time axis spreads its steps at the run's mean pace)"
    return (
        f"## Loss curve\n\n![loss curve]({curve.name})\n\nFrom {source}: {len(rows)} "
        "evaluations; the validation points are on a fixed sample of the validation text."
    )


def _samples(model_path: Path, spec: SampleSpec, quantization: Quantization | None) -> str:
    backend = open_backend(model_path)
    ids, _ = encode_prompt(backend.tokenizer, spec.prompt)
    prompt_arg = f' --prompt "{spec.prompt}"' if spec.prompt else ""
    lines = [
        "## Samples",
        "",
        f"`python -m exporter sample {model_path.name}{prompt_arg} --length {spec.length} "
        f"--temperature T --seed {spec.seed}`",
    ]
    if quantization is not None and quantization.seed_caveat:
        lines += [
            "",
            f"With this file ({quantization.weights}, {quantization.method} quantization), "
            f"{quantization.seed_caveat}: in a batch, its logits move with the other rows.",
        ]
    for temperature in CARD_TEMPERATURES:
        params = SamplingParams(temperature=temperature, seed=spec.seed)
        text = spec.prompt + "".join(
            backend.tokenizer.decode([t]) for t in generate(backend, ids, spec.length, params)
        )
        fence = "````" if "```" in text else "```"
        lines += ["", f"Temperature {temperature:g}, seed {spec.seed}:", "", fence, text, fence]
    return "\n".join(lines)


# --- the curve's rows -----------------------------------------------------------------------


def _curve_rows(checkpoint: Checkpoint | None, checkpoint_path: Path | None) -> list[MetricsRow]:
    """metrics.csv beside the checkpoint, else rows rebuilt from the checkpoint's history."""
    if checkpoint_path is not None:
        metrics = checkpoint_path.parent / METRICS_FILE
        if metrics.is_file():
            rows = read_metrics(metrics)
            if rows:
                return rows
    return [] if checkpoint is None else rows_from_history(checkpoint)
