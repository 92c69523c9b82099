"""Bounded read-ahead: load the next few items on a worker thread while the caller computes.

A tracking session decodes and preprocesses frame ``i + 1`` while the model works on frame ``i``. At most
``depth`` loaded items wait to be taken (memory stays flat), and ``load`` never runs on two threads at once
(video decoders are not thread-safe). Results equal loading in the caller's thread; an error raised by
``load`` is raised by :meth:`ReadAhead.get` for that item.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Generic, Iterable, TypeVar

T = TypeVar("T")


class ReadAhead(Generic[T]):
    """Loads items by index ahead of use, at most ``depth`` of them at a time.

    Args:
        load: ``index -> item``; called on the worker thread or, for items not asked for ahead, the caller's.
        depth: most items loaded ahead and not yet taken (``0`` disables reading ahead).
    """

    def __init__(self, load: Callable[[int], T], depth: int = 2):
        self._load = load
        self._depth = depth
        self._lock = threading.Lock()  # one load at a time
        self._pending: dict[int, Future] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") if depth > 0 else None

    def _locked_load(self, index: int) -> T:
        with self._lock:
            return self._load(index)

    @property
    def pending(self) -> frozenset[int]:
        """Indices being read (or read and not yet taken) on the worker thread."""
        return frozenset(self._pending)

    def want(self, indices: Iterable[int]) -> None:
        """The items about to be used, in order: start loading the first ``depth`` of them (unless loaded or
        loading) and drop the other items loaded ahead."""
        if self._executor is None:
            return
        wanted = list(dict.fromkeys(indices))[: self._depth]
        for index in list(self._pending):
            if index not in wanted:
                self._pending.pop(index).cancel()
        for index in wanted:
            if index not in self._pending:
                self._pending[index] = self._executor.submit(self._locked_load, index)

    def get(self, index: int) -> T:
        """Item ``index``: taken from the read-ahead when asked for before, else loaded now."""
        future = self._pending.pop(index, None)
        if future is not None and not future.cancelled():
            return future.result()
        return self._locked_load(index)

    def clear(self) -> None:
        """Drop every item loaded ahead."""
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()

    def close(self) -> None:
        """Drop what was loaded ahead and stop the worker thread."""
        self.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
