"""Dropout chosen from the size of a run, when `--dropout` is not given.

Dropout trades speed of learning for resistance to overfitting, and which one a run needs depends
on how many times it will read its corpus. Measured on tinyshakespeare (2x256 LSTM, 2 CPU cores,
`bench/training.py`): a 90-second run reads the training text ~3 times and ends at 1.480
nats/char without dropout but 1.568 with 0.3; a 15-minute run reads it ~36 times and overfits
without dropout (1.5076) where 0.3 holds (1.4617). So: no dropout up to NO_DROPOUT_EPOCHS,
MAX_DROPOUT from FULL_DROPOUT_EPOCHS on, and in between a ramp in log(epochs), in steps of 0.05.

A run bounded by time is turned into tokens with the throughput measured on this machine just
before training (a few steps of a throwaway copy of the model), so a slower machine, which reads
the corpus fewer times in the same minutes, gets less dropout.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from exporter.config import TrainConfig
from exporter.precision import FP32, Precision
from models.charrnn import CharRNN, CharRNNConfig

NO_DROPOUT_EPOCHS = 4.0
FULL_DROPOUT_EPOCHS = 32.0
MAX_DROPOUT = 0.3
DROPOUT_STEP = 0.05


def dropout_for_epochs(epochs: float) -> float:
    """The dropout for a run that reads its training text `epochs` times."""
    if epochs <= NO_DROPOUT_EPOCHS:
        return 0.0
    ramp = math.log(epochs / NO_DROPOUT_EPOCHS) / math.log(FULL_DROPOUT_EPOCHS / NO_DROPOUT_EPOCHS)
    dropout = MAX_DROPOUT * min(1.0, ramp)
    return round(round(dropout / DROPOUT_STEP) * DROPOUT_STEP, 2)


def planned_epochs(config: TrainConfig, train_tokens: int, tokens_per_second: float) -> float:
    """How many times the run will read its `train_tokens`: by its step budget, or its time
    budget at `tokens_per_second`, whichever ends first."""
    per_step = config.batch * config.seq_len
    budgets: list[float] = []
    if config.max_steps is not None:
        budgets.append(config.max_steps * per_step)
    if config.max_minutes is not None:
        budgets.append(60.0 * config.max_minutes * tokens_per_second)
    return min(budgets) / max(1, train_tokens)


def measure_throughput(
    config: TrainConfig,
    vocab_size: int,
    device: torch.device,
    precision: Precision = FP32,
    steps: int = 6,
) -> float:
    """Training tokens per second of the run's model on this machine, in the run's precision,
    from a few steps of a throwaway copy on random tokens (the first step, which warms up the
    kernels, not counted). The caller seeds torch afterwards, so these draws do not change the
    run."""
    model = CharRNN(
        CharRNNConfig(vocab_size, config.cell, config.layers, config.hidden, config.embedding)
    ).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.peak_lr)
    shape = (config.batch, config.seq_len)
    x = torch.randint(0, vocab_size, shape, device=device)
    y = torch.randint(0, vocab_size, shape, device=device)
    started = 0.0
    for step in range(steps + 1):
        if step == 1:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        with precision.forward(device):
            logits, _ = model(x, model.initial_state(config.batch, device))
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        optimizer.step()
    float(loss.item())  # waits for the device
    seconds = time.perf_counter() - started
    return steps * config.batch * config.seq_len / max(seconds, 1e-9)


def choose_dropout(
    config: TrainConfig,
    train_tokens: int,
    vocab_size: int,
    device: torch.device,
    precision: Precision = FP32,
) -> float:
    """`config.dropout` when given, else the dropout for the run's planned epochs (a time budget
    is measured in the run's precision: bf16 reads more of the corpus in the same minutes)."""
    if config.dropout is not None:
        return config.dropout
    throughput = 0.0
    if config.max_minutes is not None:
        throughput = measure_throughput(config, vocab_size, device, precision)
    return dropout_for_epochs(planned_epochs(config, train_tokens, throughput))
