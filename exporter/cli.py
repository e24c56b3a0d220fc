"""The exporter's command line: `python -m exporter
train|export|card|report|verify|sample|chat-template`.

    python -m exporter train corpus.txt --out runs/shake           # -> runs/shake/{best,last}.pt
    python -m exporter train --out runs/shake --resume             # go on after Ctrl-C
    python -m exporter export runs/shake/best.pt -o shake.onnx     # export, check, parity table
    python -m exporter verify shake.onnx runs/shake/best.pt        # the parity check alone
    python -m exporter sample shake.onnx --prompt "ROMEO:" --length 300 --temperature 0.8
    python -m exporter train server.json --out runs/server               # a Discord export
    python -m exporter report runs/shake runs/server                     # table + compare.png
    python -m exporter export runs/shake/best.pt -o shake-int8.onnx --quantize int8
    python -m exporter card shake.onnx                                   # rewrite shake.md
    python -m exporter chat-template shake.onnx play                     # name its template

`main(argv)` returns the exit status: 0 on success, 1 for a bad input or a failed check (one
sentence on stderr), 2 for a bad option (argparse), 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shlex
import sys
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

from tqdm import tqdm

from exporter import provenance, quantize
from exporter.card import SampleSpec, write_card
from exporter.checkpoint import (
    Checkpoint,
    build_model,
    build_tokenizer,
    load_checkpoint,
    training_metadata,
)
from exporter.config import (
    CORPUS_FORMATS,
    DEVICES,
    LEVELS,
    MAX_SEED,
    PRECISIONS,
    RECIPE_BY_PRECISION,
    TrainConfig,
)
from exporter.data import describe_summary
from exporter.errors import ExporterError, ExportError, TrainingInterrupted
from exporter.onnx_export import (
    ParityReport,
    export_onnx,
    read_metadata,
    set_chat_template,
    verify_parity,
)
from exporter.report import COMPARE_FILE, report
from exporter.sampling import SamplingParams, encode_prompt, generate, open_backend
from exporter.train import describe, train
from models.charrnn import CharRNN
from models.chat import CHAT_TEMPLATES, ChatTemplate, is_chat_template
from models.contract import CELLS, Quantization
from models.sampling import MAX_TEMPERATURE, check_temperature
from models.tokenizers import Tokenizer

PROG = "python -m exporter"
DEFAULTS = TrainConfig()
DEFAULT_TOLERANCE = 1e-4  # largest |Δlogits| between ONNX Runtime and PyTorch


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        _check_combinations(parser, args)
    except SystemExit as exc:  # argparse has printed its usage and one-line error (or --help)
        return exc.code if isinstance(exc.code, int) else 2
    _setup_logging(args.verbose)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        status: int = args.run(args, argv)
        return status
    except TrainingInterrupted as exc:
        if exc.checkpoint is None:
            _error(str(exc))
        else:
            resume = argv if "--resume" in argv else [*argv, "--resume"]
            _error(f"{exc}; continue it with: {PROG} {shlex.join(resume)}")
        return 130
    except ExporterError as exc:
        _error(str(exc))
        return 1
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (`sample ... | head`): stop quietly, as `cat` does, and
        # point stdout at /dev/null so that Python's flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _check_combinations(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Options that mean nothing without another are refused, not silently ignored."""
    if args.command == "export" and args.max_loss_increase is not None and not args.quantize:
        parser.error("--max-loss-increase judges a quantized file: it needs --quantize int8")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    # -v also after the command; SUPPRESS keeps the subcommand from resetting it to False.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log details"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser(
        "train", parents=[common], help="train a model on text files or Discord exports"
    )
    train.add_argument(
        "corpus",
        nargs="*",
        type=Path,
        metavar="CORPUS",
        help="UTF-8 text files or DiscordChatExporter JSON (with --resume: the checkpoint's)",
    )
    train.add_argument("--out", type=Path, required=True, help="directory for last.pt and best.pt")
    train.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    train.add_argument("--overwrite", action="store_true", help="replace a run already in OUT")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_train_options(train)
    train.set_defaults(run=run_train)

    export = commands.add_parser(
        "export", parents=[common], help="export a checkpoint to a contract ONNX file"
    )
    export.add_argument("checkpoint", type=Path, metavar="CKPT")
    export.add_argument(
        "-o",
        "--output",
        type=Path,
        help="the .onnx file to write (default: CKPT with the suffix .onnx)",
    )
    export.add_argument(
        "--tolerance",
        type=_non_negative,
        default=DEFAULT_TOLERANCE,
        help="largest |Δlogits| allowed between ONNX Runtime and PyTorch",
    )
    export.add_argument(
        "--quantize",
        choices=quantize.QUANTIZE_CHOICES,
        help="int8: weights and compute in int8, a seed repeating as with fp32; int8-dynamic: "
        "ONNX Runtime's dynamic quantization, faster priming, but a seed repeats only when the "
        "request runs alone",
    )
    export.add_argument(
        "--max-loss-increase",
        type=_non_negative,
        metavar="X",
        help="with --quantize: refuse when the validation loss rises by more, nats/token "
        f"(default: {quantize.DEFAULT_MAX_LOSS_INCREASE})",
    )
    export.add_argument(
        "--chat-template",
        choices=("auto", *CHAT_TEMPLATES),
        default="auto",
        help="how a chat becomes a prompt for this model (auto: chosen from the corpus: lines "
        "for a Discord export, play for a text of speaker headings, else lines)",
    )
    _add_card_options(export)
    export.set_defaults(run=run_export)

    template = commands.add_parser(
        "chat-template",
        parents=[common],
        help="name the chat template in an .onnx file's metadata (weights untouched)",
    )
    template.add_argument("model", type=Path, metavar="MODEL.onnx")
    template.add_argument("template", choices=CHAT_TEMPLATES)
    template.set_defaults(run=run_chat_template)

    card = commands.add_parser(
        "card", parents=[common], help="write the model card NAME.md of an .onnx file"
    )
    card.add_argument("model", type=Path, metavar="MODEL.onnx")
    card.add_argument("--checkpoint", type=Path, metavar="CKPT", help="its checkpoint, if kept")
    _add_card_options(card)
    card.set_defaults(run=run_card)

    report_cmd = commands.add_parser(
        "report", parents=[common], help="compare training runs: a table and compare.png"
    )
    report_cmd.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    report_cmd.add_argument(
        "--png", type=Path, help=f"where to draw the curves (default: {COMPARE_FILE} in the cwd)"
    )
    report_cmd.set_defaults(run=run_report)

    verify = commands.add_parser(
        "verify", parents=[common], help="compare an ONNX file with its checkpoint"
    )
    verify.add_argument("model", type=Path, metavar="MODEL.onnx")
    verify.add_argument("checkpoint", type=Path, metavar="CKPT")
    verify.add_argument("--tolerance", type=_non_negative, default=DEFAULT_TOLERANCE)
    verify.add_argument(
        "--max-loss-increase",
        type=_non_negative,
        metavar="X",
        help="int8 files: the allowed validation-loss rise (default: the one it was made with)",
    )
    verify.set_defaults(run=run_verify)

    sample = commands.add_parser(
        "sample", parents=[common], help="generate text from a .pt or .onnx model"
    )
    sample.add_argument("model", type=Path, metavar="FILE", help="a checkpoint or an .onnx file")
    sample.add_argument("--prompt", default="", help="text to prime the model with")
    sample.add_argument("--length", type=_count, default=500, help="new tokens to generate")
    sample.add_argument(
        "--temperature",
        type=_temperature,
        default=0.8,
        help=f"0 = greedy, at most {MAX_TEMPERATURE:g} (the bot's bound)",
    )
    sample.add_argument("--top-k", type=_count, default=0, help="0 = off")
    sample.add_argument("--top-p", type=_finite, default=1.0, help="1.0 = off")
    sample.add_argument("--seed", type=_seed, default=None, help="makes the text repeatable")
    sample.set_defaults(run=run_sample)
    return parser


def _add_card_options(parser: argparse.ArgumentParser) -> None:
    spec = SampleSpec()
    parser.add_argument("--prompt", default=spec.prompt, help="the card's samples start with it")
    parser.add_argument("--length", type=_count, default=spec.length, help="tokens per sample")
    parser.add_argument("--seed", type=_seed, default=spec.seed, help="the samples' seed")


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    """TrainConfig's fields as options. Each defaults to None, meaning "not given": the config's
    default applies, or with --resume the checkpoint's value."""

    def option(flag: str, help: str, **kwargs: Any) -> None:
        dest = flag[2:].replace("-", "_")
        default = getattr(DEFAULTS, dest)
        if kwargs.get("type") in (int, float):
            kwargs["metavar"] = "N" if kwargs["type"] is int else "X"
        if kwargs.get("type") is float:
            kwargs["type"] = _finite  # nan and inf would pass the config's range checks
        parser.add_argument(
            flag, dest=dest, default=None, help=f"{help} (default: {default})", **kwargs
        )

    parser.add_argument(
        "--format",
        dest="corpus_format",
        choices=CORPUS_FORMATS,
        default=None,
        help="corpus files: plain text, DiscordChatExporter JSON, or told apart by their content "
        f"(default: {DEFAULTS.corpus_format})",
    )
    option(
        "--authors",
        "Discord exports: 'author: content' lines (--no-authors: the content alone)",
        action=argparse.BooleanOptionalAction,
    )
    option("--drop-urls", "Discord exports: leave URLs out", action=argparse.BooleanOptionalAction)
    option(
        "--exclude-authors",
        "Discord exports: leave out the messages and names of the user ids in this file, one a "
        "line (`python -m bot privacy list` prints the members who opted out)",
        metavar="FILE",
    )
    option("--level", "tokens are characters or words", choices=LEVELS)
    option("--max-vocab", "word level: vocabulary size, <unk> included", type=int)
    option("--val-fraction", "validation is this last fraction of each corpus", type=float)
    option("--cell", "recurrent cell", choices=CELLS)
    option("--layers", "recurrent layers", type=int)
    option("--hidden", "units per layer", type=int)
    option("--embedding", "embedding size", type=int)
    option("--dropout", "dropout probability; None: chosen from the run's size", type=float)
    option("--seq-len", "tokens per training window", type=int)
    by_precision = RECIPE_BY_PRECISION.items()
    option(
        "--batch-size",
        "windows per step; None: by the precision, "
        + ", ".join(f"{batch} for {name} steps" for name, (batch, _) in by_precision),
        type=int,
    )
    option(
        "--carry-state",
        "read the text as contiguous streams, carrying the state",
        action=argparse.BooleanOptionalAction,
    )
    option(
        "--lr",
        "peak learning rate; None: by the precision, "
        + ", ".join(f"{lr:g} for {name} steps" for name, (_, lr) in by_precision),
        type=float,
    )
    option("--warmup-steps", "steps of linear warm-up", type=int)
    option("--weight-decay", "AdamW weight decay", type=float)
    option("--grad-clip", "gradient norm clip, 0 = off", type=float)
    option("--max-steps", "stop after this many steps", type=int)
    option(
        "--max-minutes", "stop after this many minutes (alone, it replaces --max-steps)", type=float
    )
    option("--eval-interval", "steps between validations", type=int)
    option("--eval-tokens", "validation sample size in tokens", type=int)
    option("--log-interval", "steps between progress updates", type=int)
    option("--seed", "random seed", type=_seed, metavar="N")
    option("--device", "where to train", choices=DEVICES)
    option(
        "--precision",
        "autocast of the training steps: auto is bf16 where the GPU or CPU computes it natively, "
        "else fp32",
        choices=PRECISIONS,
    )
    option("--threads", "CPU threads for torch, 0 = torch's default", type=int)


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The defaults (or the checkpoint's config, with --resume), then the options given."""
    given = {
        f.name: getattr(args, f.name)
        for f in fields(TrainConfig)
        if getattr(args, f.name, None) is not None
    }
    if "exclude_authors" in given:
        # Kept in the run as an absolute path, so that --resume finds it from anywhere.
        given["exclude_authors"] = str(Path(given["exclude_authors"]).resolve())
    if "max_minutes" in given and "max_steps" not in given:
        given["max_steps"] = None  # the time budget alone bounds the run
    base = DEFAULTS
    if args.resume and (args.out / "last.pt").exists():
        base = TrainConfig.from_dict(load_checkpoint(args.out / "last.pt")["train_config"])
    return base.replace(**given)


def run_train(args: argparse.Namespace, argv: list[str]) -> int:
    if not args.corpus and not args.resume:
        raise ExporterError("no corpus file was given")
    config = train_config(args)
    result = train(
        config,
        args.corpus,
        args.out,
        progress=not args.no_progress,
        resume=args.resume,
        overwrite=args.overwrite,
        command=f"{PROG} {shlex.join(argv)}",
        on_corpus=lambda summary: print(describe_summary(summary), flush=True),
    )
    summary = describe(result)
    rate = (
        f"({summary['tokens_per_second']:,} tokens/s, {result.precision.describe()})"
        if result.tokens_per_second
        else "(the run had already finished: nothing more to train)"
    )
    print(
        f"trained {summary['steps']} steps in {summary['seconds']:.1f} s {rate}; best "
        f"validation loss {result.best_val_loss:.4f} nats/token"
    )
    print(f"best: {result.best_path}\nlast: {result.last_path}")
    return 0


def run_export(args: argparse.Namespace, argv: list[str]) -> int:
    checkpoint = load_checkpoint(args.checkpoint)
    model = build_model(checkpoint, args.checkpoint)
    tokenizer = build_tokenizer(checkpoint, args.checkpoint)
    output: Path = args.output or args.checkpoint.with_suffix(".onnx")
    if output.is_dir():
        raise ExportError(f"the output {output} is a directory; give a file name ending in .onnx")
    if output.parent.exists() and not output.parent.is_dir():
        raise ExportError(f"cannot write {output}: {output.parent} is a file, not a directory")
    training = training_metadata(checkpoint)
    chat_template = _chat_template(args.chat_template, training.pop("chat_template", None))
    training.update(
        provenance.rerun_metadata(
            checkpoint,
            args.checkpoint,
            output,
            _export_options(args),
            DEFAULTS.to_dict(),
            train_flags(),
        )
    )
    quality = None
    # Nothing reaches `output` before every check has passed, so a failed export never replaces
    # a good model: an fp32 file is written beside it and renamed over it; an int8 file is made
    # from an fp32 export in a temporary folder, and written only once its own check passes.
    staged = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        with tempfile.TemporaryDirectory(prefix="charbot-export-") as tmp:
            fp32 = Path(tmp) / output.name if args.quantize else staged
            export_onnx(model, tokenizer, training, fp32, chat_template)
            parity = verify_parity(fp32, model, tolerance=args.tolerance)
            print(parity.table())
            _parity_verdict(parity)
            if args.quantize:
                train_ids, val_ids = quantize.corpus_ids(checkpoint, args.checkpoint)
                limit = args.max_loss_increase
                if limit is None:
                    limit = quantize.DEFAULT_MAX_LOSS_INCREASE
                method = quantize.METHODS[args.quantize]
                quality = quantize.export_int8(fp32, output, val_ids, limit, train_ids, method)
                print(quality.table())
            else:
                try:
                    os.replace(staged, output)
                except OSError as exc:
                    raise ExportError(f"cannot write {output}: {exc.strerror or exc}") from exc
    finally:
        staged.unlink(missing_ok=True)
    size = output.stat().st_size
    print(
        f"wrote {output}: {size:,} bytes ({size / 2**20:.2f} MiB), {model.config.cell} "
        f"{model.config.layers}x{model.config.hidden}, {model.num_parameters():,} parameters, "
        f"{tokenizer.vocab_size} {tokenizer.level} tokens"
        + (f", {args.quantize} weights" if args.quantize else "")
        + f", chat template {chat_template or 'lines (none named)'}"
    )
    card = write_card(
        output,
        checkpoint=checkpoint,
        checkpoint_path=args.checkpoint,
        parity=parity,
        quality=quality,
        samples=SampleSpec(args.prompt, args.length, args.seed),
    )
    print(f"wrote {card}")
    if training["best_val_loss"] is None:
        print(
            f"note: no validation loss is recorded in {output}: the weights of "
            f"{args.checkpoint} were saved between validations (best.pt's always have one)"
        )
    return 0


def _chat_template(asked: str, detected: object) -> ChatTemplate | None:
    """The option's template; with `auto`, the one the corpus suggested (a checkpoint made
    before corpora were looked at for it has none: the file then names none, which is lines)."""
    if is_chat_template(asked):
        return asked
    return detected if is_chat_template(detected) else None


def run_chat_template(args: argparse.Namespace, argv: list[str]) -> int:
    before = read_metadata(args.model).chat_template
    set_chat_template(args.model, args.template)
    print(f"{args.model}: chat template {args.template} (was {before or 'none: lines'})")
    return 0


def train_flags() -> dict[str, provenance.Flag]:
    """How each option of `exporter train` is written, by TrainConfig field."""
    parser = argparse.ArgumentParser(add_help=False)
    _add_train_options(parser)
    return {
        action.dest: provenance.Flag(
            action.option_strings[0], isinstance(action, argparse.BooleanOptionalAction)
        )
        for action in parser._actions
        if action.option_strings
    }


def _export_options(args: argparse.Namespace) -> list[str]:
    """The options of this export that a rerun needs to write the same file and card."""
    spec, words = SampleSpec(), []
    if args.tolerance != DEFAULT_TOLERANCE:
        words += ["--tolerance", f"{args.tolerance:g}"]
    if args.quantize:
        words += ["--quantize", args.quantize]
    if args.max_loss_increase is not None:
        words += ["--max-loss-increase", f"{args.max_loss_increase:g}"]
    if args.chat_template != "auto":
        words += ["--chat-template", args.chat_template]
    for flag, value, default in (
        ("--prompt", args.prompt, spec.prompt),
        ("--length", args.length, spec.length),
        ("--seed", args.seed, spec.seed),
    ):
        if value != default:
            words += [flag, str(value)]
    return words


def run_card(args: argparse.Namespace, argv: list[str]) -> int:
    checkpoint = load_checkpoint(args.checkpoint) if args.checkpoint else None
    card = write_card(
        args.model,
        checkpoint=checkpoint,
        checkpoint_path=args.checkpoint,
        samples=SampleSpec(args.prompt, args.length, args.seed),
    )
    print(f"wrote {card}")
    return 0


def run_report(args: argparse.Namespace, argv: list[str]) -> int:
    png: Path = args.png or Path(COMPARE_FILE)
    text, _ = report(args.runs, png)
    print(text)
    print(f"wrote {png}")
    return 0


def run_verify(args: argparse.Namespace, argv: list[str]) -> int:
    metadata = read_metadata(args.model)
    checkpoint = load_checkpoint(args.checkpoint)
    model = build_model(checkpoint, args.checkpoint)
    tokenizer = build_tokenizer(checkpoint, args.checkpoint)
    onnx_shape = metadata.model
    shape = ("cell", "layers", "hidden", "embedding")
    if metadata.tokenizer.vocab != tokenizer.vocab or any(
        getattr(onnx_shape, key) != getattr(model.config, key) for key in shape
    ):
        raise ExportError(
            f"{args.model} was not exported from {args.checkpoint}: their vocabularies or model "
            "shapes differ"
        )
    if metadata.quantization is not None:
        return _verify_quantized(args, model, tokenizer, checkpoint, metadata.quantization)
    parity = verify_parity(args.model, model, tolerance=args.tolerance)
    print(parity.table())
    return _parity_verdict(parity)


def _verify_quantized(
    args: argparse.Namespace,
    model: CharRNN,
    tokenizer: Tokenizer,
    checkpoint: Checkpoint,
    quantization: Quantization,
) -> int:
    """An int8 file against its checkpoint: the validation-loss rise, not logit parity."""
    limit: float = args.max_loss_increase
    if limit is None:
        limit = quantization.max_loss_increase
    val_ids = quantize.validation_ids(checkpoint, args.checkpoint)
    with tempfile.TemporaryDirectory(prefix="charbot-verify-") as tmp:
        fp32 = export_onnx(model, tokenizer, training_metadata(checkpoint), Path(tmp) / "fp32.onnx")
        quality = quantize.measure_quality(fp32, args.model, val_ids, limit)
    print(quality.table())
    if not quality.ok:
        raise ExportError(
            f"{args.model} fails its quality check: validation loss {quality.int8_val_loss:.4f} "
            f"against {quality.fp32_val_loss:.4f} for fp32 ({quality.shown_increase}, more than "
            f"{limit:g})"
        )
    return 0


def _parity_verdict(report: ParityReport) -> int:
    """0 when ONNX Runtime matched PyTorch; else the error the CLI reports in one sentence."""
    if not report.ok:
        raise ExportError(
            f"parity check failed: max |Δlogits| {report.max_abs_diff:.2e} is over the tolerance "
            f"{report.tolerance:.0e}"
        )
    return 0


def run_sample(args: argparse.Namespace, argv: list[str]) -> int:
    params = SamplingParams(args.temperature, args.top_k, args.top_p, args.seed)
    backend = open_backend(args.model)
    tokenizer = backend.tokenizer
    ids, encoding = encode_prompt(tokenizer, args.prompt)
    if encoding.unknown:
        fate = f"replaced by {tokenizer.unk_token!r}" if tokenizer.unknown == "unk" else "dropped"
        shown = ", ".join(repr(piece) for piece in dict.fromkeys(encoding.unknown))
        print(
            f"note: {len(encoding.unknown)} piece(s) of the prompt are not in the model's "
            f"vocabulary and were {fate}: {shown}",
            file=sys.stderr,
        )
    out = sys.stdout
    out.write(args.prompt)
    for token in generate(backend, ids, args.length, params):
        out.write(tokenizer.decode([token]))
        out.flush()
    out.write("\n")
    return 0


def _count(text: str) -> int:
    """argparse type: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _finite(text: str) -> float:
    """argparse type: a finite number (float() takes "nan" and "inf")."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _non_negative(text: str) -> float:
    """argparse type: a finite number of 0 or more (a tolerance, an allowed loss rise)."""
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value:g} is negative")
    return value


def _temperature(text: str) -> float:
    """argparse type: a sampling temperature within the bound the bot has."""
    try:
        return check_temperature(_finite(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).rstrip(".")) from None


def _seed(text: str) -> int:
    """argparse type: a seed every random generator takes, 0 to MAX_SEED."""
    value = _count(text)
    if value > MAX_SEED:
        raise argparse.ArgumentTypeError(f"{value} is more than {MAX_SEED}")
    return value


def _error(message: str) -> None:
    message = message.rstrip()
    ended = message.endswith((".", "?", "!"))  # "... a DiscordChatExporter JSON export?"
    print(f"error: {message}{'' if ended else '.'}", file=sys.stderr)


class _StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is at the time (tests swap it), above any progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stderr)


def _setup_logging(verbose: bool) -> None:
    logger = logging.getLogger("exporter")
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)
