"""One lifecycle for every session (image, video, text): open until closed, iterators that go stale, one call at
a time.

A session counts its changes (an epoch); an iterator started in one epoch (``propagate()``) refuses to go
on once the session changed, and every call on a closed session says so, with one message each.
"""

from __future__ import annotations

import threading


class SessionLifecycle:
    """Closed and stale checks, ``close()`` and the context manager, shared by the sessions.

    Subclasses set ``_what`` (``"tracking session"``) and ``_reopen`` (how to get a new one), call
    ``super().__init__()`` first and release their resources in ``_release()``.
    """

    _what = "session"
    _reopen = "a new session"

    def __init__(self):
        self._closed = False
        self._epoch = 0  # bumped by every change of the session; an iterator runs in one epoch
        self._lock = threading.RLock()  # one call (or one propagated frame) at a time: safe to share between threads

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"this {self._what} is closed; open a new one with {self._reopen}")

    def _change(self) -> int:
        """Mark a change of the session (refused when closed): iterators started before it go stale."""
        self._check_open()
        self._epoch += 1
        return self._epoch

    def _check_current(self, epoch: int) -> None:
        """Refuse to go on with an iterator started in ``epoch`` once the session changed."""
        if epoch != self._epoch:
            raise ValueError(
                "this propagate() iterator is stale: the session changed after it started (another propagate(), "
                "a new prompt or text, remove_object, reset, a pushed frame or close); call propagate() again"
            )

    def _release(self) -> None:
        """Free what the session holds (subclasses)."""

    def close(self) -> None:
        """Release what the session holds; any later call raises ``ValueError``. Closing twice is fine."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._epoch += 1
            self._release()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
