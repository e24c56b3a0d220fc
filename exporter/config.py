"""The training configuration: one dataclass with the defaults, checked on creation.

The defaults suit a corpus of about 1 MB (tinyshakespeare) on a few CPU cores: a 2-layer LSTM of
256 units trained on parallel streams of 64 characters with the recurrent state carried from
window to window (truncated backpropagation through time). Tuned with `bench/training.py` on a
2-core machine: shorter windows (more updates per second) lowered the 90-second loss; 384 units
were too slow to learn anything in that budget. The batch and the peak learning rate depend on
what the steps run in (`RECIPE_BY_PRECISION`): fp32 learns most in a budget with 32 streams at
1e-2, while bf16 steps (`exporter.precision`) are cheap enough that 64 streams at 7e-3 read
about 25% more characters a second and learn more; fp32 with 64 streams does half the updates
and learns less. Dropout is not one value either: a 90-second run needs little or none and a
15-minute run overfits without it, so by default it is chosen from the run's size
(`exporter.budget`). See `docs/training-notes.md`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from exporter.errors import ConfigError
from models.contract import CELLS

LEVELS = ("char", "word")
# How a corpus file is read: `auto` takes DiscordChatExporter JSON for what it is (a `.json`
# file, or text that opens like one), anything else as plain text.
CORPUS_FORMATS = ("auto", "text", "discord")
DEVICES = ("auto", "cpu", "cuda")
# auto: bf16 autocast on a GPU that supports it or a CPU that computes it natively, else fp32
# (exporter.precision)
PRECISIONS = ("auto", "fp32", "bf16")
#: (batch_size, lr) for steps in each precision, where --batch-size / --lr are not given.
RECIPE_BY_PRECISION: dict[str, tuple[int, float]] = {"fp32": (32, 1e-2), "bf16": (64, 7e-3)}

#: The largest seed torch, numpy and Python's random all accept.
MAX_SEED = 2**64 - 1

# What a `--resume` may change: how long to go on and where to run. Anything else (the model, the
# data, the optimiser) would make the continued run differ from one that never stopped.
RESUMABLE_FIELDS = frozenset(
    {"max_steps", "max_minutes", "eval_interval", "log_interval", "device", "precision", "threads"}
)


@dataclass
class TrainConfig:
    # data
    corpus_format: str = "auto"  # "auto", "text" or "discord" (DiscordChatExporter JSON)
    authors: bool = True  # Discord exports: "author: content" lines, else the content alone
    drop_urls: bool = False  # Discord exports: leave URLs out of the text
    # Discord exports: a file of user ids (one a line) whose messages and names are left out;
    # the run keeps the file's path, never the ids.
    exclude_authors: str | None = None
    level: str = "char"  # "char" or "word"
    max_vocab: int = 10_000  # word level: the most frequent tokens kept, the rest map to <unk>
    val_fraction: float = 0.1  # validation is the last fraction of each corpus
    # model
    cell: str = "lstm"
    layers: int = 2
    hidden: int = 256
    embedding: int = 64
    dropout: float | None = None  # None: chosen from the run's size (exporter.budget)
    # batches: `batch_size` windows of `seq_len` tokens per step
    seq_len: int = 64
    batch_size: int | None = None  # None: by the precision (RECIPE_BY_PRECISION)
    carry_state: bool = True  # contiguous streams with the state carried (else random windows)
    # optimiser: AdamW, linear warm-up then cosine decay to min_lr_ratio * lr
    lr: float | None = None  # the peak; None: by the precision (RECIPE_BY_PRECISION)
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0  # 0 turns clipping off
    # budget: whichever ends first; None = unbounded (at least one must be set)
    max_steps: int | None = 3000
    max_minutes: float | None = None
    # evaluation and reporting
    eval_interval: int = 200  # steps between validations on a fixed sample
    eval_tokens: int = 16_384  # size of that sample (the final validation uses all of it)
    log_interval: int = 10  # steps between progress-bar updates (each one syncs the device)
    # runtime
    seed: int = 1337
    device: str = "auto"  # "auto", "cpu" or "cuda"
    precision: str = "auto"  # "auto", "fp32" or "bf16" (autocast of the training steps)
    threads: int = 0  # torch.set_num_threads; 0 leaves torch's default

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            # NaN passes every comparison below unnoticed, and trains to NaN.
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{_flag(f.name)} must be a finite number, not {value}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"--seed must be a whole number from 0 to {MAX_SEED}")
        self._check_choice("corpus_format", CORPUS_FORMATS)
        self._check_choice("level", LEVELS)
        self._check_choice("cell", CELLS)
        self._check_choice("device", DEVICES)
        self._check_choice("precision", PRECISIONS)
        for name in (
            "layers",
            "hidden",
            "embedding",
            "seq_len",
            "eval_interval",
            "eval_tokens",
            "log_interval",
            "max_vocab",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{_flag(name)} must be at least 1")
        for name in ("warmup_steps", "threads", "weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{_flag(name)} must not be negative")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ConfigError("--dropout must be in [0, 1)")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError("--val-fraction must be between 0 and 1 (exclusive)")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError("--batch-size must be at least 1")
        if self.lr is not None and not self.lr > 0.0:
            raise ConfigError("--lr must be positive")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError("min_lr_ratio must be in [0, 1]")
        if self.max_steps is None and self.max_minutes is None:
            raise ConfigError("set --max-steps or --max-minutes (or both) to bound the run")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError("--max-steps must be at least 1")
        if self.max_minutes is not None and not self.max_minutes > 0.0:
            raise ConfigError("--max-minutes must be positive")

    def _check_choice(self, name: str, choices: tuple[str, ...]) -> None:
        if getattr(self, name) not in choices:
            raise ConfigError(
                f"{_flag(name)} {getattr(self, name)!r} is not one of {', '.join(choices)}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild a config saved by `to_dict` (from a checkpoint); unknown keys are errors."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training option(s) {', '.join(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"invalid training options: {exc}") from exc

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def for_precision(self, precision: str) -> TrainConfig:
        """The batch and learning rate not given, filled in for steps that run in `precision`."""
        batch_size, lr = RECIPE_BY_PRECISION[precision]
        return self.replace(
            batch_size=batch_size if self.batch_size is None else self.batch_size,
            lr=lr if self.lr is None else self.lr,
        )

    @property
    def batch(self) -> int:
        """`batch_size` once filled in (`for_precision`): a run's steps need one."""
        if self.batch_size is None:
            raise ValueError("batch_size is chosen by the precision: call for_precision first")
        return self.batch_size

    @property
    def peak_lr(self) -> float:
        """`lr` once filled in (`for_precision`)."""
        if self.lr is None:
            raise ValueError("lr is chosen by the precision: call for_precision first")
        return self.lr


#: Options that default to None, meaning "chosen when the run starts" (and kept in its checkpoint).
CHOSEN_BY_THE_RUN = frozenset({"dropout", "batch_size", "lr"})


def resume_conflicts(saved: TrainConfig, wanted: TrainConfig) -> list[str]:
    """The options that differ between a checkpoint's config and a resume request, as flags."""
    return [
        f"{_flag(f.name)} {getattr(wanted, f.name)!r} (the checkpoint has "
        f"{getattr(saved, f.name)!r})"
        for f in fields(TrainConfig)
        if f.name not in RESUMABLE_FIELDS
        and getattr(saved, f.name) != getattr(wanted, f.name)
        # No --dropout (--batch-size, --lr) means "whatever the run chose", not another value.
        and not (f.name in CHOSEN_BY_THE_RUN and getattr(wanted, f.name) is None)
    ]


def _flag(name: str) -> str:
    return "--format" if name == "corpus_format" else "--" + name.replace("_", "-")
