"""Where video tracking spends its time: seconds per frame by stage, FLOPs and the FLOP floor, in steady state.

Tracks 1 or more objects (one positive click each on frame 0) through the first ``--frames`` frames of a
clip with this package's ``video-object-tracking`` session and prints, over the steady-state frames (those
tracked once the memory bank is full: after the first ``num_maskmem`` frames), per frame:

* decode + preprocess (``FrameFeed.load``: PyAV decoding, resize, normalisation);
* image encoder (``get_image_features``);
* memory attention (the shared-work attention of ``fast_memory``, or the model's module with ``--model-step``);
* decoder (prompt encoder + mask decoder, ``_single_frame_forward``);
* memory encoder;
* output (upsampling to the video and thresholding / RLE, ``TrackingSession._format``);
* the rest (memory gathering, bookkeeping);

with wall and CPU seconds, matrix FLOPs (attention included) and the FLOP floor: those FLOPs at this
machine's measured sgemm rate. ``--model-step`` runs transformers' own per-object step instead of the
shared-work step, for a before/after view in one run.

Usage::

    python benchmarks/video_profile.py --model /tmp/converted-video                 # bedroom.mp4, 16 frames, 1 object
    python benchmarks/video_profile.py --model DIR --objects 3 --clip 720p
    python benchmarks/video_profile.py --model DIR --model-step                     # transformers' step, for comparison
    python benchmarks/video_profile.py --model DIR --clip 720p --input jpg --timeline  # every frame by stage, from a JPEG folder

``--model`` is a converted video model directory (``video_benchmark.py --prepare DIR`` writes one); without
it the random reference model is built first (Meta's builder, seed 1, converted).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

from benchmarks.profiling import FlopCounter, StageTimer, build_reference_model, patched, sgemm_rate  # noqa: E402
from benchmarks.reference_benchmark import cpu_seconds, print_table  # noqa: E402
from benchmarks.video_benchmark import write_jpgs  # noqa: E402

SAMPLE_VIDEO = ROOT / "media" / "bedroom.mp4"
#: One click per object, in bedroom.mp4's 960x540 pixels (scaled for other sizes).
CLICKS = [(210, 350), (600, 300), (800, 150)]


def build_model(directory: Path) -> str:
    return build_reference_model(directory, "video")


def clip_frames(clip: str, count: int):
    """The first ``count`` frames of bedroom.mp4, at its size (``bedroom``) or resized to 1280x720 (``720p``)."""
    import numpy as np
    from PIL import Image

    from sam2_pipelines.io.video import open_video

    source = open_video(str(SAMPLE_VIDEO))
    frames = [source[i] for i in range(min(count, len(source)))]
    source.close()
    if clip == "720p":
        frames = [np.asarray(Image.fromarray(f).resize((1280, 720), Image.BICUBIC)) for f in frames]
    return frames


def write_mp4(frames, path: Path) -> str:
    from sam2_pipelines.io.video import encode_h264

    encode_h264(frames, path, 30)
    return str(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="converted video model directory (default: build the random reference model)")
    parser.add_argument("--clip", choices=["bedroom", "720p"], default="bedroom")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--objects", type=int, default=1, choices=[1, 2, 3])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model-step", action="store_true", help="run transformers' per-object step (no shared work)")
    parser.add_argument("--timeline", action="store_true", help="also print every frame's seconds by stage (the first frames included)")
    parser.add_argument("--input", choices=["mp4", "jpg"], default="mp4", help="give the session an mp4 (default) or a folder of JPEG frames")
    args = parser.parse_args(argv)

    import torch

    import sam2_pipelines
    from sam2_pipelines.kernels import fast_memory
    from sam2_pipelines.video import frame_feed
    from sam2_pipelines.video import session as session_module
    from sam2_pipelines.kernels import tracking_step

    torch.set_num_threads(args.threads)
    rate = sgemm_rate(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or build_model(Path(tmp))
        frames = clip_frames(args.clip, args.frames)
        video = write_jpgs(Path(tmp) / "frames", frames) if args.input == "jpg" else write_mp4(frames, Path(tmp) / f"{args.clip}.mp4")
        height, width = frames[0].shape[:2]
        del frames
        tracker = sam2_pipelines.pipeline("video-object-tracking", model=model_dir)
        model = tracker.model
        warmup = max(model.num_maskmem, 1)
        counter = FlopCounter()
        timer = StageTimer(counter)
        stages = [
            (frame_feed.FrameFeed, "load", "decode + preprocess"),
            (model, "get_image_features", "image encoder"),
            (fast_memory, "condition", "memory attention"),
            (model.memory_attention, "forward", "memory attention"),
            (model, "_single_frame_forward", "decoder"),
            (tracking_step, "encode_memory", "memory encoder"),
            (model, "_encode_new_memory", "memory encoder"),
            (session_module.TrackingSession, "_format", "output (upsampling, threshold)"),
        ]
        per_frame = []
        with contextlib.ExitStack() as stack:
            for target, name, label in stages:
                stack.enter_context(patched(target, name, timer.wrap(label, getattr(target, name))))
            stack.enter_context(counter)
            session = tracker.session(video)
            session._stepper._fast_steps = session._stepper._fast_steps and not args.model_step
            for obj_id, (x, y) in enumerate(CLICKS[: args.objects], start=1):
                session.add_points(0, obj_id, [[x * width / 960, y * height / 540]], [1])
            snapshot = lambda: (time.perf_counter(), cpu_seconds(), counter.total, dict(timer.wall), dict(timer.cpu), dict(timer.flops))  # noqa: E731
            previous = snapshot()
            for result in session.propagate():
                now = snapshot()
                per_frame.append((result["frame_idx"], previous, now))
                previous = now
            session.close()
        labels = list(dict.fromkeys(label for _, _, label in stages))
        if args.timeline:
            timeline = []
            for frame, a, b in per_frame:
                cells = [f"{b[3].get(label, 0) - a[3].get(label, 0):.3f}" for label in labels]
                timeline.append((str(frame), f"{b[0] - a[0]:.3f}", f"{b[1] - a[1]:.3f}", *cells))
            print_table(timeline, ("frame", "wall s", "CPU s", *labels))
        steady = [(a, b) for frame, a, b in per_frame if frame >= warmup]
        if not steady:
            print(f"no steady-state frames: track more than {warmup} frames")
            return 1
        n = len(steady)
        wall = sum(b[0] - a[0] for a, b in steady) / n
        cpu = sum(b[1] - a[1] for a, b in steady) / n
        flops = sum(b[2] - a[2] for a, b in steady) / n
        rows = []
        for label in labels:
            stage_wall = sum(b[3].get(label, 0) - a[3].get(label, 0) for a, b in steady) / n
            stage_cpu = sum(b[4].get(label, 0) - a[4].get(label, 0) for a, b in steady) / n
            stage_flops = sum(b[5].get(label, 0) - a[5].get(label, 0) for a, b in steady) / n
            rows.append((label, f"{stage_wall:.3f}", f"{stage_cpu:.3f}", f"{stage_flops / 1e9:.1f}", f"{stage_flops / rate:.3f}"))
        staged = sum(float(r[1]) for r in rows)
        rows.append(("rest (memory gathering, bookkeeping)", f"{wall - staged:.3f}", "", "", ""))
        rows.append(("total per frame", f"{wall:.3f}", f"{cpu:.3f}", f"{flops / 1e9:.1f}", f"{flops / rate:.3f}"))
    step = "transformers' per-object step" if args.model_step or not tracking_step.supported(model) else "shared-work step"
    print(f"{args.clip} ({width}x{height}), {args.frames} frames, {args.objects} object(s), {step}, {args.threads} threads; "
          f"steady state = {n} frames after the first {warmup}; sgemm {rate / 1e9:.0f} GFLOP/s")
    print(f"fps (steady state): {1 / wall:.3f}   floor: {flops / rate:.3f} s/frame ({flops / rate / wall:.0%} of measured)")
    print_table(rows, ("stage (per frame)", "wall s", "CPU s", "GFLOP", "floor s"))
    print("\ncommand: python benchmarks/video_profile.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
