"""Train a CharRNN on text files, with checkpoints that resume exactly.

    python -m exporter train corpus.txt --out runs/shakespeare

One step: a batch of B windows of T tokens, run from the carried state (or a zero state), the mean
cross-entropy of predicting each next token, gradient clipping, one AdamW step. The learning rate
warms up linearly, then decays along a cosine to `min_lr_ratio * lr` by the end of the budget
(steps, or seconds when only `max_minutes` bounds the run). Every `eval_interval` steps the model
is validated on a fixed sample of the validation text and `last.pt` (and `best.pt`, when the
validation loss improved) are written; at the end `best.pt` is validated on the whole validation
text. Ctrl-C stops at the end of the current step and writes `last.pt`; `resume=True` goes on
from it as if nothing had happened (same weights, same losses). The steps run in fp32 or under
bf16 autocast (`--precision`, exporter.precision); the weights, the optimiser and the loss are
fp32 either way, and the checkpoint records which one ran.
"""

from __future__ import annotations

import logging
import math
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from exporter.budget import choose_dropout
from exporter.checkpoint import (
    Checkpoint,
    CheckpointKind,
    build_tokenizer,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from exporter.config import CHOSEN_BY_THE_RUN, TrainConfig, resume_conflicts
from exporter.data import Corpus, Splits, encode_splits, eval_streams, make_batches, read_corpora
from exporter.discord_export import DiscordOptions
from exporter.errors import (
    CheckpointError,
    ConfigError,
    CorpusError,
    DeviceError,
    TrainingDiverged,
    TrainingInterrupted,
)
from exporter.metrics import RunLog
from exporter.precision import Precision, resolve_precision
from models.charrnn import CharRNN, CharRNNConfig
from models.tokenizers import Tokenizer, fit_tokenizer

log = logging.getLogger(__name__)

# Called after every completed step with the number of steps done; raising KeyboardInterrupt from
# it acts like Ctrl-C at that point (tests use this to stop a run at a chosen step).
StepHook = Callable[[int], None]
# Called once the corpus is read, with its summary (Corpus.summary()): the CLI prints it.
CorpusHook = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class TrainResult:
    best_path: Path
    last_path: Path
    steps: int  # steps done in all, resumed runs included
    seconds: float  # training seconds in all (the final validation excluded)
    tokens_per_second: float  # training throughput of this call
    best_val_loss: float  # best.pt's loss on the whole validation text, nats per token
    train_loss: list[float]  # the loss of every step
    val_history: list[tuple[int, float]]  # (step, loss on the validation sample)
    precision: Precision  # what this call's steps ran in, and why


def train(
    config: TrainConfig,
    corpus_paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    progress: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    command: str | None = None,
    on_step: StepHook | None = None,
    on_corpus: CorpusHook | None = None,
) -> TrainResult:
    """Train per `config` on the corpus files, writing `out_dir/last.pt` and `out_dir/best.pt`.

    With `resume`, go on from `out_dir/last.pt`; the config may then differ only in its budget
    and runtime options, and `corpus_paths` may be empty (the checkpoint's own are used).
    With `config.dropout` None, the dropout is chosen from the run's size (exporter.budget) and
    recorded in the checkpoint's config. `out_dir` also gets metrics.csv and curve.png.
    """
    paths = [Path(p) for p in corpus_paths]
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device, config.cell)
    if config.threads:
        torch.set_num_threads(config.threads)
    out_dir = Path(out_dir)
    created = _prepare_out_dir(out_dir)
    try:
        trainer = _set_up(
            config, paths, out_dir, device, precision, resume, overwrite, command, on_corpus
        )
    except BaseException:
        # A run that could not start (a bad corpus, say) leaves no empty directory behind.
        _remove_empty(created)
        raise
    return trainer.run(progress, on_step)


def _set_up(
    config: TrainConfig,
    paths: list[Path],
    out_dir: Path,
    device: torch.device,
    precision: Precision,
    resume: bool,
    overwrite: bool,
    command: str | None,
    on_corpus: CorpusHook | None,
) -> Trainer:
    """Everything before the first step: the checkpoint to resume, the corpus, the batches."""
    last_path = out_dir / "last.pt"
    saved: Checkpoint | None = None
    if resume:
        saved = _load_for_resume(last_path, config)
        chosen = saved["train_config"]
        config = config.replace(**{name: chosen[name] for name in CHOSEN_BY_THE_RUN})
        if not paths:
            paths = [Path(f["path"]) for f in saved["corpus"]["files"]]
    elif last_path.exists() and not overwrite:
        raise ConfigError(
            f"{out_dir} already holds a training run; pass --resume to continue it, --overwrite "
            "to start again, or another --out"
        )
    config = config.for_precision(precision.name)  # the batch and learning rate not given
    corpus = read_corpora(paths, config.corpus_format, DiscordOptions.of(config))
    if on_corpus is not None:
        on_corpus(corpus.summary())
    if saved is not None:
        if corpus.sha256 != saved["corpus"]["sha256"]:
            raise CorpusError(
                f"the corpus is not the text {last_path} was trained on (sha256 "
                f"{corpus.sha256[:12]} instead of {saved['corpus']['sha256'][:12]}); a resume "
                "needs the same files"
            )
        tokenizer = build_tokenizer(saved, last_path)
    else:
        tokenizer = fit_tokenizer(corpus.text, config.level, config.max_vocab)
    splits = encode_splits(corpus, tokenizer, config.val_fraction)
    if splits.unknown:
        log.warning(
            "%d pieces of the corpus are outside the %d-token vocabulary (%s): %s, e.g. %s",
            splits.unknown,
            tokenizer.vocab_size,
            tokenizer.level,
            "mapped to " + repr(tokenizer.unk_token) if tokenizer.unknown == "unk" else "dropped",
            ", ".join(repr(p) for p in splits.unknown_examples),
        )
    if config.dropout is None:
        dropout = choose_dropout(config, len(splits.train), tokenizer.vocab_size, device, precision)
        log.info("dropout %.2f, chosen from the run's budget and corpus size", dropout)
        config = config.replace(dropout=dropout)
    log.info("precision: %s", precision.describe())
    trainer = Trainer(config, tokenizer, splits, corpus, out_dir, device, precision, command)
    if saved is not None:
        _warn_if_precision_changed(saved, precision, last_path)
        trainer.restore(saved)
    trainer.run_log = RunLog(out_dir, resume_step=trainer.step if saved is not None else None)
    return trainer


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            "--device cuda was asked for but torch sees no CUDA GPU on this machine; "
            "use --device cpu"
        )
    return torch.device(name)


def learning_rate(config: TrainConfig, step: int, elapsed: float) -> float:
    """Linear warm-up over `warmup_steps`, then cosine decay to `min_lr_ratio * lr`.

    The decay follows whichever budget is nearer its end: the step fraction, or the elapsed-time
    fraction, so that a run bounded only by `max_minutes` still ends at the low learning rate.
    """
    if step < config.warmup_steps:
        return config.peak_lr * (step + 1) / config.warmup_steps
    fractions = [0.0]
    if config.max_steps is not None:
        decay_steps = max(1, config.max_steps - config.warmup_steps)
        fractions.append((step - config.warmup_steps) / decay_steps)
    if config.max_minutes is not None:
        fractions.append(elapsed / (60.0 * config.max_minutes))
    progress = min(1.0, max(fractions))
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 -> 0
    return config.peak_lr * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * cosine)


def make_optimizer(model: CharRNN, config: TrainConfig) -> torch.optim.AdamW:
    # Decay the weight matrices (and the embedding), not the biases, as nanoGPT does.
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # The fused implementation runs the whole update in one kernel per device: a little faster.
    return torch.optim.AdamW(groups, lr=config.peak_lr, betas=(0.9, 0.99), fused=True)


class Trainer:
    """The state of one training run and the loop over it."""

    def __init__(
        self,
        config: TrainConfig,
        tokenizer: Tokenizer,
        splits: Splits,
        corpus: Corpus,
        out_dir: Path,
        device: torch.device,
        precision: Precision,
        command: str | None,
    ) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.corpus = corpus
        self.device = device
        self.precision = precision
        if device.type == "cuda":
            # cuDNN runs the LSTM/GRU/RNN; let it pick the fastest kernels for these fixed shapes.
            torch.backends.cudnn.benchmark = True
        self.command = command or "exporter.train.train (Python API)"
        self.last_path = out_dir / "last.pt"
        self.best_path = out_dir / "best.pt"
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        model_config = CharRNNConfig(
            vocab_size=tokenizer.vocab_size,
            cell=config.cell,
            layers=config.layers,
            hidden=config.hidden,
            embedding=config.embedding,
            dropout=config.dropout or 0.0,
        )
        self.model = CharRNN(model_config).to(device)
        self.optimizer = make_optimizer(self.model, config)
        self.batches = make_batches(
            splits.train, config.batch, config.seq_len, config.carry_state, config.seed
        )
        self.val_x, self.val_y = eval_streams(splits.val)  # each (S, L)
        # The periodic validation reads the first columns of the streams: a fixed sample.
        self.sample_columns = max(1, min(self.val_x.size(1), config.eval_tokens // len(self.val_x)))
        self.step = 0
        self.elapsed = 0.0
        self.best_val_loss: float | None = None
        self.best_step: int | None = None
        self.saved_step: int | None = None  # the step last.pt holds
        self.train_loss: list[float] = []
        self.val_history: list[tuple[int, float]] = []
        self.carried: torch.Tensor | None = None  # (layers * k, B, H) when carrying state
        self.pending: list[torch.Tensor] = []  # losses not yet read back from the device
        self.logged_losses = 0  # how many of train_loss the metrics rows already cover
        self.lr = learning_rate(config, 0, 0.0)  # the last step's
        self.run_log: RunLog | None = None
        log.info(
            "model: %s %dx%d, %d parameters; %d training and %d validation tokens",
            config.cell,
            config.layers,
            config.hidden,
            self.model.num_parameters(),
            len(splits.train),
            len(splits.val),
        )

    # --- one step ---------------------------------------------------------------------------

    def train_step(self) -> None:
        cfg = self.config
        batch = self.batches.next(self.step)
        x = batch.x.to(self.device, non_blocking=True)  # (B, T)
        y = batch.y.to(self.device, non_blocking=True)  # (B, T)
        if batch.fresh or self.carried is None:
            state = self.model.initial_state(cfg.batch, self.device)
        else:
            state = self.carried
        self.lr = lr = learning_rate(cfg, self.step, self.elapsed)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with self.precision.forward(self.device):
            logits, state_out = self.model(x, state)  # (B, T, vocab), (layers * k, B, H)
        # The loss in fp32 whatever the steps ran in: a softmax over the vocabulary needs it.
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))
        self.optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip, foreach=True)
        self.optimizer.step()
        if cfg.carry_state:
            # Truncated BPTT: the next window starts from this state, but gradients stop here.
            self.carried = state_out.detach().float()
        self.pending.append(loss.detach())
        self.step += 1

    def flush_losses(self) -> float | None:
        """Read the pending losses back (one device sync); their mean, or None if none.

        A loss that is NaN or infinite stops the run (`TrainingDiverged`): the weights are lost
        beyond repair, and saving them would overwrite the last good checkpoint.
        """
        if not self.pending:
            return None
        losses: list[float] = torch.stack(self.pending).tolist()
        self.pending.clear()
        for i, loss in enumerate(losses):
            if not math.isfinite(loss):
                raise self._diverged(self.step - len(losses) + i + 1, loss)
        self.train_loss += losses
        return sum(losses) / len(losses)

    def _diverged(self, step: int, loss: float) -> TrainingDiverged:
        if self.saved_step is None:
            kept = "nothing was saved"
        else:
            kept = f"{self.last_path} keeps the last good weights (step {self.saved_step})"
        return TrainingDiverged(
            f"the training loss became {loss} at step {step}, so the run stopped; {kept}; "
            "try a lower --lr or a --grad-clip"
        )

    def done(self) -> bool:
        cfg = self.config
        if cfg.max_steps is not None and self.step >= cfg.max_steps:
            return True
        return cfg.max_minutes is not None and self.elapsed >= 60.0 * cfg.max_minutes

    # --- validation -------------------------------------------------------------------------

    @torch.inference_mode()
    def evaluate(self, model: CharRNN, columns: int) -> float:
        """Mean loss (nats per token) over the first `columns` tokens of each validation stream,
        read in chunks with the state carried, as the model reads text when it is used."""
        was_training = model.training
        model.eval()
        streams = len(self.val_x)
        state = model.initial_state(streams, self.device)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        chunk = 256
        for t in range(0, columns, chunk):
            end = min(columns, t + chunk)
            x = self.val_x[:, t:end].to(self.device)  # (S, chunk)
            y = self.val_y[:, t:end].to(self.device)
            logits, state = model(x, state)  # (S, chunk, vocab)
            total += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum")
        model.train(was_training)
        return float(total.item()) / (streams * columns)

    def validate_and_save(self) -> float:
        """Validate on the fixed sample, write last.pt, and best.pt if the loss improved; append
        the row of metrics.csv and redraw curve.png."""
        self.flush_losses()  # first: weights that trained to NaN are never saved
        val_loss = self.evaluate(self.model, self.sample_columns)
        if not math.isfinite(val_loss):
            raise self._diverged(self.step, val_loss)
        self.val_history.append((self.step, val_loss))
        log.info("step %d: validation loss %.4f", self.step, val_loss)
        if self.best_val_loss is None or val_loss < self.best_val_loss:
            self.best_val_loss, self.best_step = val_loss, self.step
            save_checkpoint(self.checkpoint("best"), self.best_path)
        save_checkpoint(self.checkpoint("last"), self.last_path)
        if self.run_log is not None:
            self.run_log.record(
                self.step,
                self.elapsed,
                self.lr,
                self.train_loss[self.logged_losses :],
                val_loss,
                self.config.batch * self.config.seq_len,
            )
            self.logged_losses = len(self.train_loss)
        self.saved_step = self.step
        return val_loss

    def final_validation(self) -> float:
        """best.pt's loss on the whole validation text, written into it (and into last.pt when
        they hold the same weights)."""
        full = self.val_x.size(1)
        if self.best_step == self.step:
            val_loss = self.evaluate(self.model, full)
            save_checkpoint(self.checkpoint("best", val_loss), self.best_path)
            save_checkpoint(self.checkpoint("last", val_loss), self.last_path)
            return val_loss
        best = load_checkpoint(self.best_path)
        model = CharRNN(self.model.config).to(self.device)
        model.load_state_dict(best["model"])
        val_loss = self.evaluate(model, full)
        best["val_loss"] = val_loss
        save_checkpoint(best, self.best_path)
        return val_loss

    # --- checkpoints ------------------------------------------------------------------------

    def checkpoint(self, kind: CheckpointKind, val_loss: float | None = None) -> Checkpoint:
        ckpt: Checkpoint = {
            "kind": kind,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "model_config": self.model.config.to_dict(),
            "tokenizer": self.tokenizer.to_json(),
            "train_config": self.config.to_dict(),
            "step": self.step,
            "elapsed": self.elapsed,
            "best_val_loss": self.best_val_loss,
            "val_loss": val_loss,
            "corpus": self.corpus.provenance(),
            "command": self.command,
            "precision": self.precision.name,
            "history": {
                "train_loss": list(self.train_loss),
                "val": [[step, loss] for step, loss in self.val_history],
            },
        }
        if kind == "last":
            ckpt["optimizer"] = self.optimizer.state_dict()
            ckpt["rng"] = rng_state(cuda=self.device.type == "cuda")
            ckpt["data"] = self.batches.state_dict()
            ckpt["carried_state"] = None if self.carried is None else self.carried.cpu()
            ckpt["best_step"] = self.best_step
        return ckpt

    def restore(self, ckpt: Checkpoint) -> None:
        """Continue from a `last` checkpoint: weights, optimiser, step, RNGs, data position."""
        try:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            set_rng_state(ckpt["rng"])
            self.batches.load_state_dict(ckpt["data"])
        except (KeyError, ValueError, RuntimeError, TypeError) as exc:
            raise CheckpointError(f"{self.last_path} cannot be resumed from: {exc}") from exc
        carried = ckpt["carried_state"]
        self.carried = None if carried is None else carried.to(self.device)
        self.step = self.saved_step = int(ckpt["step"])
        self.elapsed = float(ckpt["elapsed"])
        self.best_val_loss = ckpt["best_val_loss"]
        self.best_step = ckpt.get("best_step")
        history = ckpt["history"]
        self.train_loss = [float(v) for v in history["train_loss"]]
        self.val_history = [(int(s), float(v)) for s, v in history["val"]]
        self.logged_losses = len(self.train_loss)
        log.info("resuming %s at step %d", self.last_path, self.step)

    # --- the loop ---------------------------------------------------------------------------

    def run(self, progress: bool, on_step: StepHook | None) -> TrainResult:
        cfg = self.config
        bar = _ProgressBar(cfg, self.step, self.elapsed, enabled=progress)
        start_step, start_elapsed = self.step, self.elapsed
        session_start = time.perf_counter()
        consistent = True  # False while a step is half done: nothing may be saved then
        try:
            with _deferred_sigint() as interrupted:
                while not self.done():
                    consistent = False
                    self.train_step()
                    self.elapsed = start_elapsed + time.perf_counter() - session_start
                    consistent = True
                    if self.step % cfg.log_interval == 0:
                        bar.update(self.step, self.elapsed, loss=self.flush_losses())
                    if self.step % cfg.eval_interval == 0 or self.done():
                        bar.update(self.step, self.elapsed, val=self.validate_and_save())
                    if on_step is not None:
                        on_step(self.step)
                    if interrupted():
                        raise KeyboardInterrupt
                seconds = self.elapsed - start_elapsed
                if self.best_step is None:  # resumed at the end of the budget, never validated
                    self.validate_and_save()
                bar.close()
                best_val_loss = self.final_validation()
                if self.run_log is not None:
                    self.run_log.draw()
        except KeyboardInterrupt:
            raise self._interrupted(consistent) from None
        finally:
            bar.close()
        tokens = (self.step - start_step) * cfg.batch * cfg.seq_len
        return TrainResult(
            best_path=self.best_path,
            last_path=self.last_path,
            steps=self.step,
            seconds=self.elapsed,
            tokens_per_second=tokens / seconds if seconds > 0 else 0.0,
            best_val_loss=best_val_loss,
            train_loss=list(self.train_loss),
            val_history=list(self.val_history),
            precision=self.precision,
        )

    def _interrupted(self, consistent: bool) -> TrainingInterrupted:
        if consistent:
            self.flush_losses()
            save_checkpoint(self.checkpoint("last"), self.last_path)
            return TrainingInterrupted(
                f"training stopped at step {self.step}; {self.last_path} was saved",
                self.step,
                self.last_path,
            )
        # Stopped inside a step (a second Ctrl-C): its state is half updated, keep the last save.
        saved = self.last_path if self.last_path.exists() else None
        where = f"{saved} holds the last save" if saved else "nothing was saved"
        return TrainingInterrupted(
            f"training stopped inside step {self.step + 1}; {where}", self.step, saved
        )


class _ProgressBar:
    """tqdm on stderr: steps (or seconds, when only time bounds the run), with the train loss,
    validation loss, tokens per second and time left."""

    def __init__(self, config: TrainConfig, step: int, elapsed: float, enabled: bool) -> None:
        self.config = config
        self.by_time = config.max_steps is None
        total = 60.0 * config.max_minutes if config.max_minutes is not None else 0.0
        self.bar = tqdm(
            total=round(total) if self.by_time else config.max_steps,
            initial=round(elapsed) if self.by_time else step,
            unit="s" if self.by_time else "step",
            desc="train",
            file=sys.stderr,
            disable=not enabled,
            dynamic_ncols=True,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
        )
        self.start_step, self.start_time = step, time.perf_counter()
        self.stats: dict[str, str] = {}

    def update(
        self, step: int, elapsed: float, loss: float | None = None, val: float | None = None
    ) -> None:
        if self.bar.disable:
            return
        cfg = self.config
        if loss is not None:
            self.stats["loss"] = f"{loss:.3f}"
        if val is not None:
            self.stats["val"] = f"{val:.3f}"
        seconds = time.perf_counter() - self.start_time
        steps = step - self.start_step
        if seconds > 0 and steps > 0:
            self.stats["tok/s"] = f"{steps * cfg.batch * cfg.seq_len / seconds:,.0f}"
            left = []
            if cfg.max_steps is not None:
                left.append((cfg.max_steps - step) * seconds / steps)
            if cfg.max_minutes is not None:
                left.append(60.0 * cfg.max_minutes - elapsed)
            self.stats["left"] = _clock(max(0.0, min(left)))
        self.bar.set_postfix(self.stats, refresh=False)
        self.bar.update((round(elapsed) if self.by_time else step) - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    if minutes >= 60:
        return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


@contextmanager
def _deferred_sigint() -> Iterator[Callable[[], bool]]:
    """Turn the first Ctrl-C into a flag that the loop checks between steps, so that last.pt is
    saved from a consistent state; a second Ctrl-C stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False  # signal handlers can only be set from the main thread
        return
    flag = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        if flag.is_set():
            raise KeyboardInterrupt
        flag.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


def _prepare_out_dir(out_dir: Path) -> list[Path]:
    """Create the output directory and check that it is writable, before any training; the
    directories it created, deepest first."""
    created = []
    missing = out_dir
    while not missing.exists() and missing != missing.parent:
        created.append(missing)
        missing = missing.parent
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"the output directory {out_dir} is a file, not a directory")
    probe = out_dir / ".charbot-write-test"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"cannot write to the output directory {out_dir}: {exc.strerror or exc}"
        ) from exc
    return created


def _remove_empty(directories: list[Path]) -> None:
    """Remove these directories (deepest first) while they are empty."""
    for directory in directories:
        try:
            directory.rmdir()
        except OSError:
            return


def _warn_if_precision_changed(saved: Checkpoint, precision: Precision, path: Path) -> None:
    """A resume in another precision goes on from the checkpoint's fp32 weights and optimiser
    state, but its steps round differently: it is not the run that never stopped."""
    before = saved.get("precision")
    if before is not None and before != precision.name:
        log.warning(
            "%s was trained in %s and goes on in %s: the run continues from it, but is not "
            "bit-exact with one that never stopped",
            path,
            before,
            precision.describe(),
        )


def _load_for_resume(path: Path, config: TrainConfig) -> Checkpoint:
    if not path.exists():
        raise CheckpointError(f"there is nothing to resume: {path} does not exist")
    saved = load_checkpoint(path)
    if saved["kind"] != "last" or "optimizer" not in saved:
        raise CheckpointError(f"{path} holds weights only and cannot be resumed from")
    try:
        saved_config = TrainConfig.from_dict(saved["train_config"])
    except ConfigError as exc:
        message = f"{path} has a training config this exporter cannot use: {exc}"
        raise CheckpointError(message) from exc
    conflicts = resume_conflicts(saved_config, config)
    if conflicts:
        raise ConfigError(f"cannot resume {path} with {'; '.join(conflicts)}")
    return saved


def describe(result: TrainResult) -> dict[str, Any]:
    """The result as plain data, for logs and benchmark JSON."""
    return {
        "best_path": str(result.best_path),
        "last_path": str(result.last_path),
        "steps": result.steps,
        "seconds": round(result.seconds, 2),
        "tokens_per_second": round(result.tokens_per_second),
        "best_val_loss": result.best_val_loss,
        "precision": result.precision.name,
        "precision_reason": result.precision.reason,
    }
