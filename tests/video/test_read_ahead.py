"""Bounded read-ahead: same items as loading in place, never two loads at once, errors where the item is taken."""

from __future__ import annotations

import threading
import time

import pytest

from sam2_pipelines.video.read_ahead import ReadAhead


class Loader:
    def __init__(self):
        self.calls, self.active, self.overlaps = [], 0, 0
        self.lock = threading.Lock()

    def __call__(self, index):
        with self.lock:
            self.active += 1
            self.overlaps += self.active > 1
        time.sleep(0.01)
        with self.lock:
            self.active -= 1
            self.calls.append(index)
        if index == 13:
            raise ValueError("frame 13 is broken")
        return index * 10


def test_items_come_from_the_worker_and_match():
    loader = Loader()
    reader = ReadAhead(loader, depth=3)
    results = []
    for index in range(10):
        reader.want(range(index, index + 3))
        results.append(reader.get(index))
        assert len(reader.pending) <= 3
    reader.close()
    assert results == [i * 10 for i in range(10)]
    assert len(loader.calls) == len(set(loader.calls))  # each item read once
    assert set(range(10)) <= set(loader.calls) <= set(range(12))  # plus, maybe, the look-ahead past the end
    assert loader.overlaps == 0


def test_items_not_asked_for_are_loaded_in_place_and_stale_ones_dropped():
    loader = Loader()
    reader = ReadAhead(loader, depth=2)
    reader.want([5, 6])
    assert reader.get(2) == 20
    reader.want([7])  # 5 and 6 are no longer wanted
    assert set(reader.pending) == {7}
    reader.close()


def test_errors_surface_when_the_item_is_taken():
    reader = ReadAhead(Loader(), depth=2)
    reader.want([12, 13])
    assert reader.get(12) == 120
    with pytest.raises(ValueError, match="frame 13 is broken"):
        reader.get(13)
    reader.close()


def test_depth_zero_loads_in_place():
    loader = Loader()
    reader = ReadAhead(loader, depth=0)
    reader.want([1, 2])
    assert reader.get(3) == 30 and loader.calls == [3]
    reader.close()
