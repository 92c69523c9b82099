"""Speed and memory against the reference implementations, on identical weights, in one run.

A randomly initialised Meta SAM 2.1 hiera-tiny (``sam2.build_sam``, seeded, no download) is saved as a
Meta ``.pt`` checkpoint and converted with :func:`sam2_pipelines.convert_checkpoint`; every contender
then runs those same weights on the CPU:

* automatic mask generation, seconds per image: this package's ``mask-generation`` pipeline, Meta's
  ``SAM2AutomaticMaskGenerator`` and transformers' built-in ``MaskGenerationPipeline``;
* video tracking, frames per second with 1 and with 3 objects: this package's ``video-object-tracking``
  pipeline, Meta's ``SAM2VideoPredictor`` (on the same JPEG folder) and transformers' own session API
  (``Sam2VideoProcessor.init_video_session`` + ``Sam2VideoModel.propagate_in_video_iterator``);
* the peak resident set size of each of those runs.

Every measurement runs in its own subprocess (peak RSS from ``resource.getrusage`` covers model
loading too); times exclude model loading but include decoding / preprocessing of the inputs.
Thresholds are 0 in the AMG runs so that every candidate mask goes through the full post-processing
(random weights predict low IoUs: Meta's defaults would filter everything out and time nothing).

AMG workloads (``--workload``):

* ``zero`` (default): a 480x640 synthetic image, 16x16 grid, every threshold at 0 (every candidate goes
  through upsampling, stability, RLE and NMS);
* ``standard``: the real photo ``media/truck.jpg`` (1800x1200), Meta's default 32x32 grid,
  ``points_per_batch=64`` and Meta's default thresholds (what people run over datasets).

``--baseline DIR`` adds a fourth AMG contender, ``before``: this package's pipeline imported from another
checkout (e.g. ``git worktree add /tmp/before <commit>``), for before/after tables in one run.

Wall and CPU seconds are printed side by side (CPU time is steadier on a shared machine); ``--repeat N``
measures every contender N times, each in a fresh process, and reports the fastest run.

Usage::

    python benchmarks/reference_benchmark.py                              # zero workload, 8 frames at 240x320
    python benchmarks/reference_benchmark.py --workload standard --skip video
    python benchmarks/reference_benchmark.py --quick                      # 4x4 grid, 3 frames: a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The checkout whose package is measured (this one, or the --baseline checkout in a "before" child).
PACKAGE_ROOT = os.environ.get("SAM2P_BENCHMARK_PACKAGE_ROOT", str(ROOT))
if PACKAGE_ROOT not in sys.path[:1]:  # run from a checkout without installing the package
    sys.path.insert(0, PACKAGE_ROOT)
META_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
SAMPLE_PHOTO = ROOT / "media" / "truck.jpg"

#: Meta's default thresholds (``standard`` workload) and every threshold at 0 (``zero`` workload).
DEFAULT_THRESHOLDS = dict(pred_iou_thresh=0.8, stability_score_thresh=0.95)
ZERO_THRESHOLDS = dict(pred_iou_thresh=0.0, stability_score_thresh=0.0)

AMG_CONTENDERS = ("ours", "meta", "transformers")
VIDEO_CONTENDERS = ("ours", "meta", "transformers")


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prepare(directory: Path, args) -> dict:
    """Write the shared inputs: Meta checkpoint, converted directory, test image and JPEG frame folder."""
    import numpy as np
    import torch
    from PIL import Image
    from sam2.build_sam import build_sam2_video_predictor

    from sam2_pipelines import convert_checkpoint, testing

    torch.manual_seed(1)
    meta = build_sam2_video_predictor(META_CONFIG, None, device="cpu")
    checkpoint = directory / "sam2.1_hiera_tiny_random.pt"
    torch.save({"model": meta.state_dict()}, checkpoint)
    converted = convert_checkpoint(checkpoint, directory / "converted", kind="video")
    if args.image:
        image = Path(args.image).resolve()
    else:
        image = directory / "image.png"
        Image.fromarray(testing.synthetic_image(args.height, args.width)).save(image)
    frames = directory / "frames"
    frames.mkdir()
    video = testing.synthetic_frames(args.frames, args.frame_height, args.frame_width)
    for index, frame in enumerate(video):
        Image.fromarray(np.ascontiguousarray(frame)).save(frames / f"{index:05d}.jpg", quality=95)
    return {"checkpoint": str(checkpoint), "converted": str(converted), "image": str(image), "frames": str(frames)}


def object_prompts(num_objects: int, height: int, width: int) -> list[dict]:
    """One positive click per object on frame 0, spread along the frame's diagonal."""
    prompts = []
    for k in range(num_objects):
        x = width * (k + 1) / (num_objects + 1)
        y = height * (k + 1) / (num_objects + 1)
        prompts.append({"frame": 0, "obj_id": k + 1, "points": [[x, y]], "labels": [1]})
    return prompts


# --------------------------------------------------------------------------------------------------
# measurements (each in a child process)
# --------------------------------------------------------------------------------------------------


def run_amg(which: str, paths: dict, args) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    image = np.asarray(Image.open(paths["image"]).convert("RGB"))
    thresholds = DEFAULT_THRESHOLDS if args.thresholds == "default" else ZERO_THRESHOLDS
    options = dict(points_per_side=args.points_per_side, points_per_batch=64, **thresholds)
    if which in ("ours", "before"):  # "before": PYTHONPATH points at the --baseline checkout
        import sam2_pipelines

        generator = sam2_pipelines.pipeline("mask-generation", model=paths["converted"])
        start, cpu = time.perf_counter(), cpu_seconds()
        count = len(generator(image, **options)["records"])
    elif which == "meta":
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
        from sam2.build_sam import build_sam2

        model = build_sam2(META_CONFIG, paths["checkpoint"], device="cpu")
        generator = SAM2AutomaticMaskGenerator(model, **options)
        start, cpu = time.perf_counter(), cpu_seconds()
        with torch.inference_mode():
            count = len(generator.generate(image))
    else:
        from transformers import pipeline
        from transformers.pipelines.mask_generation import MaskGenerationPipeline as Builtin

        generator = pipeline("mask-generation", model=paths["converted"], pipeline_class=Builtin)
        start, cpu = time.perf_counter(), cpu_seconds()
        outputs = generator(Image.fromarray(image), points_per_crop=args.points_per_side, **thresholds, points_per_batch=64)
        count = len(outputs["masks"])
    return {"seconds": time.perf_counter() - start, "cpu_seconds": cpu_seconds() - cpu, "masks": count}


def run_video(which: str, paths: dict, args, num_objects: int) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    prompts = object_prompts(num_objects, args.frame_height, args.frame_width)
    frames = sorted(Path(paths["frames"]).glob("*.jpg"))
    if which == "ours":
        import sam2_pipelines

        tracker = sam2_pipelines.pipeline("video-object-tracking", model=paths["converted"])
        start, cpu = time.perf_counter(), cpu_seconds()
        results = list(tracker(paths["frames"], prompts=prompts))
        processed = len(results)
    elif which == "meta":
        from sam2.build_sam import build_sam2_video_predictor

        predictor = build_sam2_video_predictor(META_CONFIG, paths["checkpoint"], device="cpu")
        start, cpu = time.perf_counter(), cpu_seconds()
        with torch.inference_mode():
            state = predictor.init_state(paths["frames"])
            for prompt in prompts:
                predictor.add_new_points_or_box(
                    state, frame_idx=0, obj_id=prompt["obj_id"], points=np.array(prompt["points"]), labels=np.array(prompt["labels"])
                )
            processed = sum(1 for _ in predictor.propagate_in_video(state))
    else:
        from transformers import Sam2VideoModel, Sam2VideoProcessor

        model = Sam2VideoModel.from_pretrained(paths["converted"]).eval()
        processor = Sam2VideoProcessor.from_pretrained(paths["converted"])
        start, cpu = time.perf_counter(), cpu_seconds()
        with torch.inference_mode():
            video = [np.asarray(Image.open(path).convert("RGB")) for path in frames]
            session = processor.init_video_session(video=video, inference_device="cpu")
            processor.add_inputs_to_inference_session(
                inference_session=session,
                frame_idx=0,
                obj_ids=[p["obj_id"] for p in prompts],
                input_points=[[p["points"] for p in prompts]],
                input_labels=[[p["labels"] for p in prompts]],
            )
            model(inference_session=session, frame_idx=0)  # segment the prompted frame first, as documented
            processed = 0
            for output in model.propagate_in_video_iterator(session):
                processor.post_process_masks([output.pred_masks], original_sizes=[[args.frame_height, args.frame_width]])
                processed += 1
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "cpu_seconds": cpu_seconds() - cpu, "frames": processed, "fps": processed / seconds}


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    paths = json.loads(args.paths)
    if args.child == "amg":
        result = run_amg(args.which, paths, args)
    else:
        result = run_video(args.which, paths, args, args.objects)
    result["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------------


def measure(kind: str, which: str, paths: dict, args, objects: int = 1) -> dict:
    """Run one measurement ``--repeat`` times, each in a fresh interpreter; return the fastest run's numbers."""
    runs = [measure_once(kind, which, paths, args, objects) for _ in range(args.repeat)]
    best = min(runs, key=lambda run: run["seconds"])
    best["peak_rss_mb"] = max(run["peak_rss_mb"] for run in runs)
    return best


def measure_once(kind: str, which: str, paths: dict, args, objects: int = 1) -> dict:
    """Run one measurement in a fresh interpreter and return its numbers."""
    command = [
        sys.executable, __file__, "--child", kind, "--which", which, "--paths", json.dumps(paths),
        "--objects", str(objects), "--threads", str(args.threads),
        "--points-per-side", str(args.points_per_side), "--height", str(args.height), "--width", str(args.width),
        "--frames", str(args.frames), "--frame-height", str(args.frame_height), "--frame-width", str(args.frame_width),
        "--thresholds", args.thresholds,
    ]
    return run_child(command, which, args.baseline, kind)


def run_child(command: list, which: str, baseline: str | None, kind: str) -> dict:
    """Run a measuring child process (``which == "before"``: with the package of the ``baseline`` checkout) and
    return the JSON of its ``RESULT`` line."""
    package_root = Path(baseline).resolve() if which == "before" else ROOT
    env = dict(os.environ, PYTHONPATH=str(package_root) + os.pathsep + os.environ.get("PYTHONPATH", ""), HF_HUB_OFFLINE="1",
               TRANSFORMERS_VERBOSITY="error", TQDM_DISABLE="1", SAM2P_BENCHMARK_PACKAGE_ROOT=str(package_root))
    completed = subprocess.run(command, capture_output=True, text=True, env=env, cwd=package_root)
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{kind}/{which} failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}")


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def print_table(rows: list[tuple], header: tuple) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 4x4 grid, small image, 3 frames")
    parser.add_argument("--workload", choices=["zero", "standard"], default="zero",
                        help="AMG workload: 'zero' = 16x16 grid on 480x640, thresholds 0; 'standard' = media/truck.jpg, "
                             "32x32 grid, Meta's default thresholds")
    parser.add_argument("--image", help="AMG image (default: a synthetic --height x --width image)")
    parser.add_argument("--thresholds", choices=["zero", "default"], default="zero", help="AMG thresholds")
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender (fresh process each); the fastest is reported")
    parser.add_argument("--baseline", help="a checkout of an earlier version of this package: measured as AMG contender 'before'")
    parser.add_argument("--baseline-only", action="store_true",
                        help="with --baseline: AMG of this package and the baseline only, run alternately --repeat times (a no-regression check)")
    parser.add_argument("--points-per-side", type=int, default=16)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--frame-height", type=int, default=240)
    parser.add_argument("--frame-width", type=int, default=320)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of every contender")
    parser.add_argument("--skip", nargs="*", default=[], choices=["amg", "video"], help="parts to leave out")
    parser.add_argument("--child", choices=["amg", "video"], help=argparse.SUPPRESS)
    parser.add_argument("--which", help=argparse.SUPPRESS)
    parser.add_argument("--paths", help=argparse.SUPPRESS)
    parser.add_argument("--objects", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0
    if args.workload == "standard" and not args.child:
        args.image, args.points_per_side, args.thresholds = str(SAMPLE_PHOTO), 32, "default"
    if args.quick:
        args.points_per_side, args.height, args.width = 4, 120, 160
        args.frames, args.frame_height, args.frame_width = 3, 96, 128

    with tempfile.TemporaryDirectory() as tmp:
        paths = prepare(Path(tmp), args)
        if args.image:
            from PIL import Image

            with Image.open(args.image) as photo:
                described = f"{Path(args.image).name} ({photo.height}x{photo.width})"
        else:
            described = f"a synthetic {args.height}x{args.width} image"
        thresholds = "Meta's default thresholds" if args.thresholds == "default" else "thresholds 0"
        print(
            f"SAM 2.1 hiera-tiny, random weights (seed 1), CPU, {args.threads} torch threads, fastest of {args.repeat} run(s); "
            f"AMG: {args.points_per_side}x{args.points_per_side} grid on {described}, points_per_batch 64, {thresholds}; "
            f"video: {args.frames} frames of {args.frame_height}x{args.frame_width}"
        )
        rows = []
        if args.baseline_only:
            if not args.baseline:
                parser.error("--baseline-only needs --baseline DIR")
            runs = {"ours": [], "before": []}
            for _ in range(args.repeat):  # alternately, so that a slower spell of a shared machine hits both
                for which in runs:
                    runs[which].append(measure_once("amg", which, paths, args))
            for which, label in (("seconds", "AMG seconds / image"), ("cpu_seconds", "AMG CPU seconds / image")):
                ours, before = (sorted(r[which] for r in runs[w]) for w in ("ours", "before"))
                print(f"{label}: ours {' '.join(f'{v:.1f}' for v in ours)} | before {' '.join(f'{v:.1f}' for v in before)} | "
                      f"fastest: ours {ratio(before[0], ours[0])} faster; median: ours {ratio(before[len(before) // 2], ours[len(ours) // 2])} faster")
            print(f"AMG masks: ours {runs['ours'][0]['masks']}, before {runs['before'][0]['masks']}; peak RSS MiB: ours "
                  f"{max(r['peak_rss_mb'] for r in runs['ours']):.0f}, before {max(r['peak_rss_mb'] for r in runs['before']):.0f}")
            return 0
        if "amg" not in args.skip:
            amg = {which: measure("amg", which, paths, args) for which in AMG_CONTENDERS}
            rows.append(("AMG seconds / image (lower is better)",
                         *(f"{amg[w]['seconds']:.1f}" for w in AMG_CONTENDERS),
                         ratio(amg["meta"]["seconds"], amg["ours"]["seconds"]),
                         ratio(amg["transformers"]["seconds"], amg["ours"]["seconds"])))
            rows.append(("AMG CPU seconds / image",
                         *(f"{amg[w]['cpu_seconds']:.1f}" for w in AMG_CONTENDERS),
                         ratio(amg["meta"]["cpu_seconds"], amg["ours"]["cpu_seconds"]),
                         ratio(amg["transformers"]["cpu_seconds"], amg["ours"]["cpu_seconds"])))
            rows.append(("AMG masks returned", *(str(amg[w]["masks"]) for w in AMG_CONTENDERS), "", ""))
            rows.append(("AMG peak RSS MiB", *(f"{amg[w]['peak_rss_mb']:.0f}" for w in AMG_CONTENDERS),
                         ratio(amg["ours"]["peak_rss_mb"], amg["meta"]["peak_rss_mb"]),
                         ratio(amg["ours"]["peak_rss_mb"], amg["transformers"]["peak_rss_mb"])))
            if args.baseline:
                before = measure("amg", "before", paths, args)
                rows.append(("AMG seconds / image, this package before (--baseline)", f"{before['seconds']:.1f}", "", "",
                             f"ours {ratio(before['seconds'], amg['ours']['seconds'])} faster", ""))
                rows.append(("AMG CPU seconds / image, before", f"{before['cpu_seconds']:.1f}", "", "",
                             f"ours {ratio(before['cpu_seconds'], amg['ours']['cpu_seconds'])} less", ""))
                rows.append(("AMG peak RSS MiB, before", f"{before['peak_rss_mb']:.0f}", "", "", "", ""))
        if "video" not in args.skip:
            for objects in (1, 3):
                video = {which: measure("video", which, paths, args, objects) for which in VIDEO_CONTENDERS}
                rows.append((f"video fps, {objects} object(s) (higher is better)",
                             *(f"{video[w]['fps']:.2f}" for w in VIDEO_CONTENDERS),
                             ratio(video["ours"]["fps"], video["meta"]["fps"]),
                             ratio(video["ours"]["fps"], video["transformers"]["fps"])))
                rows.append((f"video peak RSS MiB, {objects} object(s)",
                             *(f"{video[w]['peak_rss_mb']:.0f}" for w in VIDEO_CONTENDERS),
                             ratio(video["ours"]["peak_rss_mb"], video["meta"]["peak_rss_mb"]),
                             ratio(video["ours"]["peak_rss_mb"], video["transformers"]["peak_rss_mb"])))
        print()
        print_table(rows, ("metric", "ours", "meta", "transformers", "speed/mem: ours vs meta", "ours vs transformers"))
        print("\nspeed ratios > 1 mean ours is faster; memory ratios < 1 mean ours uses less.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
