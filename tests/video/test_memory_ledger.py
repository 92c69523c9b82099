"""The bookkeeping of what a tracking session holds (no model: frame indices and output dicts only)."""

from __future__ import annotations

from sam2_pipelines.video.memory import MemoryLedger


def ledger(num_maskmem=3, pointers=4) -> MemoryLedger:
    return MemoryLedger(num_maskmem, lambda: pointers)


def full_output() -> dict:
    return {"pred_masks": 1, "maskmem_features": 2, "maskmem_pos_enc": 3, "object_pointer": 4}


def test_windows_follow_the_direction():
    memory, pointers = ledger().windows(10, reverse=False)
    assert memory == {8, 9} and pointers == {7, 8, 9}
    memory, pointers = ledger().windows(10, reverse=True)
    assert memory == {11, 12} and pointers == {11, 12, 13}
    growing = [5]
    streaming = MemoryLedger(3, lambda: growing[0])  # the pointer window is read at every call
    growing[0] = 2
    assert streaming.windows(10, False)[1] == {9}


def test_trim_keeps_what_readers_read():
    tracked = {frame: full_output() for frame in range(10)}
    ledger().trim(tracked, [(10, False)], keep_masks={0, 9}, keep={0, 1})
    assert sorted(tracked) == [0, 1, 7, 8, 9]
    assert tracked[0] == full_output()  # kept whole
    assert tracked[1] == {"maskmem_features": 2, "maskmem_pos_enc": 3, "object_pointer": 4}  # mask logits: keep_masks only
    assert tracked[9] == full_output()  # memory, pointer and (kept) mask
    assert tracked[8] == {"maskmem_features": 2, "maskmem_pos_enc": 3, "object_pointer": 4}  # no mask logits
    assert tracked[7] == {"object_pointer": 4}  # read for its pointer only
    tracked = {5: full_output()}
    ledger().trim(tracked, [])
    assert tracked == {}


def test_record_and_readers_after_span_later_propagations():
    book = ledger()
    first = book.begin({1: {0: "prompted"}}, [(0, False), (2, True)])
    positions = [book.record(frame, False, first, 0, [1]) for frame in (0, 1, 2)]
    assert book.produced == {1: {1: positions[1], 2: positions[2]}}  # frame 0 reused its prompted output
    # the next step and the start of the backward pass of the same propagation read what step 1 left
    assert book.readers_after(positions[1]) == [(2, False), (1, False), (2, True)]
    second = book.begin({1: {0: "prompted", 5: "corrected"}}, [(5, False)])
    assert second == 1 and book.readers_after(positions[1])[-1] == (5, False)  # a later propagation reads it too
    book.pinned[1] = {3: "cleared"}
    third = book.begin({}, [(0, False)])
    assert book.segments[third]["pinned"] == {1: {3: "cleared"}} and book.segments[third]["pinned"][1] is not book.pinned[1]
    book.forget_object(1)
    assert book.pinned == {} and book.segments[third]["pinned"] == {1: {3: "cleared"}}
    book.clear()
    assert (book.segments, book.lineage, book.produced, book.pinned) == ([], [], {}, {})
