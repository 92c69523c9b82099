"""The files of ``sam2-pipelines track``, written one result at a time as the tracker produces them.

:class:`TrackOutputs` writes into a folder (the CLI's staging folder), for every per-frame result as it
arrives: the frame's palette PNG (``masks/<frame:05d>.png``), its record in ``tracks.json`` (the JSON document
is written as it goes) and the same record, one line, in a spill file. :meth:`TrackOutputs.finish` closes the
JSON and encodes ``overlay.mp4`` in frame order, reading each frame's record back from the spill file (results of
``direction="backward"`` / ``"both"`` do not come in frame order). No frame's masks are kept once written, so
memory stays flat in the length of the video.

The files are the ones the whole-list writers give (:func:`~sam2_pipelines.io.video.write_palette_pngs`,
:func:`~sam2_pipelines.io.video.write_overlay_video`, ``json.dumps`` of the document), byte for byte. Palette
pixel values depend on every object id of the video (:func:`~sam2_pipelines.io.video.palette_values_of`), which
a stream only knows at its end: each id gets a value when first seen (:func:`provisional_value`, the id itself
where it can), and ``finish`` rewrites the PNGs through a lookup table in the rare case those differ from the
final values.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from sam2_pipelines.io import video as video_io
from sam2_pipelines.io.exports import frame_record, json_ready

#: Name of the spill file of per-frame records, inside the output folder (removed by :meth:`TrackOutputs.finish`).
SPILL_NAME = ".frames.jsonl"


def provisional_value(obj_id: int, taken: dict[int, int]) -> int:
    """The palette pixel value for a newly seen object id, given the values ``taken`` (id -> value) so far.

    The id itself when it is in 1..255 and free, else the smallest free value; ValueError past 255 objects.
    """
    used = set(taken.values())
    if 1 <= obj_id <= 255 and obj_id not in used:
        return obj_id
    free = next((value for value in range(1, 256) if value not in used), None)
    if free is None:
        raise ValueError(f"palette PNGs hold at most 255 objects per video; object id {obj_id} is the 256th")
    return free


def value_table(provisional: dict[int, int], final: dict[int, int] | None) -> np.ndarray | None:
    """A uint8 lookup table taking provisional pixel values to final ones (``final`` ``None``: value = id), or
    ``None`` when they agree."""
    final = {obj_id: obj_id for obj_id in provisional} if final is None else final
    if all(provisional[obj_id] == final[obj_id] for obj_id in provisional):
        return None
    table = np.arange(256, dtype=np.uint8)
    for obj_id, value in provisional.items():
        table[value] = final[obj_id]
    return table


class SpilledRecords(Mapping):
    """``frame index -> record`` over the spill file: each record is read from disk when asked for."""

    def __init__(self, path: Path, offsets: dict[int, int]):
        self._path = path
        self._offsets = offsets

    def __getitem__(self, frame: int) -> dict:
        offset = self._offsets[frame]
        with open(self._path, "rb") as spill:
            spill.seek(offset)
            return json.loads(spill.readline())

    def __iter__(self):
        return iter(self._offsets)

    def __len__(self) -> int:
        return len(self._offsets)


class TrackOutputs:
    """``masks/``, ``tracks.json`` and ``overlay.mp4`` of one ``track`` run, written into ``folder`` as results come.

    Args:
        folder: where to write (the CLI's staging folder; created if missing).
        header: the document's entries before ``"frames"`` (``{"video", "model", "prompts"}``).
        size: ``(height, width)`` of the video: the size of a frame whose result has no masks.

    Call :meth:`add` for each result in processing order, then :meth:`finish` once; :meth:`close` (or the
    ``with`` block) closes the files, also after a failure, leaving the folder for the caller to remove.
    """

    def __init__(self, folder: str | os.PathLike, header: dict, size: tuple[int, int]):
        self.folder = Path(folder)
        self.masks = self.folder / "masks"
        self.masks.mkdir(parents=True, exist_ok=True)
        self._size = tuple(size)
        self._values: dict[int, int] = {}  # object id -> provisional pixel value
        self._frames: list[int] = []  # frame_idx of each PNG written, in order
        self._offsets: dict[int, int] = {}  # frame_idx -> its record's offset in the spill file
        self._count = 0
        self._spill_path = self.folder / SPILL_NAME
        self._json = open(self.folder / "tracks.json", "w")
        self._spill = open(self._spill_path, "wb")
        opening = json.dumps(json_ready(header))
        self._json.write(opening[:-1] + (", " if header else "") + '"frames": [')

    def add(self, result: dict) -> None:
        """Write one per-frame result (binary or RLE masks): its PNG, its JSON record and its spill line."""
        for obj_id in map(int, result["object_ids"]):
            if obj_id not in self._values:
                self._values[obj_id] = provisional_value(obj_id, self._values)
        frame = int(result["frame_idx"])
        labels = video_io.label_map(result, self._size, self._values)
        video_io.save_palette_png(labels, self.masks / f"{frame:05d}.png")
        self._frames.append(frame)
        record = json.dumps(json_ready(frame_record(result)))
        self._json.write((", " if self._count else "") + record)
        self._offsets[frame] = self._spill.tell()
        self._spill.write(record.encode("ascii") + b"\n")
        self._count += 1

    def finish(self, video, fps: float | None = None) -> int:
        """Close ``tracks.json``, settle the palette values (``masks/object_ids.json`` when ids do not fit 1..255)
        and encode ``overlay.mp4`` from ``video`` (a :class:`~sam2_pipelines.io.video.FrameSource`).
        Returns the number of results written."""
        self._json.write("]}")
        self._json.close()
        self._spill.close()
        final = video_io.palette_values_of(self._values)
        if final is not None:
            mapping = {"pixel_value_to_object_id": {str(v): k for k, v in final.items()}}
            (self.masks / "object_ids.json").write_text(json.dumps(mapping, indent=1))
        table = value_table(self._values, final)
        if table is not None:
            for frame in dict.fromkeys(self._frames):
                self._relabel(self.masks / f"{frame:05d}.png", table)
        video_io.write_overlay_video(video, SpilledRecords(self._spill_path, self._offsets), self.folder / "overlay.mp4", fps=fps)
        self._spill_path.unlink()
        return self._count

    @staticmethod
    def _relabel(path: Path, table: np.ndarray) -> None:
        from PIL import Image

        with Image.open(path) as image:
            labels = np.asarray(image)
        video_io.save_palette_png(table[labels], path)

    def close(self) -> None:
        """Close the files (whatever was written stays, for the caller to keep or remove)."""
        self._json.close()
        self._spill.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
