"""What the engine tells an observer about its work, for metrics (`bot.ops.metrics`, or Ray's in a
model server). The engine needs none: without an observer it counts nothing extra.

Every method is called on a worker thread, so an observer must be thread-safe and quick. Batch
sizes come summed per flush, not per model step: a step can take less than 0.1 ms.
"""

from __future__ import annotations

from typing import Protocol


class EngineObserver(Protocol):
    def request_started(self, model: str, queued: float) -> None:
        """A request left the queue for a batch after `queued` seconds."""
        ...

    def request_finished(self, model: str, generating: float) -> None:
        """A request finished `generating` seconds after it joined its batch."""
        ...

    def batch_steps(self, model: str, size: int, steps: int) -> None:
        """`steps` model steps advanced `size` requests together."""
        ...
