"""Video tracking: our video-object-tracking pipeline / TrackingSession vs Meta's ``SAM2VideoPredictor``.

Both read the same folder of JPEG frames (Meta's predictor only reads JPEG folders) and run the same random
SAM 2.1 hiera-tiny weights, whose object-score bias is raised so that objects are clearly visible (see
``VIDEO_VISIBLE_BIAS`` in conftest). Per-frame, per-object masks must agree to IoU >= 0.99.

Each side preprocesses the frames itself: Meta's ``init_state`` with its own frame loader, our sessions with
their default ``frame_resize="bicubic"``, which reproduces that loader bit for bit (PIL bicubic resize to
1024x1024, ``/ 255``, ImageNet mean/std; ``test_parity_frames.py`` checks the pixels). The comparison
therefore covers the whole path from the JPEG files to the masks. (transformers' ``Sam2VideoVideoProcessor``,
``frame_resize="bilinear"``, resizes bilinearly: up to 0.49 apart after normalisation on these frames, and
mask IoUs of 0.967-0.974 by the fifth tracked frame.)

Meta's predictor is built with ``add_all_frames_to_correct_as_cond=True``: a correction click on an
already tracked frame then becomes a conditioning frame, which is the behaviour our sessions implement
(with Meta's default, a re-propagation recomputes the corrected frame from memory and drops the click).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sam2_pipelines import testing

from .conftest import META_CONFIG
from .helpers import mask_iou

# each test tracks 8 frames of a 1024-input model two to four times per implementation: minutes on a small CPU
pytestmark = [pytest.mark.parity, pytest.mark.slow, pytest.mark.timeout(3600)]

MIN_IOU = 0.99
NUM_FRAMES, HEIGHT, WIDTH = 8, 120, 160


@pytest.fixture(scope="module")
def frame_folder(tmp_path_factory):
    """Eight JPEG frames (quality 100, no chroma subsampling) of a square moving right."""
    folder = tmp_path_factory.mktemp("frames")
    for index, frame in enumerate(testing.synthetic_frames(NUM_FRAMES, HEIGHT, WIDTH)):
        Image.fromarray(frame).save(folder / f"{index:05d}.jpg", quality=100, subsampling=0)
    return folder


@pytest.fixture(scope="module")
def meta_predictor(meta_video_checkpoint):
    """Meta's video predictor over the parity checkpoint, corrections kept as conditioning frames."""
    from sam2.build_sam import build_sam2_video_predictor

    return build_sam2_video_predictor(
        META_CONFIG,
        str(meta_video_checkpoint),
        device="cpu",
        hydra_overrides_extra=["++model.add_all_frames_to_correct_as_cond=true"],
    )


def meta_state(predictor, folder, tracker) -> dict:
    """Meta's ``init_state`` on ``folder``: Meta reads and preprocesses the JPEG frames itself.

    ``tracker`` (our pipeline) is only checked to use the same input size as Meta's model.
    """
    assert tracker.processor.target_size == predictor.image_size
    return predictor.init_state(str(folder))


def meta_propagate(predictor, state, reverse=False) -> dict[int, dict[int, np.ndarray]]:
    """``{frame: {obj_id: bool (H, W)}}`` from Meta's ``propagate_in_video``."""
    results = {}
    with torch.inference_mode():
        for frame, obj_ids, logits in predictor.propagate_in_video(state, reverse=reverse):
            results[frame] = {int(i): (logits[k, 0] > 0).numpy() for k, i in enumerate(obj_ids)}
    return results


def ours_by_frame(results) -> dict[int, dict[int, np.ndarray]]:
    """``{frame: {obj_id: bool (H, W)}}`` from our per-frame result dicts."""
    return {
        r["frame_idx"]: {int(i): np.asarray(r["masks"][k, 0]) for k, i in enumerate(r["object_ids"])} for r in results
    }


def assert_tracks_match(ours, theirs, what: str, check_coverage: bool = True):
    assert sorted(ours) == sorted(theirs), f"{what}: frames {sorted(ours)} vs Meta's {sorted(theirs)}"
    worst = []
    for frame in sorted(theirs):
        assert sorted(ours[frame]) == sorted(theirs[frame]), f"{what}: object ids on frame {frame}"
        for obj_id, mask in theirs[frame].items():
            assert ours[frame][obj_id].shape == (HEIGHT, WIDTH)
            worst.append((mask_iou(ours[frame][obj_id], mask), frame, obj_id))
    iou, frame, obj_id = min(worst)
    assert iou >= MIN_IOU, f"{what}: frame {frame}, object {obj_id}: IoU {iou:.4f} with Meta's mask"
    if not check_coverage:
        return
    # the comparison must be able to fail: some of Meta's masks are neither empty nor the whole frame
    coverage = [float(theirs[f][o].mean()) for f in theirs for o in theirs[f]]
    assert any(0.02 < c < 0.98 for c in coverage), f"{what}: Meta's masks are all empty or full: {coverage}"


def test_mask_then_mid_video_corrections(our_tracker, meta_predictor, frame_folder):
    """One object from a mask on frame 0, propagated; then correction clicks on tracked frames and re-propagation.

    Frame 4 gets a positive click and then, in a second call, a negative one (decoded with the mask logits of
    the first); frame 6 gets a click before anything is re-propagated (Meta then still reads frame 4's
    tracked memory). By then the session has dropped frame 1's memory and frame 4's mask logits, which the
    first correction reads: they are recomputed. (The correction clicks' own masks are compared without the
    coverage check; the re-propagated masks, which depend on the corrections' memories, must cover part of
    the frame.)
    """
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[45:75, 0:30] = True  # the moving square on frame 0
    corrections = [(4, [89.0, 60.0], 1), (4, [120.0, 30.0], 0), (6, [126.0, 60.0], 1)]
    state = meta_state(meta_predictor, frame_folder, our_tracker)
    meta_predictor.add_new_mask(state, frame_idx=0, obj_id=1, mask=mask)
    theirs_first = meta_propagate(meta_predictor, state)
    theirs_clicks = []
    for frame, point, label in corrections:
        with torch.inference_mode():
            _, obj_ids, logits = meta_predictor.add_new_points_or_box(
                state, frame_idx=frame, obj_id=1, points=np.array([point]), labels=np.array([label]), clear_old_points=False
            )
        theirs_clicks.append({frame: {1: (logits[list(obj_ids).index(1), 0] > 0).numpy()}})
    theirs_second = meta_propagate(meta_predictor, state)

    session = our_tracker.session(str(frame_folder))
    session.add_mask(0, 1, mask)
    ours_first = ours_by_frame(list(session.propagate()))
    ours_clicks = [ours_by_frame([session.add_points(frame, 1, [point], [label])]) for frame, point, label in corrections]
    ours_second = ours_by_frame(list(session.propagate()))

    assert_tracks_match(ours_first, theirs_first, "first propagation")
    for (frame, _, _), ours, theirs in zip(corrections, ours_clicks, theirs_clicks):
        assert_tracks_match(ours, theirs, f"correction on frame {frame}", check_coverage=False)
    assert_tracks_match(ours_second, theirs_second, "after the corrections")


def test_two_objects_box_and_mask(our_tracker, meta_predictor, frame_folder):
    """Object 1 from a box, object 2 from a mask, both on frame 0, tracked forward together."""
    box = [20.0, 20.0, 100.0, 90.0]
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[45:75, 0:30] = True  # the moving square on frame 0
    state = meta_state(meta_predictor, frame_folder, our_tracker)
    meta_predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1, box=np.array(box))
    meta_predictor.add_new_mask(state, frame_idx=0, obj_id=2, mask=mask)
    theirs = meta_propagate(meta_predictor, state)

    prompts = [{"frame": 0, "obj_id": 1, "box": box}, {"frame": 0, "obj_id": 2, "mask": mask}]
    ours = ours_by_frame(our_tracker(str(frame_folder), prompts=prompts, direction="forward"))
    assert_tracks_match(ours, theirs, "box + mask")


def test_reverse_propagation(our_tracker, meta_predictor, frame_folder):
    """A click on the last frame, propagated backward to frame 0."""
    click = np.array([[130.0, 60.0]])
    state = meta_state(meta_predictor, frame_folder, our_tracker)
    meta_predictor.add_new_points_or_box(state, frame_idx=NUM_FRAMES - 1, obj_id=3, points=click, labels=np.array([1]))
    theirs = meta_propagate(meta_predictor, state, reverse=True)

    prompts = [{"frame": NUM_FRAMES - 1, "obj_id": 3, "points": click.tolist(), "labels": [1]}]
    ours = ours_by_frame(our_tracker(str(frame_folder), prompts=prompts, direction="backward"))
    assert len(theirs) == NUM_FRAMES
    assert_tracks_match(ours, theirs, "backward")


def meta_calls(predictor, state, calls) -> list:
    """Run ``calls`` on Meta's predictor; returns one ``{frame: {obj_id: mask}}`` per call."""
    results = []
    for call in calls:
        kind = call[0]
        with torch.inference_mode():
            if kind == "propagate":
                _, reverse, start, count = call
                frames = {}
                for frame, obj_ids, logits in predictor.propagate_in_video(
                    state, start_frame_idx=start, max_frame_num_to_track=count - 1, reverse=reverse
                ):
                    frames[frame] = {int(i): (logits[k, 0] > 0).numpy() for k, i in enumerate(obj_ids)}
                results.append(frames)
            elif kind == "click":
                _, frame, obj_id, point, label = call
                _, obj_ids, logits = predictor.add_new_points_or_box(
                    state, frame_idx=frame, obj_id=obj_id, points=np.array([point]), labels=np.array([label]), clear_old_points=False
                )
                results.append({frame: {obj_id: (logits[list(obj_ids).index(obj_id), 0] > 0).numpy()}})
            elif kind == "mask":
                _, frame, obj_id, mask = call
                predictor.add_new_mask(state, frame_idx=frame, obj_id=obj_id, mask=mask)
                results.append(None)
            elif kind == "clear":
                predictor.clear_all_prompts_in_frame(state, call[1], call[2], need_output=False)
                results.append(None)
            else:  # remove
                predictor.remove_object(state, call[1])
                results.append(None)
    return results


def our_calls(session, calls) -> list:
    """The same ``calls`` on one of our sessions."""
    results = []
    for call in calls:
        kind = call[0]
        if kind == "propagate":
            _, reverse, start, count = call
            direction = "backward" if reverse else "forward"
            results.append(ours_by_frame(list(session.propagate(direction=direction, start_frame=start, max_frames=count))))
        elif kind == "click":
            _, frame, obj_id, point, label = call
            results.append(ours_by_frame([session.add_points(frame, obj_id, [point], [label])]))
        elif kind == "mask":
            session.add_mask(call[1], call[2], call[3])
            results.append(None)
        elif kind == "clear":
            session.clear_prompts(call[1], call[2])
            results.append(None)
        else:
            session.remove_object(call[1])
            results.append(None)
    return results


def assert_calls_match(ours, theirs, calls, what):
    propagated = []
    for index, (call, mine, reference) in enumerate(zip(calls, ours, theirs)):
        if reference is None:
            continue
        name = f"{what}, call {index} {call[:2] if call[0] == 'propagate' else call[:3]}"
        assert_tracks_match(mine, reference, name, check_coverage=False)
        if call[0] == "propagate":
            propagated += [float(m.mean()) for masks in reference.values() for m in masks.values()]
    assert any(0.02 < c < 0.98 for c in propagated), f"{what}: Meta's tracked masks are all empty or full: {propagated}"


def square_mask(frame: int) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    left = int((WIDTH - 30) * frame / (NUM_FRAMES - 1))
    mask[45:75, left : left + 30] = True  # the moving square on that frame
    return mask


def test_correction_after_a_partial_repropagation(our_tracker, meta_predictor, frame_folder):
    """Prompt frame 0, propagate everything, re-propagate frames 5-7 only, then correct frame 2 (tracked only by
    the first call) and re-propagate: every call's masks equal Meta's. The correction reads frame 2's mask logits
    and its neighbours' memories from the first propagation, which the session dropped and recomputes."""
    calls = [
        ("mask", 0, 1, square_mask(0)),
        ("propagate", False, 0, NUM_FRAMES),
        ("propagate", False, 5, 3),
        ("click", 2, 1, [40.0, 100.0], 0),
        ("propagate", False, 0, NUM_FRAMES),
    ]
    theirs = meta_calls(meta_predictor, meta_state(meta_predictor, frame_folder, our_tracker), calls)
    ours = our_calls(our_tracker.session(str(frame_folder)), calls)
    assert_calls_match(ours, theirs, calls, "partial re-propagation")


def test_cleared_prompts(our_tracker, meta_predictor, frame_folder):
    """Meta's ``clear_all_prompts_in_frame``: the cleared frame's output is read as a tracked output, and a new
    click there segments from the click alone."""
    calls = [
        ("mask", 0, 1, square_mask(0)),
        ("mask", 4, 1, square_mask(4)),
        ("propagate", False, 0, NUM_FRAMES),
        ("clear", 4, 1),
        ("propagate", False, 5, 3),
        ("click", 4, 1, [70.0, 60.0], 1),
        ("propagate", False, 3, 3),
    ]
    theirs = meta_calls(meta_predictor, meta_state(meta_predictor, frame_folder, our_tracker), calls)
    ours = our_calls(our_tracker.session(str(frame_folder)), calls)
    assert_calls_match(ours, theirs, calls, "cleared prompts")


def random_calls(seed: int, length: int = 6) -> list:
    """A random call sequence: a mask prompt on a random frame, then propagations (direction, start, length),
    correction clicks on tracked frames, a second object and, sometimes, its removal.

    A propagation starts where every object has a prompted frame at or behind the start (in its direction):
    otherwise Meta's predictor, on a CPU in float32, fails on its first step (no object pointer to read, so its
    memory is all bfloat16 and meets float32 weights); our sessions track such starts too. Backward
    propagations start after frame 0: Meta's ``propagate_in_video(reverse=True)`` from frame 0 tracks nothing,
    ``propagate(direction="backward", start_frame=0)`` tracks frame 0.
    """
    rng = np.random.default_rng(seed)
    first = int(rng.integers(NUM_FRAMES))
    calls = [("mask", first, 1, square_mask(first))]
    prompted, tracked = {1: {first}}, set()
    for _ in range(length):
        choice = rng.choice(["propagate", "propagate", "click", "object", "remove"])
        if choice == "click" and tracked:
            frame, obj_id = int(rng.choice(sorted(tracked))), int(rng.choice(sorted(prompted)))
            point = [float(rng.integers(WIDTH)), float(rng.integers(HEIGHT))]
            calls.append(("click", frame, obj_id, point, int(rng.integers(2))))
            prompted[obj_id].add(frame)
        elif choice == "object" and len(prompted) < 3:
            frame, obj_id = int(rng.integers(NUM_FRAMES)), max(prompted) + 1
            calls.append(("mask", frame, obj_id, square_mask(frame)))
            prompted[obj_id] = {frame}
        elif choice == "remove" and len(prompted) > 1:
            obj_id = max(prompted)
            calls.append(("remove", obj_id))
            del prompted[obj_id]
        else:
            latest_reverse_start = min(max(frames) for frames in prompted.values())
            reverse = bool(rng.integers(2)) and latest_reverse_start > 0  # Meta does not track backward from frame 0
            if reverse:
                start = int(rng.integers(1, latest_reverse_start + 1))
            else:
                start = int(rng.integers(max(min(frames) for frames in prompted.values()), NUM_FRAMES))
            count = int(rng.integers(1, NUM_FRAMES + 1))
            calls.append(("propagate", reverse, start, count))
            tracked |= set(range(start, max(start - count, -1), -1) if reverse else range(start, min(start + count, NUM_FRAMES)))
    if calls[-1][0] != "propagate":
        start = max(min(frames) for frames in prompted.values())
        calls.append(("propagate", False, start, NUM_FRAMES))
    return calls


@pytest.mark.parametrize("seed", [47, 67])
def test_random_call_sequences(our_tracker, meta_predictor, frame_folder, seed):
    """Randomly generated sequences of prompts, corrections, propagations and removals give Meta's masks."""
    calls = random_calls(seed)
    theirs = meta_calls(meta_predictor, meta_state(meta_predictor, frame_folder, our_tracker), calls)
    ours = our_calls(our_tracker.session(str(frame_folder)), calls)
    assert_calls_match(ours, theirs, calls, f"sequence {seed}")
