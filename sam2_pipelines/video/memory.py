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

:class:`MemoryLedger` is pure bookkeeping over frame indices and output dicts (no model, no tensors computed);
:class:`MemoryRecall` holds a session's outputs by it and recomputes dropped ones through the session's stepper.
"""

from __future__ import annotations

from typing import Callable

from sam2_pipelines.models import internals


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


class MemoryRecall:
    """The tracked outputs a session holds, the prompted outputs waiting for a propagation, and their recall.

    Holds the :class:`MemoryLedger` and the pending prompted outputs; gives each step the outputs it reads,
    recomputing dropped ones by replaying the steps that produced them (through the session's stepper), and
    drops what no later step reads (``prune_memory``).
    """

    def __init__(self, stepper, num_maskmem: int, pointer_window: Callable[[], int], prune_memory: bool):
        self._stepper = stepper
        self._state = stepper.state
        self.prunes = prune_memory
        self.ledger = MemoryLedger(num_maskmem, pointer_window)
        self.pending: dict[int, dict] = {}  # obj_id -> {frame: output} of prompts since the last propagation
        self.peak_held = 0
        self.replays = 0  # times dropped outputs were recomputed

    def _obj_id(self, obj_idx: int) -> int:
        return self._state.obj_idx_to_id(obj_idx)

    def readable_outputs(self, obj_idx: int, frame: int, reverse: bool, with_memory: bool, with_mask: bool = True) -> dict:
        """The object's tracked outputs a step on ``frame`` reads, as Meta's predictor holds them.

        That is the frame's own mask logits (with ``with_mask``; a click is decoded with them) and, with
        ``with_memory``, the memories and object pointers of the tracked frames before it (after it when
        ``reverse``). Outputs dropped to keep memory flat are recomputed by replaying this object's steps of
        the propagations that produced them, so the result does not depend on what was dropped.
        """
        committed, held = internals.object_outputs(self._state, obj_idx)  # Meta drops a frame's tracked output once it is prompted
        need = {frame: {"pred_masks"}} if with_mask else {}
        if with_memory:
            memory_frames, pointer_frames = self.ledger.windows(frame, reverse)
            for f in memory_frames:
                need.setdefault(f, set()).add("maskmem_features")
            for f in pointer_frames:
                need.setdefault(f, set()).add("object_pointer")
        produced = self.ledger.produced.get(self._obj_id(obj_idx), {})
        missing = [f for f, keys in need.items() if f not in committed and f in produced and not keys <= held.get(f, {}).keys()]
        source = self._replay(obj_idx, set(need), max(produced[f] for f in missing)) if missing else held
        source = {**source, **self.ledger.pinned.get(self._obj_id(obj_idx), {})}
        return {f: source[f] for f in need if f in source and f not in committed}

    def _replay(self, obj_idx: int, keep: set, until: int) -> dict:
        """Re-run one object's tracking steps of the current propagations, up to step ``until``.

        Returns the recomputed tracked outputs: whole on the frames in ``keep``, and whatever the remaining
        steps would read. Steps run with the prompted outputs each propagation started with, so they repeat
        the original computation exactly.
        """
        ledger = self.ledger
        self.replays += 1
        obj_id = self._obj_id(obj_idx)
        scratch: dict = {}
        entered = -1
        with self._stepper.compute():
            for position, (frame, reverse, segment, _) in enumerate(ledger.lineage[: until + 1]):
                if segment != entered:  # outputs of prompts cleared before this propagation
                    entered = segment
                    scratch.update(ledger.segments[segment]["pinned"].get(obj_id, {}))
                cond = ledger.segments[segment]["cond"].get(obj_id)
                if cond is None or frame in cond:
                    continue  # the object did not exist yet, or the frame reused its prompted output
                with internals.outputs_seen(self._state, obj_idx, prompted=cond, tracked=scratch):
                    scratch[frame] = self._stepper.infer(obj_idx, frame, False, None, None, reverse)
                ledger.trim(scratch, ledger.readers_after(position), keep_masks=keep, keep=keep)
        return scratch

    def restore_window(self, frame: int, reverse: bool) -> None:
        """Make the tracked outputs that a pass starting on ``frame`` reads held again.

        As in Meta's predictor, a propagation reads every object's latest outputs on the frames before its
        start (after it when ``reverse``), whichever propagation produced them; those dropped to keep memory
        flat are recomputed (:meth:`readable_outputs`). Later steps of the pass read frames it produced itself.
        """
        for obj_idx, prompted, tracked in internals.all_object_outputs(self._state):
            if prompted:
                tracked.update(self.readable_outputs(obj_idx, frame, reverse, with_memory=True, with_mask=False))

    def commit_pending(self) -> None:
        """Make pending prompted outputs conditioning frames (Meta's ``propagate_in_video_preflight``)."""
        for obj_idx, prompted, tracked in internals.all_object_outputs(self._state):
            pending = self.pending.pop(self._obj_id(obj_idx), {})
            prompted.update(pending)
            pinned = self.ledger.pinned.get(self._obj_id(obj_idx), {})
            for frame in pending:
                pinned.pop(frame, None)
            for frame in prompted:
                tracked.pop(frame, None)

    def begin(self, passes) -> int:
        """Record a propagation of ``passes`` (``(frames, reverse)``) starting now; returns its segment."""
        return self.ledger.begin(
            {self._obj_id(i): dict(prompted) for i, prompted, _ in internals.all_object_outputs(self._state)},
            [(frames[0], reverse) for frames, reverse in passes],
        )

    def tracked(self, obj_idx: int, frame: int, out: dict) -> None:
        """Hold a freshly tracked output (it replaces a cleared prompt's output read there)."""
        internals.object_outputs(self._state, obj_idx)[1][frame] = out
        self.ledger.pinned.get(self._obj_id(obj_idx), {}).pop(frame, None)

    def after_step(self, frame: int, reverse: bool, segment: int, pass_index: int, obj_ids) -> None:
        """Record a tracking step on ``frame`` and drop the tracked outputs that no later step reads."""
        position = self.ledger.record(frame, reverse, segment, pass_index, obj_ids)
        self.prune(self.ledger.readers_after(position), latest=frame)

    def prune(self, readers: list[tuple[int, bool]], latest: int) -> None:
        """Drop tracked outputs that none of ``readers`` (``(frame, reverse)``) will read.

        The ``latest`` tracked frame keeps its mask logits, and ``readers`` include it, so a correction there
        needs no recomputation.
        """
        every = internals.all_object_outputs(self._state)
        self.peak_held = max(self.peak_held, sum(len(tracked) for _, _, tracked in every))
        if self.prunes:
            for obj_idx, _, tracked in every:
                pinned = self.ledger.pinned.get(self._obj_id(obj_idx), {})
                self.ledger.trim(tracked, readers, keep_masks={latest, *pinned}, keep=pinned)

    def cleared(self, obj_idx: int, frame: int) -> None:
        """A prompt was cleared on ``frame``: its output there becomes a tracked output read until re-tracked."""
        obj_id = self._obj_id(obj_idx)
        prompted, tracked = internals.object_outputs(self._state, obj_idx)
        self.pending.get(obj_id, {}).pop(frame, None)
        out = prompted.pop(frame, None)
        if out is not None:
            tracked[frame] = out
            self.ledger.pinned.setdefault(obj_id, {})[frame] = out
            self.ledger.produced.get(obj_id, {}).pop(frame, None)
            internals.unmark_tracked(self._state, obj_idx, frame)

    def forget_object(self, obj_id: int) -> None:
        self.ledger.forget_object(obj_id)
        self.pending.pop(obj_id, None)

    def snapshot(self) -> tuple:
        """What a session call may change here (dicts copied, outputs shared), for :meth:`restore`."""
        ledger = self.ledger
        return (
            {o: dict(p) for o, p in self.pending.items()},
            list(ledger.segments), list(ledger.lineage),
            {o: dict(p) for o, p in ledger.produced.items()}, {o: dict(p) for o, p in ledger.pinned.items()},
            self.peak_held, self.replays,
        )

    def restore(self, saved: tuple) -> None:
        """Put a :meth:`snapshot` back (after a call that failed half-way)."""
        pending, segments, lineage, produced, pinned, self.peak_held, self.replays = saved
        self.pending = {o: dict(p) for o, p in pending.items()}
        ledger = self.ledger
        ledger.segments, ledger.lineage = list(segments), list(lineage)
        ledger.produced = {o: dict(p) for o, p in produced.items()}
        ledger.pinned = {o: dict(p) for o, p in pinned.items()}

    def clear(self) -> None:
        """Forget every pending output and the record of the propagations (reset, close)."""
        self.pending.clear()
        self.ledger.clear()

    def counts(self) -> dict:
        """Tracked, peak tracked and prompted outputs held (see ``TrackingSession.memory_stats``)."""
        every = internals.all_object_outputs(self._state)
        return {
            "tracked_outputs": sum(len(tracked) for _, _, tracked in every),
            "peak_tracked_outputs": self.peak_held,
            "prompted_outputs": sum(len(prompted) for _, prompted, _ in every) + sum(len(p) for p in self.pending.values()),
            "pinned_outputs": sum(len(p) for p in self.ledger.pinned.values()),
            "replays": self.replays,
        }
