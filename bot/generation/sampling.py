"""Choosing the next token of each row of a batch, each row with its own params and random stream.

Rows fall into three groups, fixed while the batch's membership is: greedy rows (temperature 0:
one argmax for all of them), temperature-only rows (one vectorised softmax and inverse-CDF draw),
and filtered rows (top-k and/or top-p: one row at a time). The caller masks a banned token (the
unknown token) to -inf beforehand; a token of probability 0 is never drawn.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bot.generation.params import GenerationParams
from models.sampling import MIN_TEMPERATURE, draw, last_positive, sample_one

__all__ = ["MIN_TEMPERATURE", "BatchSampler", "draw", "sample_one", "sample_temperature"]


def sample_temperature_row(
    logits: np.ndarray, inv_temperature: float, rng: np.random.Generator, work: np.ndarray
) -> int:
    """One row, logits (V,), into scratch `work` (V,): the same arithmetic as the batch path,
    with a binary search instead of a full comparison."""
    # ufuncs called directly: np.cumsum and ndarray.max add microseconds of Python overhead.
    np.subtract(logits, np.maximum.reduce(logits), out=work)
    np.multiply(work, inv_temperature, out=work)
    np.exp(work, out=work)
    np.add.accumulate(work, out=work)
    token = int(work.searchsorted(rng.random() * float(work[-1]), side="right"))
    return token if token < work.shape[0] else last_positive(work)


def sample_temperature(
    logits: np.ndarray,
    inv_temperature: np.ndarray,
    rngs: Sequence[np.random.Generator],
    work: np.ndarray | None = None,
) -> np.ndarray:
    """Rows of logits (n, V) at their temperatures (inv_temperature (n, 1)) -> tokens (n,).

    `work` (n, V) float32 is scratch space (reused across steps to save an allocation).
    """
    z = np.empty(logits.shape, np.float32) if work is None else work
    np.subtract(logits, np.maximum.reduce(logits, axis=1, keepdims=True), out=z)
    np.multiply(z, inv_temperature, out=z)
    np.exp(z, out=z)
    np.add.accumulate(z, axis=1, out=z)  # unnormalised CDFs, (n, V)
    vocab = z.shape[1]
    u = np.array([rng.random() for rng in rngs])
    u *= z[:, -1]
    # Inverse CDF for all rows at once: the number of CDF entries <= u is the drawn index.
    tokens: np.ndarray = np.count_nonzero(z <= u[:, None], axis=1)
    for row in np.flatnonzero(tokens >= vocab):  # rounding put u at the total: rare
        tokens[row] = last_positive(z[row])
    return tokens


class BatchSampler:
    """Samples one token per row for a fixed set of rows; rebuilt when the rows change."""

    def __init__(
        self, params: Sequence[GenerationParams], rngs: Sequence[np.random.Generator]
    ) -> None:
        self.size = len(params)
        self.rngs = list(rngs)
        self.params = list(params)
        greedy, temp, filtered = [], [], []
        for i, p in enumerate(params):
            if p.temperature < MIN_TEMPERATURE:
                greedy.append(i)
            elif p.top_k == 0 and p.top_p >= 1.0:
                temp.append(i)
            else:
                filtered.append(i)
        self.all_greedy = len(greedy) == self.size
        self.all_temp = len(temp) == self.size
        self.greedy = np.array(greedy, dtype=np.intp)
        self.temp = np.array(temp, dtype=np.intp)
        self.temp_rngs = [self.rngs[i] for i in temp]
        self.inv_temp = np.array(
            [[1.0 / params[i].temperature] for i in temp], dtype=np.float32
        ).reshape(-1, 1)  # (n, 1)
        self._inv_temp_one = float(self.inv_temp[0, 0]) if temp else 1.0
        self.filtered = filtered
        self.out = np.empty(self.size, dtype=np.int64)  # the tokens of the last call
        self._work: np.ndarray | None = None  # (n temp rows, V) or (V,) scratch, made at first use

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        """logits (B, V) -> next tokens (B,) int64: `self.out`, overwritten on the next call."""
        out = self.out
        if self.all_greedy:
            np.argmax(logits, axis=1, out=out)
            return out
        if self.temp.size:
            if self.size == 1:  # the single stream: no batch bookkeeping at all
                if self._work is None:
                    self._work = np.empty(logits.shape[1], np.float32)
                out[0] = sample_temperature_row(
                    logits[0], self._inv_temp_one, self.rngs[0], self._work
                )
                return out
            if self._work is None:
                self._work = np.empty((self.temp.size, logits.shape[1]), np.float32)
            rows = logits if self.all_temp else logits[self.temp]
            tokens = sample_temperature(rows, self.inv_temp, self.temp_rngs, self._work)
            if self.all_temp:
                out[:] = tokens
                return out
            out[self.temp] = tokens
        if self.greedy.size:
            out[self.greedy] = np.argmax(logits[self.greedy], axis=1)
        for i in self.filtered:
            p = self.params[i]
            out[i] = sample_one(logits[i], p.temperature, p.top_k, p.top_p, self.rngs[i])
        return out
