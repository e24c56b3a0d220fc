"""The batching worker pool: threads that step batches of requests through the model.

Continuous batching: a request waits in the pool's bounded queue until a worker has a free slot;
the worker primes its prompt in a call of its own (exact: no padding), then stacks its state into
the worker's batch, which advances every row by one token per model call. A request leaves the
batch as soon as it is done or cancelled. ONNX Runtime releases the GIL while it runs, so the
workers' model calls run in parallel.

Results go to the event loop through one `deliver(updates, chars)` callback per flush: a worker
flushes when a request ends, or every `stream_interval` seconds while streams have new text, so
the loop is not woken once per token.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from bot.errors import EngineBusyError, EngineClosedError, GenerationError, WorkerError
from bot.generation.device import stepper_for
from bot.generation.model import LoadedModel
from bot.generation.observer import EngineObserver
from bot.generation.params import IoBinding
from bot.generation.request import Request, Update
from bot.generation.sampling import BatchSampler, sample_one

log = logging.getLogger(__name__)

Deliver = Callable[[list[Update], int], None]


class Batch:
    """The rows one worker advances together on one model.

    tokens (B, 1) int64: each row's last sampled token, the next input. It is a view of the
        sampler's output buffer, so a sampled step needs no copy into the next input.
    state (layers * k, B, H) float32: each row's recurrent state, stacked on axis 1, wherever
        the stepper keeps it (on the GPU under CUDA: `bot.generation.device`).
    """

    def __init__(self, model: LoadedModel, io_binding: IoBinding = "auto") -> None:
        self.model = model
        self.stepper = stepper_for(model, io_binding)
        self.rows: list[Request] = []
        self.state = self.stepper.to_device(model.zero_state(0))
        self.sampler = BatchSampler([], [])
        self.tokens = self.sampler.out.reshape(0, 1)

    def add(self, request: Request, state: np.ndarray, token: int) -> None:
        """Stack a primed request (state (layers * k, 1, H)) whose next input is `token`."""
        self.rows.append(request)
        stacked = np.concatenate([self.stepper.to_host(self.state), state], axis=1)
        self.state = self.stepper.to_device(stacked)
        self._resample(np.append(self.sampler.out, token))

    def keep(self, keep: list[int]) -> None:
        """Keep only the rows at these indices (copies: state stays contiguous)."""
        self.rows = [self.rows[i] for i in keep]
        kept = np.ascontiguousarray(self.stepper.to_host(self.state)[:, keep])
        self.state = self.stepper.to_device(kept)
        self._resample(self.sampler.out[keep])

    def step(self) -> list[int]:
        """Advance every row by one token; the indices of rows that are now done."""
        logits, self.state = self.stepper.step(self.tokens, self.state)
        logits = logits[:, -1, :]  # (B, V)
        if self.model.banned_id is not None:
            logits[:, self.model.banned_id] = -np.inf
        next_tokens = self.sampler(logits)  # (B,), the buffer under self.tokens
        if len(self.rows) == 1:  # the single stream: skip the general bookkeeping
            return [0] if self.rows[0].advance(int(next_tokens[0])) else []
        return [
            i
            for i, (row, token) in enumerate(zip(self.rows, next_tokens.tolist(), strict=True))
            if row.advance(token)
        ]

    def _resample(self, tokens: np.ndarray) -> None:
        self.sampler = BatchSampler([r.params for r in self.rows], [r.rng for r in self.rows])
        self.sampler.out[:] = tokens
        self.tokens = self.sampler.out.reshape(-1, 1)  # (B, 1) view


class Pool:
    """The shared queue and the worker threads. Thread-safe; `deliver` is called on workers."""

    def __init__(
        self,
        workers: int,
        max_batch: int,
        max_queue: int,
        stream_interval: float,
        io_binding: IoBinding,
        deliver: Deliver,
        observer: EngineObserver | None = None,
    ) -> None:
        self.max_batch = max_batch
        self.io_binding = io_binding
        self.capacity = workers * max_batch + max_queue
        self.stream_interval = stream_interval
        self.deliver = deliver
        self.observer = observer
        self.cond = threading.Condition()
        self.pending: deque[Request] = deque()
        self.active = 0  # requests held by workers (priming or in a batch)
        self.cancellations = 0  # counts withdraw() calls (made on the loop thread only)
        self.largest_batch = 0  # the most rows one step has advanced (read without the lock)
        self.closed = False  # no new requests
        self.stopping = False  # workers exit
        self.workers = [Worker(self, i) for i in range(workers)]

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def submit(self, request: Request) -> None:
        with self.cond:
            if self.closed:
                raise EngineClosedError("The generator is shutting down and takes no new requests.")
            if len(self.pending) + self.active >= self.capacity:
                raise EngineBusyError(
                    "The generator is busy with other requests right now; try again in a moment."
                )
            self.pending.append(request)
            self.cond.notify_all()

    def withdraw(self, request: Request) -> None:
        """Cancel a request: out of the queue now, or out of its batch at the worker's next step."""
        request.cancelled = True
        self.cancellations += 1  # workers compare it each step instead of scanning their rows
        # Not in the queue when a worker has taken it already: the worker drops it instead.
        with self.cond, contextlib.suppress(ValueError):
            self.pending.remove(request)

    def take(self, worker: Worker, busy: bool) -> list[Request] | None:
        """Joiners for `worker` (a fair share of the queue); blocks while it is idle. None: stop."""
        if busy and not self.pending:
            return []  # the common case while a batch runs: no lock
        with self.cond:
            while not (self.stopping or busy or self.pending):
                self.cond.wait()
            if self.stopping:
                return None
            # Share the work out: an idle worker takes its part of everything in the system.
            share = math.ceil((len(self.pending) + self.active) / len(self.workers))
            free = self.max_batch - worker.active
            n = max(0, min(free, max(1, share - worker.active), len(self.pending)))
            taken = [self.pending.popleft() for _ in range(n)]
            worker.active += len(taken)
            self.active += len(taken)
            return taken

    def left(self, worker: Worker, n: int) -> None:
        if n:
            with self.cond:
                worker.active -= n
                self.active -= n

    def stop(self, timeout: float | None = None) -> None:
        """Let the workers exit after their current step and wait for them (blocking)."""
        with self.cond:
            self.closed = self.stopping = True
            self.cond.notify_all()
        for worker in self.workers:
            if worker.is_alive():
                worker.join(timeout)


class Worker(threading.Thread):
    """Runs one batch per model (more than one only while a hot swap drains the old model)."""

    def __init__(self, pool: Pool, index: int) -> None:
        super().__init__(name=f"charbot-generation-{index}", daemon=True)
        self.pool = pool
        self.active = 0  # guarded by pool.cond
        self.batches: dict[LoadedModel, Batch] = {}
        self.outbox: list[Update] = []
        self.chars = 0  # characters generated since the last flush
        self.seen_cancellations = 0
        self.last_flush = time.monotonic()
        self.observer = pool.observer
        # Model steps by (model, batch size) since the last flush; counted only when observed.
        self.steps: dict[tuple[str, int], int] = {}

    def run(self) -> None:
        while (joiners := self.pool.take(self, busy=bool(self.batches))) is not None:
            for request in joiners:
                self._join(request)
            for model, batch in list(self.batches.items()):
                self._step(batch)
                if not batch.rows:
                    del self.batches[model]
            self._flush(urgent=not self.batches)
        self._flush(urgent=True)

    def _join(self, request: Request) -> None:
        """Prime the prompt in its own call, sample the first token, stack into the batch."""
        if request.cancelled:
            self.pool.left(self, 1)
            return
        request.joined = time.monotonic()
        queued = request.joined - request.arrived
        if self.observer is not None:
            self.observer.request_started(request.model.info.name, queued)
        log.debug(
            "request joined a batch after %.3f s in the queue", queued, extra=request.log_fields()
        )
        model = request.model
        try:
            logits, state = model.prime(request.ids)  # (V,), (layers * k, 1, H)
            if model.banned_id is not None:
                logits[model.banned_id] = -np.inf
            p = request.params
            token = sample_one(logits, p.temperature, p.top_k, p.top_p, request.rng)
        except Exception as exc:  # any failure fails this request, not the pool
            self._fail([request], exc)
            return
        if request.advance(token):
            self._finish(request)
            self.pool.left(self, 1)
            return
        batch = self.batches.get(model)
        if batch is None:
            batch = self.batches[model] = Batch(model, self.pool.io_binding)
        batch.add(request, state, token)

    def _step(self, batch: Batch) -> None:
        if self.pool.cancellations != self.seen_cancellations:
            # Some request somewhere was cancelled: drop the cancelled rows of all batches.
            self.seen_cancellations = self.pool.cancellations
            for each in self.batches.values():
                if cancelled := {i for i, row in enumerate(each.rows) if row.cancelled}:
                    self._leave(each, cancelled)
        if not batch.rows:  # emptied by cancellations, here or while stepping another batch
            return
        self.pool.largest_batch = max(self.pool.largest_batch, len(batch.rows))
        if self.observer is not None:
            key = (batch.model.info.name, len(batch.rows))
            self.steps[key] = self.steps.get(key, 0) + 1
        try:
            done = batch.step()
        except Exception as exc:  # a failed step fails this batch, not the pool
            rows = batch.rows
            batch.keep([])
            self._fail(rows, exc)
            return
        if done:
            for i in done:
                self._finish(batch.rows[i])
            self._leave(batch, set(done))

    def _leave(self, batch: Batch, leaving: set[int]) -> None:
        batch.keep([i for i in range(len(batch.rows)) if i not in leaving])
        self.pool.left(self, len(leaving))

    def _finish(self, request: Request) -> None:
        self._count(request)
        generating = time.monotonic() - request.joined
        if self.observer is not None:
            self.observer.request_finished(request.model.info.name, generating)
        log.debug(
            "request finished: %d tokens (%s) in %.3f s",
            request.tokens, request.finish_reason, generating, extra=request.log_fields(),
        )  # fmt: skip
        text = request.take_final_text() if request.stream else ""
        self.outbox.append(Update(request.handle, text, completion=request.completion()))

    def _fail(self, requests: list[Request], exc: Exception) -> None:
        ids = ",".join(r.request_id for r in requests if r.request_id is not None)
        log.error(
            "generation failed for %d request(s)", len(requests), exc_info=exc,
            extra={"request_id": ids or None, "model": requests[0].model.info.name},
        )  # fmt: skip
        error = (
            exc
            if isinstance(exc, GenerationError)
            else WorkerError(f"The model failed while generating this text ({exc}).")
        )
        if error is not exc:
            error.__cause__ = exc
        for request in requests:
            self._count(request)
            self.outbox.append(Update(request.handle, "", error=error))
        self.pool.left(self, len(requests))

    def _count(self, request: Request) -> None:
        """Add the request's characters since it was last counted to the next flush's total."""
        self.chars += request.chars - request.counted
        request.counted = request.chars

    def _flush(self, urgent: bool) -> None:
        """Send pending updates to the loop: at once when a request ended, else every interval."""
        now = time.monotonic()
        if not (urgent or self.outbox) and now - self.last_flush < self.pool.stream_interval:
            return
        if self.observer is not None and self.steps:
            for (model, size), steps in self.steps.items():
                self.observer.batch_steps(model, size, steps)
            self.steps.clear()
        for batch in self.batches.values():
            for row in batch.rows:
                self._count(row)
                if row.stream and (text := row.take_stream_text()):
                    self.outbox.append(Update(row.handle, text))
        if self.outbox or self.chars:
            updates, self.outbox = self.outbox, []
            chars, self.chars = self.chars, 0
            self.pool.deliver(updates, chars)
        self.last_flush = now
