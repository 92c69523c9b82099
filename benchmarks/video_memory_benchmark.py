"""Peak memory of video tracking does not grow with video length.

Tracks one object through a short and a long synthetic mp4 (default 100 and 1,000 frames) with the
``video-object-tracking`` pipeline, each run in a fresh subprocess, and prints both peak resident set sizes
(``getrusage``) and their ratio. Exits with status 1 when the long run's peak exceeds the short run's by
more than ``--tolerance`` (default 15%).

    python benchmarks/video_memory_benchmark.py                      # tiny random model, 100 vs 1000 frames
    python benchmarks/video_memory_benchmark.py --short 30 --long 300
    python benchmarks/video_memory_benchmark.py --model facebook/sam2.1-hiera-tiny --height 480 --width 854

``--transformers`` also measures transformers' own session (``init_video_session(video=...)`` +
``propagate_in_video_iterator``), which preprocesses and keeps every frame and every output, for contrast.

``--text CONCEPT`` tracks every instance of a concept instead of one clicked object, with SAM 3's text video
model (default: a tiny random ``Sam3VideoModel``, ``sam2_pipelines.testing`` kind ``"sam3-video"``)::

    python benchmarks/video_memory_benchmark.py --text "red car" --transformers
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PROMPT = {"frame": 0, "obj_id": 1, "labels": [1]}
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def write_clip(path: Path, num_frames: int, height: int, width: int) -> Path:
    """Write a synthetic clip frame by frame (the writer never holds the whole video)."""
    import numpy as np

    from sam2_pipelines.io.video import encode_h264

    rng = np.random.default_rng(0)
    side = max(8, min(height, width) // 4)

    def frames():
        for t in range(num_frames):
            frame = rng.integers(0, 40, size=(height, width, 3), dtype=np.uint8)
            x0 = int((width - side) * (t % 100) / 99)
            frame[height // 2 - side // 2 : height // 2 + side // 2, x0 : x0 + side] = (230, 200, 40)
            yield frame

    encode_h264(frames(), path, 10)
    return path


def measure(model: str, video: str, height: int, width: int, engine: str, text: str | None = None) -> None:
    """Child process: track one object (or every instance of ``text``) through ``video`` and print a JSON line
    with the peak RSS."""
    import resource
    import time

    import torch

    import sam2_pipelines  # noqa: F401
    from transformers import pipeline

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    tracker = pipeline("video-object-tracking", model=model, device="cpu")
    prompt = {**PROMPT, "points": [[width // 8, height // 2]]} if text is None else {"frame": 0, "text": text}
    start = time.perf_counter()
    frames = 0
    if engine == "ours":
        for result in tracker(video, prompts=[prompt], output="rle", stream=True):
            frames += 1
    else:  # transformers' own session, for contrast
        from transformers.video_utils import load_video

        processor, net = tracker.processor, tracker.model
        session = processor.init_video_session(video=load_video(video)[0], inference_device="cpu")
        with torch.inference_mode():
            if text is None:
                processor.add_inputs_to_inference_session(
                    inference_session=session, frame_idx=0, obj_ids=1, input_points=[[prompt["points"]]], input_labels=[[prompt["labels"]]]
                )
                net(inference_session=session, frame_idx=0)
            else:
                processor.add_text_prompt(session, text)
            for output in net.propagate_in_video_iterator(session):
                if text is not None:
                    processor.postprocess_outputs(session, output)  # as a user reading each frame's masks
                frames += 1
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"frames": frames, "peak_rss_mib": peak_kib / 1024, "seconds": time.perf_counter() - start}))


def run_child(model: str, video: Path, height: int, width: int, engine: str, text: str | None = None) -> dict:
    """Run :func:`measure` in a fresh interpreter and return its JSON result."""
    command = [sys.executable, __file__, "--child", "--model", model, "--video", str(video), "--height", str(height), "--width", str(width), "--engine", engine]
    if text is not None:
        command += ["--text", text]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    completed = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if completed.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", type=int, default=100, help="frames of the short video (default 100)")
    parser.add_argument("--long", type=int, default=1000, help="frames of the long video (default 1000)")
    parser.add_argument("--height", type=int, default=64, help="frame height (even, default 64)")
    parser.add_argument("--width", type=int, default=96, help="frame width (even, default 96)")
    parser.add_argument("--model", default=None, help="model id or directory (default: a tiny random Sam2VideoModel)")
    parser.add_argument("--size", type=int, default=128, help="input size of the default tiny model (multiple of 32, default 128)")
    parser.add_argument("--tolerance", type=float, default=0.15, help="allowed relative growth of the peak RSS (default 0.15)")
    parser.add_argument("--transformers", action="store_true", help="also measure transformers' own video session")
    parser.add_argument("--text", default=None, metavar="CONCEPT", help="track every instance of CONCEPT with a SAM 3 text video model")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="ours", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        measure(args.model, args.video, args.height, args.width, args.engine, args.text)
        return 0
    if args.short < 1 or args.long < args.short:
        parser.error("need 1 <= --short <= --long")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model
        if model is None:
            from sam2_pipelines.testing import save_tiny_model

            if args.text is None:
                model = str(save_tiny_model(tmp / "tiny-sam2-video", "video", size=args.size))
            else:
                model = str(save_tiny_model(tmp / "tiny-sam3-video", "sam3-video"))
        engines = ["ours"] + (["transformers"] if args.transformers else [])
        status = 0
        for engine in engines:
            peaks = {}
            for frames in (args.short, args.long):
                clip = write_clip(tmp / f"clip_{frames}.mp4", frames, args.height, args.width)
                result = run_child(model, clip, args.height, args.width, engine, args.text)
                if result["frames"] != frames:
                    raise RuntimeError(f"{engine}: tracked {result['frames']} frames of {frames}")
                peaks[frames] = result["peak_rss_mib"]
                print(f"{engine:>12}: {frames:5d} frames  peak RSS {result['peak_rss_mib']:8.1f} MiB  ({result['seconds']:.1f} s)")
            ratio = peaks[args.long] / peaks[args.short]
            print(f"{engine:>12}: peak RSS ratio long/short = {ratio:.3f} (limit {1 + args.tolerance:.2f})")
            if engine == "ours" and ratio > 1 + args.tolerance:
                status = 1
        return status


if __name__ == "__main__":
    sys.exit(main())
