"""What the demo keeps between clicks: one image session per image, one tracking session per visitor's video.

The demo never recomputes what it has: an uploaded image is encoded once (:meth:`ImageSessions.get`) and
every click and automatic run on it reuses that encoding; a visitor's uploaded video gets one
:class:`VideoWork`, whose ``TrackingSession`` segments only the clicked frame on a click and propagates
on request, re-tracking from the earliest frame changed since the last propagation. Which visitor holds which
:class:`VideoWork` is :mod:`sam2_pipelines.demo.visitors`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

#: Images whose encodings the demo keeps (for every visitor together); the least recently used beyond this is dropped.
KEEP_IMAGES = 4


def image_key(image: np.ndarray) -> str:
    """A digest of an image's pixels and shape: the same picture uploaded twice finds its session."""
    image = np.ascontiguousarray(image)
    return hashlib.sha1(repr(image.shape).encode() + image.tobytes()).hexdigest()


class ImageSessions:
    """Image sessions of the demo, one per distinct image, at most :data:`KEEP_IMAGES` held (least recent dropped).

    Shared by every visitor: a session holds the image's pixels and encoding only, which are the same for anyone
    who uploads that picture; prompts are each visitor's own (the page's state) and are given per call. A session
    dropped to make room is not closed, since another visitor's call may be running on it: its encoding is freed
    when the last call using it returns.

    Args:
        generator: a callable returning the ``mask-generation`` pipeline (loaded on first use).
    """

    def __init__(self, generator):
        self._generator = generator
        self._sessions: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, image: np.ndarray):
        """The :class:`~sam2_pipelines.image.session.ImageSession` of ``image`` (encoded on its first use)."""
        key = image_key(image)
        with self._lock:
            session = self._sessions.pop(key, None)
            if session is None:
                session = self._generator().session(image)
            self._sessions[key] = session
            while len(self._sessions) > KEEP_IMAGES:
                self._sessions.popitem(last=False)
            return session


def rle_result(frame: int, object_ids, masks, scores) -> dict:
    """A per-frame result with COCO RLE masks (binary masks are encoded) and plain Python values."""
    from sam2_pipelines.io.exports import frame_record

    return frame_record({"frame_idx": frame, "object_ids": object_ids, "masks": masks, "scores": [float(s) for s in np.asarray(scores).reshape(-1)]})


def _by_object(result: dict) -> dict[int, tuple]:
    """``{obj_id: (mask, score)}`` of one per-frame result."""
    return dict(zip(result["object_ids"], zip(result["masks"], result["scores"])))


def _from_objects(frame: int, objects: dict[int, tuple]) -> dict:
    """A per-frame result from ``{obj_id: (mask, score)}``, objects in the dict's order."""
    ids = list(objects)
    return {"frame_idx": frame, "object_ids": ids, "masks": [objects[i][0] for i in ids], "scores": [objects[i][1] for i in ids]}


class VideoWork:
    """One uploaded video in the demo: its tracking session, the clicks, and the latest result of every frame.

    Args:
        tracker: the ``video-object-tracking`` pipeline.
        path: the video file.

    Results are kept per frame as COCO RLE (``{"frame_idx", "object_ids", "masks", "scores"}``): a click
    updates the clicked object on the clicked frame; a propagation replaces the frames it tracked.

    With a text tracker (SAM 3's ``Sam3VideoModel``) there are no clicks: :meth:`track_text` finds and tracks
    every instance of the concepts typed, and ``concepts`` says which concept each object is.
    """

    def __init__(self, tracker, path: str):
        from sam2_pipelines.video.text_session import is_text_video_model
        from sam2_pipelines.io.video import open_video

        self.path = str(path)
        self._tracker = tracker
        self.tracks_text = is_text_video_model(tracker.model)
        self._session = tracker.session(self.path)
        self.concepts: dict[int, str] = {}  # text tracker: object id -> its concept
        # The frames shown are read with a decoder of their own: the session's is busy on its read-ahead thread
        # while it propagates, and the frame slider may ask for a frame meanwhile.
        try:
            self._frames = open_video(self.path)
        except BaseException:
            self._session.close()
            raise
        self.clicks: list[dict] = []  # {"frame", "obj_id", "point", "label"} in click order
        self.results: dict[int, dict] = {}
        self.changed: set[int] = set()  # frames prompted since the last propagation
        self.closed_because: str | None = None  # set by close(): what every later call says
        self._lock = threading.Lock()  # the demo serves events on several threads; a session is used by one
        self._frames_lock = threading.Lock()  # the shown frames' decoder: read by one thread, closed by close()

    @property
    def num_frames(self) -> int:
        return self._session.num_frames

    @property
    def object_ids(self) -> list[int]:
        if self.tracks_text:  # every instance found, not only those still tracked on the last frame
            return sorted(self.concepts)
        return self._session.object_ids

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as an RGB uint8 array."""
        index = int(index)
        with self._frames_lock:
            self._check_open()
            if not 0 <= index < len(self._frames):
                raise ValueError(f"frame {index} is out of range: the video has {len(self._frames)} frames (0..{len(self._frames) - 1})")
            return np.asarray(self._frames[index], dtype=np.uint8)

    def view(self, index: int) -> np.ndarray:
        """Frame ``index`` with the masks known there and the clicks made there."""
        from sam2_pipelines.io.visualize import draw_prompts, overlay_frame

        canvas = self.frame(index)
        result = self.results.get(int(index))
        if result is not None and result["object_ids"]:
            canvas = overlay_frame(canvas, result)
        here = [click for click in self.clicks if click["frame"] == int(index)]
        if here:
            radius = max(3, min(canvas.shape[:2]) // 100)
            canvas = draw_prompts(canvas, [c["point"] for c in here], [c["label"] for c in here], radius=radius)
        return canvas

    def click(self, index: int, obj_id: int, x: float, y: float, positive: bool = True) -> np.ndarray:
        """Click object ``obj_id`` on frame ``index``: segments that frame only; returns its view."""
        self._check_clicks()
        with self._lock:
            self._check_open()
            index = int(index)
            label = 1 if positive else 0
            result = self._session.add_points(index, int(obj_id), [[float(x), float(y)]], [label])
            self.clicks.append({"frame": index, "obj_id": int(obj_id), "point": [float(x), float(y)], "label": label})
            self.changed.add(index)
            known = self.results.get(index)
            objects = _by_object(known) if known is not None else {}
            objects.update(_by_object(rle_result(index, result["object_ids"], result["masks"], result["scores"])))
            self.results[index] = _from_objects(index, dict(sorted(objects.items())))
            return self.view(index)

    def propagate(self, direction: str = "both") -> tuple[int, int]:
        """Track every object: from the earliest frame clicked since the last propagation (first time: the
        earliest prompted frame) in ``direction``. Returns ``(first frame, frames tracked)``."""
        self._check_clicks()
        with self._lock:
            self._check_open()
            if not self.object_ids:
                raise ValueError("click at least one object on a frame first")
            start = min(self.changed) if self.changed else None
            results = self._session.propagate(direction=direction, start_frame=start, output="rle", progress=True)
            count = 0
            first = None
            for result in results:
                frame = int(result["frame_idx"])
                first = frame if first is None else first
                self.results[frame] = rle_result(frame, result["object_ids"], result["masks"], result["scores"])
                count += 1
            self.changed.clear()
            return first, count

    def _check_open(self) -> None:
        """After :meth:`close` every call raises ``ValueError`` with the reason it was closed."""
        if self.closed_because is not None:
            raise ValueError(self.closed_because)

    def _check_clicks(self) -> None:
        """Clicks and Propagate need a click tracker; a text tracker says what it takes instead."""
        if self.tracks_text:
            raise ValueError("this video model tracks what a text names (SAM 3's Sam3VideoModel): type the concepts and press Track text")

    def track_text(self, concepts: list[str], frame: int = 0) -> int:
        """Text tracker: find and track every instance of ``concepts`` from ``frame`` on, replacing what was
        tracked before (a fresh session: the instances found depend on every frame from the start). Returns
        the number of frames tracked."""
        with self._lock:
            self._check_open()
            session = self._tracker.session(self.path)
            try:
                session.add_text(concepts, frame=int(frame))
            except BaseException:
                session.close()
                raise
            self._session.close()
            self._session = session
            self.results, self.concepts = {}, {}
            for result in self._session.propagate(output="rle", progress=True):
                frame_idx = int(result["frame_idx"])
                self.results[frame_idx] = rle_result(frame_idx, result["object_ids"], result["masks"], result["scores"])
                self.concepts.update(zip(result["object_ids"], result["concepts"]))
            return len(self.results)

    def remove(self, obj_id: int) -> None:
        """Forget object ``obj_id``: its clicks, memory and masks on every frame."""
        with self._lock:
            self._check_open()
            obj_id = int(obj_id)
            if obj_id not in self.object_ids:
                raise ValueError(f"there is no object {obj_id}; the objects are {self.object_ids or 'none yet'}")
            if self.tracks_text:
                self.concepts.pop(obj_id)  # the text session has no memory to keep in step: its tracking is done
            else:
                self._session.remove_object(obj_id)
            self.clicks = [click for click in self.clicks if click["obj_id"] != obj_id]
            for frame, result in list(self.results.items()):
                objects = _by_object(result)
                objects.pop(obj_id, None)
                self.results[frame] = _from_objects(frame, objects)

    def ordered_results(self) -> list[dict]:
        """Every frame's latest result, in frame order (``ValueError`` once closed: nothing is exported from a closed session)."""
        self._check_open()
        return [self.results[frame] for frame in sorted(self.results)]

    def write_overlay(self, path: Path) -> Path:
        """The video with every known mask blended in (mp4)."""
        from sam2_pipelines.io.video import write_overlay_video

        return write_overlay_video(self.path, self.ordered_results(), path)

    def export_coco(self, path: Path) -> Path:
        """Every frame's masks as COCO RLE in one JSON file (the ``tracks.json`` format of ``sam2-pipelines track``)."""
        from sam2_pipelines.io.exports import json_ready

        document = {"video": Path(self.path).name, "clicks": self.clicks, "frames": self.ordered_results()}
        if self.tracks_text:
            document["concepts"] = {str(obj_id): concept for obj_id, concept in sorted(self.concepts.items())}
        Path(path).write_text(json.dumps(json_ready(document)))
        return Path(path)

    def export_davis(self, path: Path) -> Path:
        """Every frame's masks as DAVIS palette PNGs (``<frame:05d>.png``, pixel value = object id) in a zip."""
        import tempfile

        from sam2_pipelines.io.video import write_palette_pngs

        with tempfile.TemporaryDirectory(prefix="sam2-davis-") as folder:
            written = write_palette_pngs(self.ordered_results(), folder)
            with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for file in written:
                    archive.write(file, file.relative_to(folder).as_posix())
        return Path(path)

    def close(self, reason: str = "this video session is closed; upload the video again") -> None:
        """Close the tracking session and both decoders now (their threads end here); every later call raises
        ``ValueError(reason)``. Waits for a click or propagation in progress; closing twice is fine."""
        with self._lock, self._frames_lock:
            if self.closed_because is not None:
                return
            self.closed_because = reason
            self._session.close()
            self._frames.close()
            self.results, self.clicks = {}, []
