"""An order-n Markov chain over words, punctuation and whitespace (charbot's word tokens)."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterator

import numpy as np

from models.tokenizers import WORD_PATTERN

State = tuple[str, ...]


class MarkovChain:
    def __init__(self, text: str, order: int = 2) -> None:
        self.order = order
        tokens = re.findall(WORD_PATTERN, text)
        if len(tokens) <= order:
            raise ValueError(f"the text has {len(tokens)} tokens; order {order} needs more")
        counts: defaultdict[State, Counter[str]] = defaultdict(Counter)
        for i in range(len(tokens) - order):
            counts[tuple(tokens[i : i + order])][tokens[i + order]] += 1
        # Per state: the next tokens and their counts as arrays, ready for sampling.
        self.table: dict[State, tuple[list[str], np.ndarray]] = {
            state: (list(c), np.array(list(c.values()), dtype=np.float64))
            for state, c in counts.items()
        }
        self.starts: list[State] = list(self.table)
        self.vocab = sorted(set(tokens))

    @property
    def transitions(self) -> int:
        return sum(len(nexts) for nexts, _ in self.table.values())

    def generate(self, prompt: str, temperature: float, rng: np.random.Generator) -> Iterator[str]:
        """Tokens following `prompt`, forever; the caller stops it."""
        state: State = tuple(re.findall(WORD_PATTERN, prompt)[-self.order :])
        while True:
            entry = self.table.get(state)
            if entry is None:
                # An unseen context: restart from a random state of the corpus.
                state = self.starts[int(rng.integers(len(self.starts)))]
                entry = self.table[state]
            nexts, counts = entry
            if temperature == 0:
                token = nexts[int(np.argmax(counts))]
            else:
                weights = counts ** (1.0 / temperature)
                token = nexts[int(rng.choice(len(nexts), p=weights / weights.sum()))]
            yield token
            state = (*state[1:], token)
