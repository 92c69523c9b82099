"""Each visitor's own state in the demo: their video session and their output folder, keyed by Gradio's session.

A visitor is one browser tab (Gradio's ``session_hash``). Visitors never share a tracking session: two visitors
who upload the same file (Gradio stores identical uploads at one path) get one session each, and a click of one
is never in the other's export.

The demo holds at most ``keep_videos`` tracking sessions for every visitor together (each holds a decoder and
the model's memories). A visitor keeps their latest upload only; when an upload goes over the limit, the session
of the visitor seen least recently is closed, and that visitor's next action in the video tab says so
(:func:`expired_by_others`), never another visitor's state and never a session silently started over. A visitor
who leaves (Gradio's ``unload``: the tab is closed or reloaded) or stays idle longer than ``idle_seconds`` has
their session closed now (decoder threads included) and their output folder deleted.

Outputs (JSON files, overlay videos, zips) go to one folder per visitor, one file per kind: a new automatic
run, propagation or export replaces the visitor's previous file of that kind (Gradio has copied it to its own
cache by then), so the folder holds a handful of files however long the visit.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from functools import partial
from pathlib import Path

from sam2_pipelines.demo.state import VideoWork

#: Tracking sessions the demo holds for every visitor together (``--video-sessions``).
KEEP_VIDEOS = 4
#: A visitor unseen this long (seconds) has their session closed and folder deleted at the next visitor's action.
IDLE_SECONDS = 3600
#: Visitors whose expired session is remembered, to tell them why (the oldest reasons are forgotten first).
REMEMBER_EXPIRED = 1000
#: What the video tab says before any upload.
UPLOAD_FIRST = "Upload a video first."
#: Prefix of the visitors' output folders (in the system's temporary folder).
FOLDER_PREFIX = "sam2-demo-"


def expired_by_others(keep: int) -> str:
    """The message of a visitor whose video session was closed to make room for another visitor's upload."""
    return (
        f"Your video session expired: the demo keeps {keep} video sessions for all visitors together, and yours, "
        "the least recently used, was closed to make room for another visitor's upload. Upload the video again."
    )


def expired_idle(seconds: float) -> str:
    """The message of a visitor whose video session was closed after ``seconds`` without use."""
    return f"Your video session expired after {seconds / 60:g} minutes without use. Upload the video again."


class Visitor:
    """One visitor: their :class:`~sam2_pipelines.demo.state.VideoWork` (or ``None``), their output folder
    (made on first use) and when they were last seen."""

    def __init__(self):
        self.video: VideoWork | None = None
        self.folder: Path | None = None
        self.seen = time.monotonic()

    def output(self, kind: str, name: str) -> Path:
        """A path for output file ``name`` of ``kind`` (``"auto"``, ``"overlay"``, ``"export"``...): the visitor's
        previous output of that kind is deleted."""
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))
        place = self.folder / kind
        shutil.rmtree(place, ignore_errors=True)
        place.mkdir(parents=True)
        return place / name

    def close(self, reason: str) -> None:
        """Close the video session (``reason``: what a call still running on it says) and delete the folder."""
        video, self.video = self.video, None
        if video is not None:
            video.close(reason)
        folder, self.folder = self.folder, None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


class Visitors:
    """The demo's visitors by id (Gradio's ``session_hash``): one :class:`Visitor` each.

    Args:
        tracker: a callable returning the ``video-object-tracking`` pipeline.
        keep_videos: tracking sessions held for every visitor together (at least 1).
        idle_seconds: a visitor unseen this long is closed at the next visitor's action (``None``: never).
    """

    def __init__(self, tracker, keep_videos: int = KEEP_VIDEOS, idle_seconds: float | None = IDLE_SECONDS):
        if isinstance(keep_videos, bool) or not isinstance(keep_videos, int) or keep_videos < 1:
            raise ValueError(f"keep_videos must be an int >= 1 (video sessions held for all visitors together), got {keep_videos!r}")
        self._tracker = tracker
        self.keep_videos = keep_videos
        self.idle_seconds = idle_seconds
        self._visitors: OrderedDict[str, Visitor] = OrderedDict()  # least recently seen first
        self._expired: OrderedDict[str, str] = OrderedDict()  # visitor id -> why their video session was closed
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Visitors held now."""
        return len(self._visitors)

    @property
    def open_videos(self) -> int:
        """Tracking sessions held now, for every visitor together."""
        with self._lock:
            return sum(visitor.video is not None for visitor in self._visitors.values())

    def open_video(self, visitor_id: str, path: str) -> VideoWork:
        """A fresh :class:`~sam2_pipelines.demo.state.VideoWork` of ``path`` for this visitor (an upload starts
        over); their previous one is closed, and the least recently seen visitor's when over ``keep_videos``.
        A file that is not a readable video raises ``ValueError`` (the visitor's previous session stays)."""
        work = VideoWork(self._tracker(), path)
        with self._lock:
            visitor, closing = self._enter(visitor_id)
            if visitor.video is not None:
                closing.append(partial(visitor.video.close, "this video session was replaced by a newer upload"))
            visitor.video = work
            self._expired.pop(visitor_id, None)
            holders = [other for other, held in self._visitors.items() if held.video is not None]
            for other in holders[: max(0, len(holders) - self.keep_videos)]:  # this visitor is the most recent
                reason = expired_by_others(self.keep_videos)
                closing.append(partial(self._visitors[other].video.close, reason))
                self._visitors[other].video = None
                self._remember(other, reason)
        _run(closing)
        return work

    def video(self, visitor_id: str, required: bool = True) -> VideoWork | None:
        """This visitor's :class:`~sam2_pipelines.demo.state.VideoWork`. Without one, ``ValueError`` saying why
        (expired, with the reason; or :data:`UPLOAD_FIRST`), or ``None`` when not ``required`` and the visitor
        never uploaded one."""
        with self._lock:
            visitor, closing = self._enter(visitor_id)
            work, reason = visitor.video, self._expired.get(visitor_id)
        _run(closing)
        if work is None and (required or reason is not None):
            raise ValueError(reason or UPLOAD_FIRST)
        return work

    def close_video(self, visitor_id: str) -> None:
        """Close this visitor's video session (the video was cleared from the page)."""
        with self._lock:
            visitor, closing = self._enter(visitor_id)
            work, visitor.video = visitor.video, None
            self._expired.pop(visitor_id, None)
        _run(closing + ([partial(work.close)] if work is not None else []))

    def output(self, visitor_id: str, kind: str, name: str) -> Path:
        """A path in this visitor's folder for output ``name`` of ``kind`` (replacing their previous one)."""
        with self._lock:
            visitor, closing = self._enter(visitor_id)
            path = visitor.output(kind, name)
        _run(closing)
        return path

    def leave(self, visitor_id: str) -> None:
        """The visitor left (closed or reloaded the tab): close their video session and delete their folder."""
        with self._lock:
            visitor = self._visitors.pop(visitor_id, None)
            self._expired.pop(visitor_id, None)
        if visitor is not None:
            visitor.close("you left the demo (the tab was closed or reloaded); upload the video again")

    def close(self) -> None:
        """Close every visitor (the app stops)."""
        with self._lock:
            visitors, self._visitors = list(self._visitors.values()), OrderedDict()
            self._expired.clear()
        for visitor in visitors:
            visitor.close("the demo stopped")

    def _enter(self, visitor_id: str) -> tuple[Visitor, list]:
        """(Under the lock) this visitor, seen now, and the closing of visitors idle too long (to run after the lock)."""
        now = time.monotonic()
        closing = []
        if self.idle_seconds is not None:
            while self._visitors:
                oldest, visitor = next(iter(self._visitors.items()))
                if oldest == visitor_id or now - visitor.seen <= self.idle_seconds:
                    break
                del self._visitors[oldest]
                reason = expired_idle(self.idle_seconds)
                if visitor.video is not None:
                    self._remember(oldest, reason)
                closing.append(partial(visitor.close, reason))
        visitor = self._visitors.pop(visitor_id, None) or Visitor()
        visitor.seen = now
        self._visitors[visitor_id] = visitor  # most recently seen last
        return visitor, closing

    def _remember(self, visitor_id: str, reason: str) -> None:
        self._expired[visitor_id] = reason
        self._expired.move_to_end(visitor_id)
        while len(self._expired) > REMEMBER_EXPIRED:
            self._expired.popitem(last=False)


def _run(closing: list) -> None:
    """Run the closings collected under the lock (each waits for a call in progress on its session)."""
    for close in closing:
        close()
