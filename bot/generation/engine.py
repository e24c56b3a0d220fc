"""The ONNX char-RNN engine: the asyncio face of the batching worker pool.

    engine = await Engine.start("models/shakespeare.onnx", EngineConfig(workers=2))
    completion = await engine.complete("ROMEO:", GenerationParams(temperature=0.5, seed=1))
    async for chunk in engine.stream("JULIET:", GenerationParams(stop=("\\n\\n",))):
        print(chunk.text, end="")
    await engine.close()

Nothing here blocks the event loop: model loading runs in a thread, generation on the pool's
workers, and results come back through `loop.call_soon_threadsafe`, coalesced per flush.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType

from bot.errors import EngineClosedError, RequestTimeoutError
from bot.generation.backend import BackendStats, CharRate, Completion, ModelInfo, StreamChunk
from bot.generation.batcher import Pool
from bot.generation.model import CUDA, LoadedModel, load_model
from bot.generation.observer import EngineObserver
from bot.generation.params import EngineConfig, GenerationParams, validate_prompt
from bot.generation.request import Handle, Request, Update
from bot.ops.logs import current_context

log = logging.getLogger(__name__)


class Engine:
    """Serves one ONNX model (swappable with `reload`) to concurrent requests.

    Implements `bot.generation.backend.GenerationBackend`. Use `await Engine.start(...)`; all
    methods must be called from the event loop that started it.
    """

    def __init__(
        self,
        model: LoadedModel,
        config: EngineConfig,
        loop: asyncio.AbstractEventLoop,
        observer: EngineObserver | None = None,
    ) -> None:
        self.config = config
        # What the config's `auto` comes to on the device the model loaded on.
        self.threads = config.threads_on(gpu=model.info.provider == CUDA)
        self._model = model
        self._loop = loop
        self._pool = Pool(
            self.threads.workers,
            config.max_batch,
            config.max_queue,
            config.stream_interval,
            config.io_binding,
            self._deliver_threadsafe,
            observer,
        )
        self._name: str | None = None  # the name given at start, kept across reloads
        self._outstanding: set[Handle] = set()
        self._closing = False
        self._closed = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._served = 0
        self._failed = 0
        self._generated = CharRate(config.stats_window)

    @classmethod
    async def start(
        cls,
        model_path: Path | str,
        config: EngineConfig | None = None,
        *,
        name: str | None = None,
        observer: EngineObserver | None = None,
    ) -> Engine:
        """Load the model (in a thread) and start the workers.

        `name` is what the model is called in `info` (the bot's config name); default: the
        file's stem. It stays across reloads. `observer` is told about the work, for metrics.
        """
        config = config or EngineConfig()
        model = await asyncio.to_thread(
            load_model, model_path, config.provider, config.threads.intra_op_threads
        )
        engine = cls(_named(model, name), config, asyncio.get_running_loop(), observer)
        engine._name = name
        engine._pool.start()
        log.info(
            "generation engine started: %s on %s, %s, batches of up to %d",
            engine.info.name, model.info.provider, engine.threads, config.max_batch,
        )  # fmt: skip
        return engine

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def info(self) -> ModelInfo:
        """The model new requests go to."""
        return self._model.info

    async def complete(
        self, prompt: str, params: GenerationParams | None = None, *, timeout: float | None = None
    ) -> Completion:
        """Generate a whole text after `prompt` (not included in the result).

        An empty prompt (or one the vocabulary cannot encode at all) starts from the zero state
        and the start token: "\\n" where the vocabulary has it, else id 0. Raises
        `GenerationError` subclasses: see `GenerationBackend`.
        """
        handle = self._submit(prompt, params, stream=False, timeout=timeout)
        try:
            async with asyncio.timeout_at(handle.deadline):
                return await handle.future
        except TimeoutError:
            raise self._timed_out(handle) from None
        finally:
            if not handle.future.done() or handle.future.cancelled():
                self._abandon(handle)

    async def stream(
        self, prompt: str, params: GenerationParams | None = None, *, timeout: float | None = None
    ) -> AsyncIterator[StreamChunk]:
        """Generate a text as chunks; the last chunk carries the `Completion`.

        The request is submitted at the first iteration (so `EngineBusyError` comes from there).
        Leaving the `async for` early cancels it.
        """
        handle = self._submit(prompt, params, stream=True, timeout=timeout)
        assert handle.wake is not None
        try:
            while True:
                if not handle.parts and not handle.future.done():
                    try:
                        async with asyncio.timeout_at(handle.deadline):
                            await handle.wake.wait()
                    except TimeoutError:
                        raise self._timed_out(handle) from None
                    handle.wake.clear()
                text = "".join(handle.parts)
                handle.parts.clear()
                if handle.future.done():
                    yield StreamChunk(text, handle.future.result())
                    return
                if text:
                    yield StreamChunk(text)
        finally:
            if not handle.future.done():
                self._abandon(handle)

    async def reload(self, path: Path | str) -> ModelInfo:
        """Load a new model file (in a thread) and send new requests to it; requests in flight
        finish on the old one. A file that fails to load raises and leaves the old one serving."""
        if self._closing:
            raise EngineClosedError("The generator is shut down; it cannot load a model.")
        async with self._reload_lock:
            model = await asyncio.to_thread(
                load_model, path, self.config.provider, self.config.threads.intra_op_threads
            )
            model = _named(model, self._name)
            old, self._model = self._model, model
        log.info("now serving %s (was %s)", model.info.name, old.info.name)
        return model.info

    def stats(self) -> BackendStats:
        return BackendStats(
            queue_depth=len(self._pool.pending),
            active_requests=self._pool.active,
            requests_served=self._served,
            characters_generated=self._generated.total,
            chars_per_second=self._generated.per_second(),
            requests_failed=self._failed,
            largest_batch=self._pool.largest_batch,
            workers=self.threads.workers,
            intra_op_threads=self.threads.intra_op_threads,
        )

    async def close(self) -> None:
        """Take no new work; give requests in flight `drain_timeout` seconds, then fail them with
        `EngineClosedError`; stop the workers. Safe to call more than once."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        with self._pool.cond:
            self._pool.closed = True
        futures = [handle.future for handle in self._outstanding]
        if futures:
            await asyncio.wait(futures, timeout=self.config.drain_timeout)
        for handle in list(self._outstanding):
            if not handle.future.done():
                handle.future.set_exception(
                    EngineClosedError("The generator shut down before this request finished.")
                )
                if handle.wake is not None:
                    handle.wake.set()
            self._abandon(handle)
        await asyncio.to_thread(self._pool.stop, 5.0)
        self._closed.set()
        log.info("generation engine closed (%d requests served)", self._served)

    # -- internals -------------------------------------------------------------------------

    def _submit(
        self, prompt: str, params: GenerationParams | None, stream: bool, timeout: float | None
    ) -> Handle:
        if self._closing:
            raise EngineClosedError("The generator is shut down and takes no new requests.")
        params = (params or GenerationParams()).validate(self.config.limits)
        validate_prompt(prompt, self.config.limits)
        model = self._model
        encoding = model.tokenizer.encode(prompt)
        # An empty prompt (or one with nothing encodable) starts from the start token.
        ids = encoding.ids or [model.start_id]
        if timeout is None:
            timeout = self.config.request_timeout
        deadline = None if timeout is None else self._loop.time() + timeout
        handle = Handle(self._loop.create_future(), stream, timeout, deadline)
        # The caller's log context (its request id...) goes with the request: the worker
        # threads log with it.
        request = Request(
            model,
            prompt,
            ids,
            tuple(encoding.unknown),
            params,
            handle,
            current_context(),
            prompt_tokens=len(encoding.ids),
        )
        handle.request = request
        self._pool.submit(request)  # may raise EngineBusyError / EngineClosedError
        self._outstanding.add(handle)
        return handle

    def _abandon(self, handle: Handle) -> None:
        """The caller is gone (cancelled, timed out, closed): drop the request from the pool."""
        if handle not in self._outstanding:
            return
        self._outstanding.discard(handle)
        if handle.request is not None:
            self._pool.withdraw(handle.request)
        if not handle.future.done():
            handle.future.cancel()
        self._failed += 1

    def _timed_out(self, handle: Handle) -> RequestTimeoutError:
        self._abandon(handle)
        return RequestTimeoutError(
            f"The text took longer than {handle.timeout:g} seconds to generate and was stopped."
        )

    def _deliver_threadsafe(self, updates: list[Update], chars: int) -> None:
        """Called on a worker thread: hand a flush's updates to the event loop."""
        try:
            self._loop.call_soon_threadsafe(self._deliver, updates, chars)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            log.debug("dropped %d update(s): the event loop is closed", len(updates))

    def _deliver(self, updates: list[Update], chars: int) -> None:
        """On the loop: apply a worker's flush to the waiting futures and streams."""
        self._generated.add(chars)
        for handle, text, completion, error in updates:
            future = handle.future
            if future.done():
                continue  # cancelled, timed out or failed at close: nobody is waiting
            if text:
                handle.parts.append(text)
            if completion is not None:
                future.set_result(completion)
                self._served += 1
            elif error is not None:
                future.set_exception(error)
                self._failed += 1
            if future.done():
                self._outstanding.discard(handle)
            if handle.wake is not None:
                handle.wake.set()


def _named(model: LoadedModel, name: str | None) -> LoadedModel:
    if name is None:
        return model
    return dataclasses.replace(model, info=dataclasses.replace(model.info, name=name))
