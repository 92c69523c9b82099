"""The demo with several visitors: each has their own sessions, a full demo says so, nothing is left behind.

The handlers are called as the app calls them (``sam2_pipelines.demo.video_tab``), each visitor with their own id
(Gradio's session hash in the app), on tiny random checkpoints and real video files; the browser tests in
``test_demo.py`` do the same through the page.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from sam2_pipelines import testing
from sam2_pipelines.demo import video_tab
from sam2_pipelines.demo.app import MODES, DemoModels, automatic_masks, segment_overlay
from sam2_pipelines.demo.state import ImageSessions
from sam2_pipelines.demo.visitors import FOLDER_PREFIX, KEEP_VIDEOS, UPLOAD_FIRST, Visitors, expired_by_others, expired_idle


@pytest.fixture
def temp_root(tmp_path, monkeypatch) -> Path:
    """The system's temporary folder, for this test only: the demo's output folders can be counted there."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> str:
    return str(testing.synthetic_video(tmp_path_factory.mktemp("visitors") / "clip.mp4"))


@pytest.fixture(scope="module")
def models(tiny_image_model_dir, tiny_video_model_dir):
    models = DemoModels(tiny_image_model_dir, tiny_video_model_dir)
    yield models
    models.visitors.close()


def _status(field: str) -> int:
    """A number of this process's ``/proc/self/status`` (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


def threads() -> int:
    """Native threads of this process (decoder threads included, which Python's threading does not list)."""
    return _status("Threads")


def rss_mb() -> float:
    return _status("VmRSS") / 1024


def demo_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0].startswith(FOLDER_PREFIX))


def _error(call, *args):
    """The message of the ``gr.Error`` the handler raises."""
    import gradio as gr

    with pytest.raises(gr.Error) as caught:
        call(*args)
    return caught.value.message


def test_two_visitors_on_one_upload_have_their_own_sessions(models, video, tiny_video_model_dir, temp_root):
    """Identical uploads land on one path; each visitor's export holds their own clicks and masks only."""
    from sam2_pipelines.demo.state import rle_result
    from sam2_pipelines.io.exports import json_ready

    clicks = {"a": (0, 1, 13.0, 48.0), "b": (3, 1, 100.0, 20.0)}
    for visitor in clicks:
        video_tab.upload_video(models, visitor, video)
    for visitor, (frame, obj, x, y) in clicks.items():
        video_tab.click_frame(models, visitor, frame, obj, MODES[0], x, y)
    assert models.visitors.video("a") is not models.visitors.video("b")
    for visitor, (frame, obj, x, y) in clicks.items():
        video_tab.propagate(models, visitor, "both", 0)
        document = json.loads(Path(video_tab.export(models, visitor, "coco")).read_text())
        assert [(c["frame"], c["point"]) for c in document["clicks"]] == [(frame, [x, y])]
        expected = {}
        with models.tracker().session(video) as session:  # the same steps on a plain session
            session.add_points(frame, obj, [[x, y]], [1])
            for r in session.propagate(direction="both", start_frame=frame, output="rle"):
                expected[r["frame_idx"]] = json.loads(json.dumps(json_ready(rle_result(r["frame_idx"], r["object_ids"], r["masks"], r["scores"]))))
        assert document["frames"] == [expected[i] for i in range(8)]
    a, b = (json.loads(Path(video_tab.export(models, v, "coco")).read_text())["frames"] for v in "ab")
    assert a != b  # different clicks, different masks: the comparison above could tell them apart
    for visitor in clicks:
        models.visitors.leave(visitor)


def test_a_fifth_visitor_expires_the_least_recent_one_with_a_clear_message(models, video, temp_root):
    visitors = [f"v{i}" for i in range(KEEP_VIDEOS + 1)]
    video_tab.upload_video(models, visitors[0], video)
    video_tab.click_frame(models, visitors[0], 0, 1, MODES[0], 13, 48)
    first = models.visitors.video(visitors[0])
    for visitor in visitors[1:]:
        video_tab.upload_video(models, visitor, video)
    assert models.visitors.open_videos == KEEP_VIDEOS
    expected = expired_by_others(KEEP_VIDEOS)
    assert expected.startswith("Your video session expired") and expected.endswith("Upload the video again.")
    # Every action of the first visitor says why, never "click at least one object" nor another visitor's state.
    assert _error(video_tab.propagate, models, visitors[0], "both", 0) == expected
    assert _error(video_tab.click_frame, models, visitors[0], 0, 1, MODES[0], 13, 48) == expected
    assert _error(video_tab.export, models, visitors[0], "coco") == expected
    assert _error(video_tab.show_frame, models, visitors[0], 2) == expected
    assert first.closed_because == expected and first._frames._stream is None  # its decoder was closed now
    # The others work; the first visitor's new upload is theirs again (and expires the least recent other).
    video_tab.click_frame(models, visitors[1], 0, 1, MODES[0], 13, 48)
    assert video_tab.propagate(models, visitors[1], "both", 0)[2] == "tracked 8 frames from frame 0 (both)"
    video_tab.upload_video(models, visitors[0], video)
    assert video_tab.click_frame(models, visitors[0], 0, 1, MODES[0], 13, 48)[1] == "1"
    assert _error(video_tab.click_frame, models, visitors[2], 0, 1, MODES[0], 13, 48) == expected  # v1 was used since
    for visitor in visitors:
        models.visitors.leave(visitor)
    assert models.visitors.open_videos == 0


def test_closing_a_session_ends_its_decoder_threads_and_deletes_its_files(models, video, temp_root):
    """Leaving (or expiring) closes the tracking session's decoders now, not when the garbage collector runs,
    and deletes the visitor's folder; each new output replaces the visitor's previous one of its kind."""
    import gc

    def visit(visitor: str, rounds: int) -> int:
        """Upload, click, propagate and export ``rounds`` times, run automatic masks; the threads once uploaded."""
        video_tab.upload_video(models, visitor, video)
        opened = threads()
        video_tab.click_frame(models, visitor, 0, 1, MODES[0], 13, 48)
        for _ in range(rounds):
            video_tab.propagate(models, visitor, "both", 0)
            video_tab.export(models, visitor, "coco")
            video_tab.export(models, visitor, "davis")
        automatic_masks(models, testing.synthetic_image(), 4, 0.0, 0.0, visitor=visitor)
        return opened

    visit("warm-up", 1)  # what the first run starts once per process (torch's thread pool)
    models.visitors.leave("warm-up")
    before = threads()
    gc.disable()  # what is freed must be freed by close(), not by a collection
    try:
        opened = visit("a", 3)
        names = sorted(p.name for p in demo_files(temp_root))
        assert names == ["clip_davis.zip", "masks.json", "overlay.mp4"]  # one file per kind, however many runs
        work = models.visitors.video("a")
        models.visitors.leave("a")
        assert demo_files(temp_root) == [] and not list(temp_root.glob(FOLDER_PREFIX + "*"))
        assert work.closed_because is not None
        assert opened > before, "the video's decoders started no thread: this test could not see them end"
        assert threads() == before
    finally:
        gc.enable()


def test_an_idle_visitor_expires_at_the_next_visitors_action(tiny_video_model_dir, video, temp_root):
    models = DemoModels(tiny_video_model_dir)
    models.visitors = Visitors(models.tracker, idle_seconds=0.05)
    video_tab.upload_video(models, "idle", video)
    models.visitors.output("idle", "export", "x.json").write_text("{}")
    time.sleep(0.1)
    video_tab.upload_video(models, "busy", video)
    assert models.visitors.open_videos == 1 and len(demo_files(temp_root)) == 0
    assert _error(video_tab.propagate, models, "idle", "both", 0) == expired_idle(0.05)
    assert expired_idle(3600) == "Your video session expired after 60 minutes without use. Upload the video again."
    models.visitors.close()


def test_bad_uploads_and_bad_actions_are_gr_errors_with_their_message(models, video, tmp_path, temp_root):
    """A file that is not a video, an empty or a truncated mp4: the visitor reads why (and keeps their session)."""
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(Path(video).read_bytes()[:600])
    assert _error(video_tab.propagate, models, "bad", "both", 0) == UPLOAD_FIRST
    assert video_tab.show_frame(models, "bad", 0) is None  # the frame slider before any upload
    video_tab.upload_video(models, "bad", video)
    for path, words in ((text, "could not"), (empty, "is empty (0 bytes)"), (truncated, "")):
        message = _error(video_tab.upload_video, models, "bad", str(path))
        assert str(path) in message and words in message and message != "Error"
    assert video_tab.click_frame(models, "bad", 0, 1, MODES[0], 13, 48)[1] == "1"  # the earlier upload is kept
    assert _error(video_tab.show_frame, models, "bad", 99) == "frame 99 is out of range: the video has 8 frames (0..7)"
    assert _error(video_tab.remove_object, models, "bad", 5, 0) == "there is no object 5; the objects are [1]"
    assert _error(automatic_masks, models, None, 4, 0.0, 0.0) == "Upload an image first."
    models.visitors.leave("bad")


def test_image_sessions_hold_no_visitor_state(models):
    """Two visitors on one picture share its encoding only: each sees the masks of their own prompts, and a
    session dropped to make room for other pictures still answers a visitor whose call holds it."""
    image = testing.synthetic_image()
    first = {"points": [[48, 48]], "labels": [1]}
    second = {"points": [[100, 90]], "labels": [1]}
    shown_first = segment_overlay(models, image, first)
    shown_second = segment_overlay(models, image, second)
    assert np.array_equal(segment_overlay(models, image, first), shown_first)  # the other visitor's click changed nothing
    assert not np.array_equal(shown_first, shown_second)
    session = models.images.get(image)
    assert set(vars(session)) == {"_closed", "_epoch", "_lock", "_generator", "_image", "_encoded"}  # no prompt, no visitor
    sessions = ImageSessions(models.generator)
    held = sessions.get(image)
    for shift in range(1, 6):
        sessions.get(np.roll(image, shift, axis=1))
    assert len(sessions) == 4 and not held.closed
    assert held.predict(points=[[[48, 48]]], labels=[[1]])["masks"].shape[0] == 1


def _client(models, name: str, video: str, image: np.ndarray, requests: int, seed: int, errors: list) -> None:
    """One simulated visitor: uploads, clicks, propagates, exports, automatic masks, sometimes leaves."""
    import gradio as gr

    rng = random.Random(seed)
    done = 0
    while done < requests:
        try:
            video_tab.upload_video(models, name, video)
            video_tab.click_frame(models, name, rng.randrange(8), rng.randrange(1, 3), MODES[0], rng.uniform(0, 127), rng.uniform(0, 95))
            video_tab.propagate(models, name, "both", 0)
            video_tab.export(models, name, rng.choice(["coco", "davis"]))
            automatic_masks(models, image, 4, 0.0, 0.0, visitor=name)
            done += 5
        except gr.Error as error:  # another client's upload expired this one's session: upload again
            if not error.message.startswith("Your video session expired"):
                errors.append(error.message)
                return
            done += 1
        if rng.random() < 0.3:
            models.visitors.leave(name)


@pytest.mark.slow
def test_soak_several_clients_leave_threads_files_and_memory_flat(tiny_image_model_dir, tiny_video_model_dir, video, temp_root):
    """Six clients (more than the video sessions kept) send about 700 requests in four rounds on a fixed pool of
    worker threads (as Gradio serves events): after the warm-up round the process's threads stay where they were,
    the demo's temporary files stay within one file per kind per client while they work and are all gone once they
    leave, Python objects stay flat, and RSS stays within what the first rounds reached (a leak of a fraction of a
    MB per request would pass it within these rounds). docs/demo.md records the numbers."""
    import gc
    from concurrent.futures import ThreadPoolExecutor

    models = DemoModels(tiny_image_model_dir, tiny_video_model_dir)
    image = testing.synthetic_image()
    clients = [f"client{i}" for i in range(6)]

    def round_of(pool, requests: int, seed: int) -> dict:
        errors: list = []
        for running in [pool.submit(_client, models, name, video, image, requests, seed * 100 + index, errors) for index, name in enumerate(clients)]:
            running.result()
        working = len(demo_files(temp_root))
        for name in clients:
            models.visitors.leave(name)
        assert errors == []
        gc.collect()
        return {"threads": threads(), "files while working": working, "files after leaving": len(demo_files(temp_root)),
                "rss_mb": round(rss_mb()), "objects": len(gc.get_objects())}

    started = time.monotonic()
    with ThreadPoolExecutor(len(clients), thread_name_prefix="client") as pool:
        rounds = [round_of(pool, 15, 0)]  # warm-up: model caches, allocator pools, first-decode setup
        rounds += [round_of(pool, 35, seed) for seed in (1, 2, 3)]
    print(f"\nsoak: 6 clients, 6 x (15 + 3 x 35) requests in {time.monotonic() - started:.0f} s; after each round: {rounds}")
    warm = rounds[0]
    for measured in rounds[1:]:
        assert measured["threads"] <= warm["threads"]
        assert measured["files after leaving"] == 0 and 0 < measured["files while working"] <= 3 * len(clients)
        assert measured["objects"] - warm["objects"] < 5000
    assert rounds[-1]["rss_mb"] <= max(r["rss_mb"] for r in rounds[:2]) + 64


def test_generated_visitor_flows(models, video, temp_root):
    """Generated interleavings of six visitors' uploads, clicks, propagations, exports and departures (hypothesis,
    fixed seed): a visitor's export holds exactly their own clicks since their latest upload, or the visitor reads
    why not (upload first, click first, session expired); at most the kept sessions are open; once everyone has
    left, no demo file is left behind."""
    import gradio as gr
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    actions = st.lists(
        st.tuples(st.integers(0, 5), st.sampled_from(["upload", "click", "click", "propagate", "export", "leave"]), st.integers(0, 7)),
        min_size=4, max_size=12,
    )
    known = {UPLOAD_FIRST, expired_by_others(KEEP_VIDEOS)}

    @settings(max_examples=40, derandomize=True, deadline=None, phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))
    @given(steps=actions)
    def flows(steps):
        clicks: dict[str, list] = {}  # visitor -> clicks since their latest upload (None: expired or none yet)
        try:
            for who, action, frame in steps:
                visitor = f"fuzz{who}"
                try:
                    if action == "upload":
                        video_tab.upload_video(models, visitor, video)
                        clicks[visitor] = []
                    elif action == "click":
                        x, y = 10.0 + 9 * frame, 20.0 + 5 * frame
                        video_tab.click_frame(models, visitor, frame, 1, MODES[0], x, y)
                        clicks[visitor].append((frame, [x, y]))
                    elif action == "propagate":
                        video_tab.propagate(models, visitor, "both", frame)
                    elif action == "export":
                        document = json.loads(Path(video_tab.export(models, visitor, "coco")).read_text())
                        assert [(c["frame"], c["point"]) for c in document["clicks"]] == clicks[visitor]
                    else:
                        models.visitors.leave(visitor)
                        clicks.pop(visitor, None)
                except gr.Error as error:
                    message = error.message
                    assert message in known or message.startswith(("Nothing to export yet", "Click at least", "click at least")), message
                    if message == expired_by_others(KEEP_VIDEOS):
                        clicks.pop(visitor, None)
                assert models.visitors.open_videos <= KEEP_VIDEOS
        finally:
            for who in range(6):
                models.visitors.leave(f"fuzz{who}")
        assert demo_files(temp_root) == []

    flows()
