"""Reading and writing videos: lazy frame sources (PyAV, frame folders, in-memory frames) and result writers.

Every reader returns a :class:`FrameSource`: ``len(source)`` frames, ``source[i]`` -> ``(H, W, 3)`` uint8 RGB
array, plus ``fps``, ``height`` and ``width``. Frames are decoded (or read from disk) when asked for, and only a
few recently used frames are kept, so a source costs the same memory for a 10-second clip and for an hour of
video. Iterators (a camera, a generator) are *streams*: they have no length and are read with
:func:`iter_frames`.

Writers take the per-frame results of the ``video-object-tracking`` pipeline
(``{"frame_idx", "object_ids", "masks", "scores"}``, masks binary or COCO RLE):

* :func:`write_palette_pngs`: one indexed PNG per frame in the DAVIS layout (pixel value = object id, the
  DAVIS / PASCAL VOC palette), or one folder of such PNGs per object;
* :func:`write_overlay_video`: an H.264 mp4 of the frames with every object's mask blended in its colour.
"""

from __future__ import annotations

import math

import os
import re
from collections import OrderedDict
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from sam2_pipelines.core.images import pil_to_rgb, read_image_file
from sam2_pipelines.core.masks import decode_rle
from sam2_pipelines.io.orientation import display_transform, frame_display_matrix, to_display
from sam2_pipelines.io.visualize import overlay_video, palette

#: File extensions read from a folder of frames (case-insensitive).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

#: Frame rate written by :func:`write_overlay_video` when neither the caller nor the source gives one.
DEFAULT_FPS = 24.0

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def to_rgb_frame(frame, where: str = "frame") -> np.ndarray:
    """Turn one frame into a contiguous ``(H, W, 3)`` uint8 RGB array.

    Files and PIL images follow :mod:`sam2_pipelines.core.images` (EXIF orientation applied, 16-bit scaled to
    8 bits). Accepts a PIL image (any mode), a uint8 numpy array or torch tensor shaped ``(H, W, 3)``, ``(H, W, 4)``
    (alpha dropped), ``(H, W)`` / ``(H, W, 1)`` (grey) or channels-first ``(3, H, W)``, or the path of an
    image file. Anything else raises ValueError naming ``where``.
    """
    if isinstance(frame, (str, os.PathLike)):
        return read_image_file(frame, where=f"{where}: image file {str(frame)!r}")
    if hasattr(frame, "convert") and hasattr(frame, "size") and not isinstance(frame, np.ndarray):  # PIL image
        return pil_to_rgb(frame, where)
    if hasattr(frame, "detach"):  # torch tensor
        frame = frame.detach().cpu().numpy()
    if not isinstance(frame, np.ndarray):
        raise ValueError(
            f"{where} must be a PIL image, a uint8 (H, W, 3) numpy array or torch tensor, or an image path; "
            f"got {type(frame).__name__}"
        )
    if frame.dtype != np.uint8:
        raise ValueError(
            f"{where} must hold uint8 RGB values in [0, 255], got dtype {frame.dtype} "
            "(convert float images with (image * 255).round().astype(np.uint8))"
        )
    if frame.ndim == 3 and frame.shape[0] in (1, 3) and frame.shape[-1] not in (1, 3, 4):
        frame = frame.transpose(1, 2, 0)  # channels first
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.ndim != 3 or frame.shape[-1] not in (1, 3, 4) or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"{where} must have shape (H, W, 3) (or (H, W), (H, W, 4), (3, H, W)), got {frame.shape}")
    if frame.shape[-1] == 1:
        frame = np.repeat(frame, 3, axis=-1)
    elif frame.shape[-1] == 4:
        frame = frame[..., :3]
    return np.ascontiguousarray(frame)


#: Decoded frames a video file source keeps for reuse by default (see :class:`VideoFileSource`).
DECODED_FRAMES_KEPT = 8


class FrameSource:
    """A random-access, lazily read video: ``len()``, ``source[i]`` -> ``(H, W, 3)`` uint8, iteration.

    Attributes:
        fps: frames per second when known (video files), else ``None``.
        height, width: frame size in pixels.
    """

    fps: float | None = None
    height: int
    width: int

    def __len__(self) -> int:
        raise NotImplementedError

    def _read(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def __getitem__(self, index: int) -> np.ndarray:
        """Frame ``index`` (negative indices count from the end) as an ``(H, W, 3)`` uint8 array."""
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"frame index must be an int, got {type(index).__name__}")
        length = len(self)
        if index < 0:
            index += length
        if not 0 <= index < length:
            raise IndexError(f"frame index {index} out of range for a video of {length} frames")
        frame = self._read(int(index))
        if frame.shape[:2] != (self.height, self.width):
            raise ValueError(
                f"frame {index} has size {frame.shape[0]}x{frame.shape[1]} but the video's first frame is "
                f"{self.height}x{self.width}; all frames of a video must have the same size"
            )
        return frame

    def __iter__(self) -> Iterator[np.ndarray]:
        for index in range(len(self)):
            yield self[index]

    @property
    def cached_frames(self) -> int:
        """Decoded frames this source holds for reuse (at most ``cache_size`` for a video file; 0 otherwise)."""
        return 0

    def close(self) -> None:
        """Release files held open by the source (a no-op for in-memory frames)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(frames={len(self)}, height={self.height}, width={self.width}, fps={self.fps})"


class VideoFileSource(FrameSource):
    """A video file or URL decoded lazily with PyAV.

    On opening, the container's packets are scanned (no decoding) to learn every frame's timestamp; frame
    ``i`` is then decoded on demand: sequential reads continue the running decoder, other reads seek to the
    keyframe before the frame and decode forward. The last ``cache_size`` decoded frames are kept, so
    reading backwards costs one keyframe interval of decoding per ``cache_size`` frames.

    Frames come as players show them: the container's display matrix (a phone's portrait video is stored
    landscape, tagged "rotate 90"; quarter turns and mirrorings) is applied to the pixels, so ``height``,
    ``width``, click coordinates and everything written from the frames are the displayed video's
    (:mod:`sam2_pipelines.io.orientation`). ``rotation`` is the display rotation in degrees, counter-clockwise as
    PyAV's ``VideoFrame.rotation`` reports it (-90 for a phone's "rotate 90"); a rotation that is not a multiple
    of 90 degrees is a ValueError on opening.
    """

    def __init__(self, path: str | os.PathLike, cache_size: int = DECODED_FRAMES_KEPT):
        import av

        self.path = str(path)
        self.cache_size = max(1, int(cache_size))
        is_url = bool(_URL.match(self.path))
        if not is_url and not os.path.isfile(self.path):
            raise ValueError(f"video file {self.path!r} does not exist")
        if not is_url and os.path.getsize(self.path) == 0:
            raise ValueError(f"video file {self.path!r} is empty (0 bytes)")
        try:
            self._container = av.open(self.path)
        except (av.FFmpegError, OSError) as error:
            raise ValueError(f"could not open {self.path!r} as a video: {error}") from None
        try:
            if not self._container.streams.video:
                raise ValueError(f"{self.path!r} has no video stream")
            self._stream = self._container.streams.video[0]
            self._stream.thread_type = "AUTO"
            timestamps = []
            for packet in self._container.demux(self._stream):
                if packet.size == 0:
                    continue  # flush packet
                if packet.pts is None:
                    raise ValueError(f"{self.path!r} has video packets without timestamps; re-encode it (e.g. to mp4)")
                timestamps.append(int(packet.pts))
        except av.FFmpegError as error:
            self._container.close()
            raise ValueError(f"could not read the video stream of {self.path!r}: {error}") from None
        except ValueError:
            self._container.close()
            raise
        self._timestamps = sorted(set(timestamps))
        self._index_of = {pts: i for i, pts in enumerate(self._timestamps)}
        if not self._timestamps:
            self._container.close()
            raise ValueError(f"video {self.path!r} has no frames")
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else None
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self.rotation = None  # display rotation (degrees, counter-clockwise), read from the first decoded frame
        self._transform = None  # how stored frames become displayed ones (orientation.display_transform)
        self._decoder = None  # running iterator of (index, av.VideoFrame)
        self._next_index = None  # index the running decoder yields next (None: unknown)
        try:
            first = self._read(0)
        except ValueError:
            self._container.close()
            raise
        self.height, self.width = first.shape[:2]

    def __len__(self) -> int:
        return len(self._timestamps)

    @property
    def cached_frames(self) -> int:
        return len(self._cache)

    def _remember(self, index: int, frame: np.ndarray) -> None:
        self._cache[index] = frame
        self._cache.move_to_end(index)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _frames_from(self, pts: int):
        """Seek to the keyframe at or before ``pts`` and yield ``(index, frame)`` in presentation order."""
        import av

        self._container.seek(pts, stream=self._stream, backward=True, any_frame=False)
        try:
            for frame in self._container.decode(self._stream):
                if frame.pts is None or frame.pts not in self._index_of:
                    continue
                yield self._index_of[frame.pts], frame
        except av.FFmpegError as error:
            raise ValueError(f"could not decode {self.path!r}: {error}") from None

    def _pixels(self, frame) -> np.ndarray:
        """One decoded ``av.VideoFrame`` as RGB, turned as players show it."""
        rgb = frame.reformat(format="rgb24")  # a copy in its own buffers, side data included
        if self._transform is None:
            # Read from the copy: reading a frame's side data ties it in a reference cycle with it, and the decoder's
            # own frame would then keep the decoder (and its threads) alive until the garbage collector runs.
            self._transform = display_transform(frame_display_matrix(rgb), where=f"video {self.path!r}")
            self.rotation = getattr(rgb, "rotation", 0) or 0
        return to_display(rgb.to_ndarray(), self._transform)

    def _read(self, index: int) -> np.ndarray:
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        sequential = self._decoder is not None and self._next_index is not None and self._next_index <= index <= self._next_index + 4 * self.cache_size
        if not sequential:
            self._decoder = self._frames_from(self._timestamps[index])
        first_kept = index - self.cache_size + 1
        for decoded_index, frame in self._decoder:
            self._next_index = decoded_index + 1
            if decoded_index >= first_kept and decoded_index not in self._cache:
                self._remember(decoded_index, self._pixels(frame))
            if decoded_index >= index:
                break
        else:
            self._decoder = None
            self._next_index = None
        if index not in self._cache:
            raise ValueError(f"could not decode frame {index} of {self.path!r} (the file may be truncated or corrupt)")
        return self._cache[index]

    def close(self) -> None:
        """Close the container and free its decoder now (its threads end here, not when the garbage collector
        gets to the stream). Closing twice is fine."""
        self._decoder = None  # the running decode iterator holds the stream's codec context
        self._cache.clear()
        self._stream = None  # the last reference to the codec context: freeing it joins the decoder's threads
        self._container.close()


def _natural_key(name: str):
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


class FolderSource(FrameSource):
    """A folder of frame images (``.jpg``/``.jpeg``/``.png``) in natural order (``2.jpg`` before ``10.jpg``)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        names = [p for p in self.folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
        if not names:
            raise ValueError(f"folder {str(self.folder)!r} holds no frames (expected files ending in {', '.join(IMAGE_EXTENSIONS)})")
        self.paths = sorted(names, key=lambda p: _natural_key(p.name))
        self.height, self.width = self._read(0).shape[:2]

    def __len__(self) -> int:
        return len(self.paths)

    def _read(self, index: int) -> np.ndarray:
        return to_rgb_frame(self.paths[index], where=f"frame {index} ({self.paths[index].name})")


class SequenceSource(FrameSource):
    """Frames already in memory: a list of PIL images / arrays / image paths, or a ``(T, H, W, 3)`` uint8 array or tensor."""

    def __init__(self, frames, fps: float | None = None):
        if hasattr(frames, "detach"):
            frames = frames.detach().cpu().numpy()
        if isinstance(frames, np.ndarray):
            if frames.ndim != 4:
                raise ValueError(f"a video array must have shape (frames, H, W, 3) (or (frames, 3, H, W)), got {frames.shape}")
        elif not isinstance(frames, (list, tuple)):
            raise ValueError(f"frames must be a list or a (frames, H, W, 3) array, got {type(frames).__name__}")
        if len(frames) == 0:
            raise ValueError("the video has no frames (got an empty list/array)")
        self._frames = frames
        self.fps = fps
        self.height, self.width = self._read(0).shape[:2]

    def __len__(self) -> int:
        return len(self._frames)

    def _read(self, index: int) -> np.ndarray:
        return to_rgb_frame(self._frames[index], where=f"frame {index}")


def is_stream(source) -> bool:
    """True when ``source`` is an iterator / generator of frames (no length, read once), not a video."""
    if isinstance(source, (str, os.PathLike, list, tuple, np.ndarray, FrameSource)) or hasattr(source, "detach"):
        return False
    return hasattr(source, "__next__") or (hasattr(source, "__iter__") and not hasattr(source, "__len__"))


def open_video(source, fps: float | None = None) -> FrameSource:
    """Open ``source`` as a lazy :class:`FrameSource`.

    Args:
        source: a video file path or URL (anything FFmpeg reads: mp4, webm, avi, ...), a folder of frames,
            a list of frames (PIL images, uint8 arrays/tensors or image paths), a ``(T, H, W, 3)`` uint8
            array or tensor, or an existing :class:`FrameSource` (returned as is).
        fps: frame rate to report for in-memory frames and folders (video files report their own).

    Raises:
        ValueError: missing, empty or corrupt files, folders without frames, empty lists, badly shaped
            frames, or an iterator (read streams with :func:`iter_frames`).
    """
    if isinstance(source, FrameSource):
        return source
    if isinstance(source, (str, os.PathLike)):
        text = str(source)
        if not _URL.match(text) and os.path.isdir(text):
            folder = FolderSource(text)
            folder.fps = fps
            return folder
        return VideoFileSource(text)
    if is_stream(source):
        raise ValueError("an iterator of frames is a stream without random access; read it with iter_frames()")
    return SequenceSource(source, fps=fps)


def iter_frames(source) -> Iterator[np.ndarray]:
    """Yield the frames of any video source, or of a stream (iterator / generator of frames), as RGB uint8 arrays.

    A video this opens (a path, folder, list of frames) is closed when the iteration ends or is closed; a
    :class:`FrameSource` given stays open."""
    if is_stream(source):
        size = None
        for index, frame in enumerate(source):
            frame = to_rgb_frame(frame, where=f"streamed frame {index}")
            if size is None:
                size = frame.shape[:2]
            elif frame.shape[:2] != size:
                raise ValueError(f"streamed frame {index} has size {frame.shape[:2]} but the first frame was {size}")
            yield frame
    else:
        video = open_video(source)
        try:
            yield from video
        finally:
            if video is not source:  # opened here: closed here (a FrameSource given stays open)
                video.close()


# ----------------------------------------------------------------------------------------------- writers


def result_masks(result: dict) -> list[np.ndarray]:
    """The masks of one per-frame result as a list of ``(H, W)`` bool arrays (binary or RLE input)."""
    masks = result["masks"]
    out = []
    for mask in masks:
        mask = decode_rle(mask) if isinstance(mask, dict) else np.asarray(mask)
        out.append(mask.reshape(mask.shape[-2:]).astype(bool))
    return out


def _result_size(result: dict):
    masks = result["masks"]
    if isinstance(masks, np.ndarray) and masks.ndim >= 2:
        return tuple(masks.shape[-2:])
    for mask in masks:
        if isinstance(mask, dict):
            return tuple(int(v) for v in mask["size"])
        return tuple(np.asarray(mask).shape[-2:])
    return None


def label_map(result: dict, size=None, values: dict | None = None) -> np.ndarray:
    """Combine one frame's object masks into an ``(H, W)`` uint8 map of pixel values.

    The pixel value of an object is its id (ids must then be in 1..255), or ``values[obj_id]`` when a
    mapping is given. Where objects overlap, the object with the higher score wins.
    """
    size = _result_size(result) or size
    if size is None:
        raise ValueError("cannot tell the frame size of a result without masks; pass size=(H, W)")
    ids = [int(i) for i in result["object_ids"]]
    if values is None:
        for obj_id in ids:
            if not 1 <= obj_id <= 255:
                raise ValueError(
                    f"palette PNGs store object ids 1..255 as pixel values; object id {obj_id} does not fit (give "
                    "write_palette_pngs a list of results: it then maps ids to pixel values and writes object_ids.json)"
                )
        values = {obj_id: obj_id for obj_id in ids}
    masks = result_masks(result)
    scores = result.get("scores")
    order = range(len(ids)) if scores is None else np.argsort(np.asarray(scores, dtype=np.float64), kind="stable")
    labels = np.zeros(size, dtype=np.uint8)
    for k in order:
        labels[masks[k]] = values[ids[k]]
    return labels


def palette_values(results: list[dict]) -> dict[int, int] | None:
    """Pixel value per object id for palette PNGs: ``None`` (value = id) when every id is in 1..255.

    Otherwise the ids, sorted, get the values 1, 2, 3, ... (at most 255 objects fit in a palette PNG).
    """
    return palette_values_of({int(i) for result in results for i in result["object_ids"]})


def palette_values_of(ids) -> dict[int, int] | None:
    """:func:`palette_values` for a set of object ids (every id of the video)."""
    ids = sorted(ids)
    if not ids or (ids[0] >= 1 and ids[-1] <= 255):
        return None
    if len(ids) > 255:
        raise ValueError(f"palette PNGs hold at most 255 objects per video, got {len(ids)}")
    return {obj_id: value for value, obj_id in enumerate(ids, start=1)}


def save_palette_png(labels: np.ndarray, path: str | os.PathLike) -> None:
    """Save an ``(H, W)`` uint8 map of pixel values as an indexed PNG with the DAVIS / PASCAL VOC palette."""
    from PIL import Image

    image = Image.fromarray(labels, mode="P")
    image.putpalette(palette(256).reshape(-1).tolist())
    image.save(path)


def write_palette_pngs(results: Iterable[dict], out_dir: str | os.PathLike, per_object: bool = False) -> list[Path]:
    """Write tracking results as DAVIS-style palette PNGs and return the written paths.

    Args:
        results: per-frame results (``frame_idx``, ``object_ids``, ``masks`` binary or RLE, ``scores``).
        out_dir: output folder (created if missing).
        per_object: ``False`` (default) writes ``out_dir/<frame:05d>.png`` per frame with every object
            (pixel value = object id, overlaps go to the higher score); ``True`` writes one folder per
            object, ``out_dir/<obj_id>/<frame:05d>.png``, each PNG holding that object alone.

    The PNGs are indexed ("P" mode) with the DAVIS / PASCAL VOC palette, so object ``k`` shows in colour
    ``palette()[k]`` and ``np.array(Image.open(path))`` gives back the ids. Ids outside 1..255 (0, or
    above 255) need ``results`` as a list: the ids then get the pixel values 1, 2, ... in sorted order,
    and ``out_dir/object_ids.json`` maps each pixel value back to its object id.
    """
    values = palette_values(results) if isinstance(results, (list, tuple)) else None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if values is not None:
        import json

        mapping = out_dir / "object_ids.json"
        mapping.write_text(json.dumps({"pixel_value_to_object_id": {str(v): k for k, v in values.items()}}, indent=1))
        written.append(mapping)
    # A frame whose objects were all removed has no mask to tell its size: take it from any other frame.
    size = next(filter(None, map(_result_size, results)), None) if isinstance(results, (list, tuple)) else None
    for result in results:
        size = _result_size(result) or size
        frame_idx = int(result["frame_idx"])
        if per_object:
            for obj_id, mask in zip(result["object_ids"], result_masks(result)):
                single = label_map({"object_ids": [obj_id], "masks": [mask]}, values=values)
                folder = out_dir / str(int(obj_id))
                folder.mkdir(exist_ok=True)
                path = folder / f"{frame_idx:05d}.png"
                save_palette_png(single, path)
                written.append(path)
        else:
            path = out_dir / f"{frame_idx:05d}.png"
            save_palette_png(label_map(result, size, values), path)
            written.append(path)
    return written


def write_overlay_video(frames_source, results: Iterable[dict], path: str | os.PathLike, fps: float | None = None, alpha: float = 0.5) -> Path:
    """Encode the frames with the tracked masks blended in (H.264 mp4, one colour per object id).

    Args:
        frames_source: the video the results belong to (anything :func:`open_video` accepts, or a stream).
        results: per-frame results, matched to frames by ``frame_idx``, or a mapping ``frame index -> result``
            (each read when its frame is encoded, so results kept on disk need not be loaded together); frames
            without a result are written unchanged.
        path: output file (``.mp4``).
        fps: frame rate; defaults to the source's frame rate, else ``DEFAULT_FPS``.
        alpha: opacity of the mask colours.

    Frames are read, blended and encoded one at a time. Odd frame sizes are padded by one pixel (H.264 in
    yuv420p needs even sizes). Returns the path written.
    """
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)) or not math.isfinite(fps) or fps <= 0):
        raise ValueError(f"fps must be None (the source's frame rate) or a positive number of frames per second, got {fps!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    results = results if isinstance(results, Mapping) else list(results)
    source = frames_source if is_stream(frames_source) else open_video(frames_source)
    try:
        rate = fps or getattr(source, "fps", None) or DEFAULT_FPS
        encode_h264(overlay_video(iter_frames(source), results, alpha=alpha), path, rate)
    finally:
        if source is not frames_source:  # opened here: its decoder is closed now, not by the garbage collector
            source.close()
    return path


def encode_h264(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float = 30, *, lossless: bool = False, options: dict | None = None, rotation: int = 0, mirror: tuple[bool, bool] = (False, False)) -> int:
    """Encode ``(H, W, 3)`` uint8 RGB frames as an H.264 mp4, one at a time (an iterator is never held whole).

    The usual lossy ``yuv420p`` (odd sizes padded by one edge pixel, which it needs), or ``lossless`` RGB
    (``libx264rgb``, ``qp`` 0). ``options`` are the encoder's (e.g. ``{"crf": "10", "g": "5"}``). ``rotation``
    (degrees, counter-clockwise, as :attr:`VideoFileSource.rotation` reads it back) is written to the container's
    display matrix: players, and :func:`open_video`, show the frames turned by it (a phone's portrait video is
    landscape frames with rotation -90), then mirrored by ``mirror`` ``(horizontally, vertically)``. Returns the
    number of frames written; no frames is a ``ValueError``.
    """
    import av

    rate = Fraction(fps).limit_denominator(1001)
    written = 0
    with av.open(str(path), mode="w") as container:
        stream = None
        for frame in frames:
            frame = np.asarray(frame, dtype=np.uint8)
            if not lossless:
                frame = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), mode="edge")
            if stream is None:
                if lossless:
                    stream = container.add_stream("libx264rgb", rate=rate, options={"qp": "0", **(options or {})})
                    stream.pix_fmt = "rgb24"
                else:
                    stream = container.add_stream("libx264", rate=rate, options=dict(options or {}))
                    stream.pix_fmt = "yuv420p"
                stream.width, stream.height = frame.shape[1], frame.shape[0]
                if rotation or any(mirror):
                    stream.set_display_rotation(rotation, hflip=mirror[0], vflip=mirror[1])
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
            written += 1
        if stream is None:
            raise ValueError("the video has no frames to write")
        for packet in stream.encode():
            container.mux(packet)
    return written
