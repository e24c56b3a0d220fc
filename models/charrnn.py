"""The char-RNN family: an embedding, a stack of LSTM, GRU or plain RNN layers, a linear head.

The same module serves character and word level: only the vocabulary differs. The recurrent state
is one tensor in the ONNX contract's layout (`models.contract`), so that what the exporter traces
is exactly what the bot feeds: (layers * k, B, H), with all h before all c for an LSTM.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from models.contract import CELLS, state_factor


@dataclass
class CharRNNConfig:
    vocab_size: int
    cell: str = "lstm"
    layers: int = 2
    hidden: int = 256
    embedding: int = 64
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; expected one of {', '.join(CELLS)}")
        for name in ("vocab_size", "layers", "hidden", "embedding"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Callables rather than type[nn.RNNBase]: RNNBase's own constructor takes the mode first.
_RNN_CLASSES: dict[str, Callable[..., nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class CharRNN(nn.Module):
    def __init__(self, config: CharRNNConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embedding)
        self.rnn = _RNN_CLASSES[config.cell](
            config.embedding,
            config.hidden,
            num_layers=config.layers,
            batch_first=True,
            # torch applies RNN dropout between layers only; with one layer it would warn.
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, config.vocab_size)

    @property
    def state_layers(self) -> int:
        """The first dimension of the packed state: layers * k."""
        return self.config.layers * state_factor(self.config.cell)

    def initial_state(self, batch: int, device: torch.device | None = None) -> torch.Tensor:
        """The zero state that starts a text: (layers * k, B, H)."""
        return torch.zeros(self.state_layers, batch, self.config.hidden, device=device)

    def forward(
        self, tokens: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (B, T) int64, state (layers * k, B, H) -> logits (B, T, vocab), new state."""
        x = self.drop(self.embed(tokens))  # (B, T, E)
        if self.config.cell == "lstm":
            h, c = state.chunk(2, dim=0)  # each (layers, B, H)
            out, (h_n, c_n) = self.rnn(x, (h.contiguous(), c.contiguous()))
            state_out = torch.cat([h_n, c_n], dim=0)
        else:
            out, state_out = self.rnn(x, state)
        logits = self.head(self.drop(out))  # (B, T, vocab)
        return logits, state_out

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
