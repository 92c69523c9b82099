"""Freed memory kept for reuse while tracking: no page faults for memory freed and asked for again, and the
allocator back to normal afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sam2_pipelines import testing

from sam2_pipelines.kernels import allocator

pytestmark = pytest.mark.skipif(not allocator.available(), reason="glibc's allocator only")

SCRIPT = """
import resource, torch
from sam2_pipelines.kernels import allocator

SIZE = 64 << 20  # bytes: above glibc's largest mmap threshold, so normally a fresh mapping each time

def faults_of_a_reallocation():
    # page faults of allocating and filling a large tensor right after the same one was freed
    torch.ones(SIZE // 4)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(SIZE // 4)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

plain = faults_of_a_reallocation()
with allocator.keep_freed_memory():
    kept = [faults_of_a_reallocation() for _ in range(4)][-1]  # the first ones may grow the heap
after = faults_of_a_reallocation()
print(SIZE // resource.getpagesize(), plain, kept, after, allocator.active())
"""


def test_freed_memory_is_reused_only_while_kept():
    """In a fresh process (the heap of this one depends on the tests before): a large block freed and asked for
    again faults every page in again, but not while freed memory is kept, and again after."""
    root = Path(__file__).resolve().parents[2]
    completed = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(root)}, timeout=300)
    assert completed.returncode == 0, completed.stderr
    pages, plain, kept, after, active = completed.stdout.split()
    pages, plain, kept, after = int(pages), int(plain), int(kept), int(after)
    assert plain > pages // 2 and after > pages // 2, completed.stdout  # returned to the system, faulted in again
    assert kept < pages // 20, completed.stdout
    assert active == "False"


def test_uses_nest_and_the_outermost_ends_it():
    with allocator.keep_freed_memory():
        with allocator.keep_freed_memory(release=False):
            assert allocator.active()
        assert allocator.active()
    assert not allocator.active()


def test_an_error_inside_still_ends_it():
    with pytest.raises(RuntimeError):
        with allocator.keep_freed_memory():
            raise RuntimeError("boom")
    assert not allocator.active()


def test_tracking_keeps_freed_memory_while_a_frame_runs_and_releases_it_at_the_end(tracker, monkeypatch):
    seen, released = [], []
    hook = tracker.model.vision_encoder.register_forward_pre_hook(lambda *_: seen.append(allocator.active()))  # a frame's first model step
    try:
        real_release = allocator.release
        monkeypatch.setattr(allocator, "release", lambda: released.append(True) or real_release())
        frames = testing.synthetic_frames(3, 64, 64)
        with tracker.session(frames) as session:
            session.add_points(0, 1, [[20, 20]], [1])
            seen.clear()
            for _ in session.propagate():
                assert not allocator.active()  # not while the caller has the frame
            assert seen == [True, True] and released == [True]  # frames 1 and 2 (frame 0's features are reused)
            iterator = session.propagate()
            next(iterator)
            iterator.close()  # an iterator given up on releases it too
            assert released == [True, True]
        assert released == [True, True, True]  # and closing the session
        with tracker.session() as stream:
            stream.push_frame(frames[0], prompts=[{"obj_id": 1, "points": [[20, 20]], "labels": [1]}])
            assert seen[-1] is True and not allocator.active() and len(released) == 3  # kept for the next frame
        assert len(released) == 4  # until the stream is closed
    finally:
        hook.remove()


ARENAS_SCRIPT = """
import ctypes, sys, threading
from sam2_pipelines.kernels import allocator

if sys.argv[1] == "one":
    allocator.one_arena()
    allocator.one_arena()  # idempotent
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
barrier = threading.Barrier(4)

def work():
    block = libc.malloc(1 << 20)
    barrier.wait()  # all alive at once, so none takes over another's arena
    libc.free(block)

threads = [threading.Thread(target=work) for _ in range(3)]
for thread in threads:
    thread.start()
barrier.wait()
for thread in threads:
    thread.join()
libc.malloc_stats()  # to stderr: one "Arena N:" block per arena
"""


@pytest.mark.parametrize("mode", ["default", "one"])
def test_one_arena_keeps_new_threads_in_the_main_arena(mode):
    """In a fresh process: threads started after ``one_arena()`` allocate from glibc's main arena; without it
    each gets an arena of its own."""
    root = Path(__file__).resolve().parents[2]
    completed = subprocess.run([sys.executable, "-c", ARENAS_SCRIPT, mode], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(root)}, timeout=300)
    assert completed.returncode == 0, completed.stderr
    arenas = completed.stderr.count("Arena ")
    if mode == "one":
        assert arenas == 1, completed.stderr
    else:
        assert arenas >= 4, completed.stderr


def test_a_video_pipeline_keeps_its_threads_in_one_arena(tracker):
    assert allocator.one_arena_set()  # set when the pipeline was made (see allocator.one_arena)
