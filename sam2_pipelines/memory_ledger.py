"""What a tracking session must hold of its tracked outputs, and the record that lets dropped ones be recomputed.

A SAM 2 step on frame ``f`` reads, per object, the memory features of the ``num_maskmem - 1`` tracked frames
before it (after it when tracking backward) and the object pointers of up to ``max_object_pointers - 1``
frames. Everything else a session may drop to keep memory flat in video length. Meta's predictor keeps every
output, and a correction or a later propagation may read an output long dropped: such outputs are recomputed
by replaying the steps that produced them. :class:`MemoryLedger` keeps what a replay needs:

* **segments**: one per propagation (``propagate()`` call or streamed frame): the prompted outputs each object
  had when it started, the first frame and direction of each of its passes, and the outputs of cleared prompts
  it read as tracked outputs;
* **lineage**: every tracking step since, in order: ``(frame, reverse, segment, pass index)``;
* **produced**: per object, the lineage position of the step that produced its latest tracked output per frame;
* **pinned**: per object, outputs of cleared prompts, read as tracked outputs until the frame is tracked again.

The functions here are pure bookkeeping over frame indices and output dicts: no model, no tensors computed.
"""

from __future__ import annotations

from typing import Callable


class MemoryLedger:
    """The record of a session's propagations and the reading windows of its steps.

    Args:
        num_maskmem: the model's ``num_maskmem`` (memory frames read per step, the current one included).
        pointer_window: returns how many frames' object pointers a step may read (the current one included);
            a callable, since it depends on the video's length, which grows while streaming.
    """

    def __init__(self, num_maskmem: int, pointer_window: Callable[[], int]):
        self.num_maskmem = num_maskmem
        self.pointer_window = pointer_window
        self.segments: list[dict] = []  # per propagation: prompted outputs at its start and the starts of its passes
        self.lineage: list[tuple[int, bool, int, int]] = []  # every tracking step since: (frame, reverse, segment, pass index)
        self.produced: dict[int, dict[int, int]] = {}  # obj_id -> {frame: lineage position of its tracked output}
        self.pinned: dict[int, dict] = {}  # obj_id -> {frame: output}: cleared prompts' outputs, read until re-tracked

    def clear(self) -> None:
        """Forget every propagation (the session forgets its tracked outputs)."""
        self.segments.clear()
        self.lineage.clear()
        self.produced.clear()
        self.pinned.clear()

    def windows(self, frame: int, reverse: bool) -> tuple[set, set]:
        """Tracked frames whose memory features, and whose object pointers, a step on ``frame`` reads."""
        sign = 1 if reverse else -1
        memory = {frame + sign * k for k in range(1, self.num_maskmem)}
        pointers = {frame + sign * k for k in range(1, self.pointer_window())}
        return memory, pointers

    def trim(self, tracked: dict, readers, keep_masks=(), keep=()) -> None:
        """Drop from ``tracked`` (frame -> output) what no reader ``(frame, reverse)`` reads.

        Mask logits are kept on the frames in ``keep_masks`` only; memories and object pointers on the frames in
        ``keep`` are kept whether read or not.
        """
        keep_memory, keep_pointer = set(keep), set(keep)
        for frame, reverse in readers:
            memory, pointers = self.windows(frame, reverse)
            keep_memory |= memory
            keep_pointer |= pointers
        for frame in list(tracked):
            entry = tracked[frame]
            if frame not in keep_masks:
                entry.pop("pred_masks", None)
            if frame not in keep_memory:
                entry.pop("maskmem_features", None)
                entry.pop("maskmem_pos_enc", None)
            if frame not in keep_pointer:
                entry.pop("object_pointer", None)
            if "maskmem_features" not in entry and "object_pointer" not in entry and "pred_masks" not in entry:
                del tracked[frame]

    def begin(self, cond: dict, pass_starts: list[tuple[int, bool]]) -> int:
        """Record a propagation starting with the prompted outputs ``cond`` (``{obj_id: {frame: output}}``) and
        passes starting at ``pass_starts`` (``(frame, reverse)``); returns its segment index."""
        self.segments.append({"cond": cond, "pass_starts": list(pass_starts), "pinned": {obj_id: dict(p) for obj_id, p in self.pinned.items()}})
        return len(self.segments) - 1

    def record(self, frame: int, reverse: bool, segment: int, pass_index: int, obj_ids) -> int:
        """Record a tracking step of ``segment`` on ``frame`` for ``obj_ids``; returns its lineage position.

        Objects whose output on the frame is a prompted output of the segment reused it: nothing was produced.
        """
        position = len(self.lineage)
        self.lineage.append((frame, reverse, segment, pass_index))
        for obj_id in obj_ids:
            if frame not in self.segments[segment]["cond"].get(obj_id, {}):
                self.produced.setdefault(obj_id, {})[frame] = position
        return position

    def readers_after(self, position: int) -> list[tuple[int, bool]]:
        """Steps that read outputs held after step ``position`` of the lineage: the next step, and the first
        step of every later pass of the same propagation (a backward pass reads frames after its start) and of
        every later propagation (each reads what was held where it started)."""
        frame, reverse, segment, pass_index = self.lineage[position]
        readers = [(frame - 1 if reverse else frame + 1, reverse), (frame, reverse)]
        readers += self.segments[segment]["pass_starts"][pass_index + 1 :]
        for later in self.segments[segment + 1 :]:
            readers += later["pass_starts"]
        return readers

    def forget_object(self, obj_id: int) -> None:
        """Forget what is recorded of object ``obj_id`` alone (its cleared prompts' outputs)."""
        self.pinned.pop(obj_id, None)
