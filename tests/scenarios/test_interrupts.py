"""Session calls are all-or-nothing: an exception anywhere inside one (Ctrl-C, out of memory) leaves the session
as it was, so retrying the call gives exactly what one uninterrupted call gives.

Faults are injected with forward pre-hooks on the model's own modules (the image encoder, memory attention,
mask decoder and memory encoder), raising at the first, middle or last of their calls inside the call.
"""

from __future__ import annotations

import numpy as np
import pytest

from sam2_pipelines import testing

PARTS = ("vision_encoder", "memory_attention", "mask_decoder", "memory_encoder")


def Fault(model, when: int | None = None, error=KeyboardInterrupt):
    """Count the calls of the model's parts (:data:`PARTS`); raise ``error`` at the ``when``-th (from 1), once."""
    return testing.ModelFault(model, when, error, parts=PARTS)


def assert_same(results, expected):
    assert [r["frame_idx"] for r in results] == [r["frame_idx"] for r in expected]
    for a, b in zip(results, expected):
        assert a["object_ids"] == b["object_ids"]
        assert np.array_equal(a["masks"], b["masks"])
        np.testing.assert_array_equal(a["scores"], b["scores"])


def clear_and_click(session) -> list:
    session.clear_prompts(2, 2)
    return [session.add_points(2, 2, [[30, 30]], [1])]


def scenario(tracker, clip, fault_step: int | None = None, when: int = 1):
    """Click, propagate, correct, add an object, clear and click again, propagate both ways. Step ``fault_step``
    is interrupted once (at the ``when``-th call of a model part inside it) and retried. Returns the results and
    the number of model-part calls of each step."""
    session = tracker.session(clip)
    steps = [
        lambda: [session.add_points(0, 1, [[40, 48]], [1])],
        lambda: list(session.propagate(max_frames=5)),
        lambda: [session.add_points(3, 1, [[60, 50]], [0])],
        lambda: [session.add_box(2, 2, [10, 10, 50, 50])],
        lambda: clear_and_click(session),
        lambda: list(session.propagate(direction="both", start_frame=3)),
    ]
    return testing.run_with_fault(tracker.model, steps, fault_step, when, parts=PARTS)


@pytest.fixture(scope="module")
def clean(tracker):
    return scenario(tracker, list(testing.synthetic_frames()))


@pytest.mark.parametrize("fault_step", [0, 2, 3, 4])
@pytest.mark.parametrize("position", ["first", "middle", "last"])
def test_an_interrupted_prompt_call_retried_equals_one_clean_call(tracker, frames, clean, fault_step, position):
    expected, calls = clean
    when = {"first": 1, "middle": (calls[fault_step] + 1) // 2, "last": calls[fault_step]}[position]
    results, _ = scenario(tracker, list(frames), fault_step, when)
    assert_same(results, expected)


def test_an_interrupted_first_click_leaves_no_object(tracker, frames):
    session = tracker.session(list(frames))
    fault = Fault(tracker.model, 1)
    with pytest.raises(KeyboardInterrupt):
        session.add_points(0, 1, [[40, 48]], [1])
    fault.remove()
    assert session.object_ids == [] and session.prompted_frames == {}
    with pytest.raises(ValueError, match="no objects to track"):
        session.propagate()
    session.add_points(0, 1, [[40, 48]], [1])
    assert session.prompted_frames == {1: [0]}


def test_a_retried_click_is_stored_once(tracker, frames, clean):
    """A click interrupted after it was stored and retried: the object has one click, not two."""
    session = tracker.session(list(frames))
    first = session.add_points(0, 1, [[40, 48]], [1])
    fault = Fault(tracker.model, 1, error=MemoryError)
    with pytest.raises(MemoryError):
        session.add_points(0, 1, [[60, 50]], [0])
    fault.remove()
    once = tracker.session(list(frames))
    once.add_points(0, 1, [[40, 48]], [1])
    assert_same([session.add_points(0, 1, [[60, 50]], [0])], [once.add_points(0, 1, [[60, 50]], [0])])
    assert np.array_equal(first["masks"], clean[0][0]["masks"])


@pytest.mark.parametrize("position", ["first", "last"])
def test_an_interrupted_push_frame_is_not_counted(tracker, frames, position):
    """Pushing the same frame again after an interrupted push gives the next index and the clean results."""
    clean = tracker.session()
    expected = [clean.push_frame(frames[0], prompts=[{"obj_id": 1, "points": [[40, 48]], "labels": [1]}])]
    expected += [clean.push_frame(frame) for frame in frames[1:2]]
    counter = Fault(tracker.model)
    expected.append(clean.push_frame(frames[2]))
    counter.remove()
    expected += [clean.push_frame(frame) for frame in frames[3:5]]
    when = 1 if position == "first" else counter.calls
    stream = tracker.session()
    got = [stream.push_frame(frames[0], prompts=[{"obj_id": 1, "points": [[40, 48]], "labels": [1]}])]
    for index, frame in enumerate(frames[1:5], start=1):
        if index == 2:
            fault = Fault(tracker.model, when)
            with pytest.raises(KeyboardInterrupt):
                stream.push_frame(frame)
            fault.remove()
            assert fault.fired and stream.num_frames == 2
        got.append(stream.push_frame(frame))
    assert [r["frame_idx"] for r in got] == [0, 1, 2, 3, 4]
    assert_same(got, expected)


def test_an_interrupted_first_push_leaves_an_empty_stream(tracker, frames):
    stream = tracker.session()
    fault = Fault(tracker.model, 1)
    with pytest.raises(KeyboardInterrupt):
        stream.push_frame(frames[0], prompts=[{"obj_id": 1, "points": [[40, 48]], "labels": [1]}])
    fault.remove()
    assert (stream.num_frames, stream.height, stream.object_ids) == (0, None, [])
    assert stream.push_frame(frames[0], prompts=[{"obj_id": 1, "points": [[40, 48]], "labels": [1]}])["frame_idx"] == 0


def test_propagation_and_clicks_from_two_threads(tracker):
    """A propagation consumed in one thread while another clicks: the click is applied between frames (the
    propagation then says it is stale), nothing fails inside the model."""
    import threading

    session = tracker.session(list(testing.synthetic_frames(8)))
    session.add_points(0, 1, [[40, 48]], [1])
    outcome = []

    def propagate():
        try:
            outcome.extend(session.propagate())
        except ValueError as error:
            outcome.append(error)

    thread = threading.Thread(target=propagate)
    thread.start()
    session.add_points(0, 2, [[20, 20]], [1])
    thread.join()
    assert all(isinstance(item, dict) for item in outcome[:-1])
    assert isinstance(outcome[-1], dict) or "stale" in str(outcome[-1])
    assert session.object_ids == [1, 2]
