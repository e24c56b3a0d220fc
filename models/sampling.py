"""Choosing a token from one row of logits: greedy, or temperature, top-k, then top-p.

Shared by the bot's batch sampler and the exporter's `sample` command, so that both follow the
same semantics (docs/architecture.md, "Generation semantics"), and the temperature bound with
them. numpy only: no torch, no onnxruntime.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from models.tokenizers import Tokenizer

#: The highest sampling temperature anyone may ask for (0 is greedy; far above 2 is noise): the
#: bot's requests, settings, config and commands and the exporter's `sample` all take it from here.
MAX_TEMPERATURE: Final = 2.0
#: Temperatures below this sample as greedy: 1/T would overflow float32 logits, and the
#: distribution is an argmax to within float error anyway.
MIN_TEMPERATURE = 1e-4


def check_temperature(value: object) -> float:
    """`value` as a temperature from 0 to MAX_TEMPERATURE; else ValueError, with the sentence
    that each caller passes on in its own error type."""
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0.0 <= value <= MAX_TEMPERATURE
    ):
        return float(value) + 0.0  # + 0.0 turns -0.0 into 0.0, which shows as "0", not "-0"
    raise ValueError(f"The temperature must be from 0.0 to {MAX_TEMPERATURE}; got {value!r}.")


def banned_token(tokenizer: Tokenizer) -> int | None:
    """The token never sampled: the unknown token, which stands for text the model cannot write.
    A one-token vocabulary keeps its only token, unknown or not, so sampling stays defined."""
    return tokenizer.unk_id if tokenizer.vocab_size > 1 else None


def draw(cdf: np.ndarray, u: float) -> int:
    """The index i with cdf[i-1] <= u < cdf[i] (cdf unnormalised, u in [0, cdf[-1])).

    Entries of probability 0 (cdf[i] == cdf[i-1]) can never be chosen. Rounding may put u at
    cdf[-1]; then the last entry of positive probability is taken.
    """
    i = int(cdf.searchsorted(u, side="right"))
    if i >= cdf.shape[0]:
        i = last_positive(cdf)
    return i


def last_positive(cdf: np.ndarray) -> int:
    positive = np.flatnonzero(np.diff(cdf, prepend=0.0) > 0)
    return int(positive[-1]) if positive.size else 0


def sample_one(
    logits: np.ndarray,
    temperature: float,
    top_k: int,
    top_p: float,
    rng: np.random.Generator,
) -> int:
    """One token from logits (V,): greedy at temperature 0, else top-k, then top-p, then draw."""
    if temperature < MIN_TEMPERATURE:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature  # (V,)
    vocab = z.shape[0]
    if 0 < top_k < vocab:
        keep = np.argpartition(z, vocab - top_k)[vocab - top_k :]  # exactly k indices
        masked = np.full(vocab, -np.inf)
        masked[keep] = z[keep]
        z = masked
    p = np.exp(z - z.max())  # (V,), unnormalised
    if top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        mass = np.cumsum(p[order])
        # The smallest set of the most likely tokens whose mass reaches top_p.
        n = min(int(np.searchsorted(mass, top_p * mass[-1], side="left")) + 1, vocab)
        kept = np.zeros_like(p)
        kept[order[:n]] = p[order[:n]]
        p = kept
    cdf = np.cumsum(p)
    return draw(cdf, rng.random() * cdf[-1])
