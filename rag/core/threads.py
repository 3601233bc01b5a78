"""Blocking iterators (a model generating tokens) consumed from an event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from rag.core.protocols import Closable


async def iterate_in_thread(
    factory: Callable[[], Iterator[Any]], *, lock: threading.Lock | None = None
) -> AsyncIterator[Any]:
    """Items of a blocking iterator, made and consumed in a worker thread (holding ``lock``).

    The event loop never blocks; an error in the iterator is raised in the consumer; when the
    consumer stops early (a client disconnects), the worker stops at the next item and closes
    the iterator, which releases the model.

    Example:
        >>> async def first_two():
        ...     return [x async for x in iterate_in_thread(lambda: iter(range(2)))]
        >>> asyncio.run(first_two())
        [0, 1]
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    stop = threading.Event()

    def put(kind: str, item: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, item))
        except RuntimeError:  # the loop is gone: nobody listens any more
            stop.set()

    def work() -> None:
        with lock or contextlib.nullcontext():
            items = factory()
            try:
                for item in items:
                    if stop.is_set():
                        break
                    put("item", item)
            except BaseException as err:  # re-raised in the consumer
                put("error", err)
            else:
                put("done", None)
            finally:
                if isinstance(items, Closable):  # a generator: run its finally blocks now
                    items.close()

    worker = loop.run_in_executor(None, work)
    try:
        while True:
            kind, item = await queue.get()
            if kind == "error":
                raise item
            if kind == "done":
                return
            yield item
    finally:
        stop.set()
        await asyncio.shield(worker)
