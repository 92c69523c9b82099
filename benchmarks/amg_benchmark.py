"""Automatic mask generation: speed against transformers' built-in pipeline, and peak memory.

Both pipelines run on the same randomly initialised full-size SAM 2.1 Hiera-tiny model (no download)
and the same synthetic image, on the CPU. Every measurement runs in its own subprocess, so the peak
resident set size (``resource.getrusage``) of one does not leak into another. Printed, from one run:

1. seconds per image of this package's ``mask-generation`` pipeline and of
   ``transformers.pipelines.mask_generation.MaskGenerationPipeline`` at Meta's default thresholds,
   and their ratio (target: ours at least 1.5x faster);
2. peak RSS of this package's pipeline with every threshold at 0 on a 2250x1500 image (target: < 4 GB;
   the built-in pipeline is not run there by default: it holds every candidate mask at full resolution
   and needs more than 10 GB; add ``--builtin-memory`` to try it anyway).

Usage::

    python benchmarks/amg_benchmark.py            # full size (slow on a small CPU)
    python benchmarks/amg_benchmark.py --quick    # tiny model, small images: a smoke run
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
if str(ROOT) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

#: Meta's default thresholds, given to both pipelines for the speed comparison.
DEFAULT_THRESHOLDS = dict(pred_iou_thresh=0.8, stability_score_thresh=0.95, stability_score_offset=1.0, mask_threshold=0.0)
#: Every threshold at 0 (nothing filtered before NMS): the memory stress test.
ZERO_THRESHOLDS = dict(pred_iou_thresh=0.0, stability_score_thresh=0.0, stability_score_offset=1.0, mask_threshold=0.0)


def build_model_dir(directory: Path, quick: bool) -> Path:
    """Save a randomly initialised model + processor: full-size Hiera-tiny, or the tiny test model with ``quick``."""
    import torch

    from sam2_pipelines import testing

    if quick:
        return testing.save_tiny_model(directory, "image")
    import transformers as tf

    from sam2_pipelines.models.convert import SIZES, build_config, build_processor

    torch.manual_seed(0)
    model = tf.Sam2Model(build_config(SIZES["tiny"], "image")).eval()
    model.save_pretrained(directory)
    build_processor("image").save_pretrained(directory)
    return directory


def cpu_seconds() -> float:
    """User + system CPU time of this process: unlike wall time, barely affected by other load on the machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def worker(args) -> dict:
    """Run one measurement in this process and return its numbers."""
    import torch
    from PIL import Image
    from transformers import pipeline
    from transformers.pipelines.mask_generation import MaskGenerationPipeline as Builtin

    import sam2_pipelines  # noqa: F401
    from sam2_pipelines.testing import synthetic_image

    torch.set_num_threads(args.threads)
    height, width = args.height, args.width
    image = Image.fromarray(synthetic_image(height, width))
    thresholds = ZERO_THRESHOLDS if args.zero_thresholds else DEFAULT_THRESHOLDS
    if args.which == "ours":
        generator = pipeline("mask-generation", model=args.model_dir)
        # binary masks, like the built-in, in the speed test; COCO RLE (Meta's advice for large images) in the memory test
        output_mode = "coco_rle" if args.zero_thresholds else "binary_mask"
        options = dict(points_per_side=args.points_per_side, points_per_batch=args.points_per_batch, output_mode=output_mode, **thresholds)
    else:
        generator = pipeline("mask-generation", model=args.model_dir, pipeline_class=Builtin)
        options = dict(
            points_per_crop=args.points_per_side,
            points_per_batch=args.points_per_batch,
            pred_iou_thresh=thresholds["pred_iou_thresh"],
            stability_score_thresh=thresholds["stability_score_thresh"],
            stability_score_offset=thresholds["stability_score_offset"],
            mask_threshold=thresholds["mask_threshold"],
        )
    rss_before = peak_rss_bytes()
    times = []
    count = 0
    cpu_times = []
    for _ in range(args.repeats):
        start, cpu_start = time.perf_counter(), cpu_seconds()
        out = generator(image, **options)
        times.append(time.perf_counter() - start)
        cpu_times.append(cpu_seconds() - cpu_start)
        count = len(out["masks"])
        del out
    return {
        "which": args.which,
        "seconds": min(times),
        "cpu_seconds": min(cpu_times),
        "masks": count,
        "peak_rss_bytes": peak_rss_bytes(),
        "rss_after_load_bytes": rss_before,
        "image": [height, width],
    }


def run_worker(model_dir: Path, which: str, height: int, width: int, opts, zero: bool, timeout: float) -> dict | None:
    """Run :func:`worker` in a fresh Python process; ``None`` if it failed or ran past ``timeout`` seconds."""
    command = [
        sys.executable, __file__, "--worker", which, "--model-dir", str(model_dir), "--height", str(height),
        "--width", str(width), "--points-per-side", str(opts.points_per_side), "--points-per-batch",
        str(opts.points_per_batch), "--repeats", str(opts.repeats), "--threads", str(opts.threads),
    ]
    if zero:
        command.append("--zero-thresholds")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "HF_HUB_OFFLINE": "1"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        print(f"  {which}: did not finish within {timeout:.0f} s")
        return None
    if done.returncode != 0:
        print(f"  {which}: failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny model, small images, small grid (smoke run)")
    parser.add_argument("--speed-size", type=int, nargs=2, metavar=("H", "W"), help="image of the speed comparison")
    parser.add_argument("--memory-size", type=int, nargs=2, metavar=("H", "W"), help="image of the memory test")
    parser.add_argument("--points-per-side", type=int, help="grid side (default 32, 4 with --quick)")
    parser.add_argument("--points-per-batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1, help="runs per speed measurement (the fastest counts)")
    parser.add_argument("--threads", type=int, default=max(1, torch_threads_default()))
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds allowed to each measurement")
    parser.add_argument("--builtin-memory", action="store_true", help="also run the built-in pipeline in the memory test")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--model-dir", help="use this saved model instead of building one")
    # worker-only arguments
    parser.add_argument("--worker", choices=["ours", "builtin"], help=argparse.SUPPRESS)
    parser.add_argument("--height", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--zero-thresholds", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        args.which = args.worker
        print(json.dumps(worker(args)))
        return 0

    if args.points_per_side is None:
        args.points_per_side = 4 if args.quick else 32
    speed_size = args.speed_size or ((120, 160) if args.quick else (768, 1024))
    memory_size = args.memory_size or ((300, 450) if args.quick else (1500, 2250))

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model_dir) if args.model_dir else build_model_dir(Path(tmp) / "model", args.quick)
        print(f"model: {'tiny test SAM 2' if args.quick else 'SAM 2.1 Hiera-tiny (random weights)'}; grid "
              f"{args.points_per_side}x{args.points_per_side}, points_per_batch {args.points_per_batch}, "
              f"{args.threads} torch thread(s)")
        status = 0
        if not args.skip_speed:
            print(f"speed at default thresholds, image {speed_size[0]}x{speed_size[1]} (H x W):")
            ours = run_worker(model_dir, "ours", *speed_size, args, False, args.timeout)
            builtin = run_worker(model_dir, "builtin", *speed_size, args, False, args.timeout)
            for result in (ours, builtin):
                if result:
                    print(f"  {result['which']:8s} {result['seconds']:8.2f} s/image wall, {result['cpu_seconds']:8.2f} s CPU  "
                          f"{result['masks']} masks  peak RSS {result['peak_rss_bytes'] / 2**30:.2f} GiB")
            if ours and builtin:
                print(f"  speed-up (built-in time / our time): {builtin['seconds'] / ours['seconds']:.2f}x wall, "
                      f"{builtin['cpu_seconds'] / ours['cpu_seconds']:.2f}x CPU (target >= 1.5x; CPU time is the "
                      "steadier figure on a shared machine)")
            if not ours:
                status = 1
        if not args.skip_memory:
            print(f"memory with every threshold at 0, image {memory_size[0]}x{memory_size[1]} (H x W):")
            ours = run_worker(model_dir, "ours", *memory_size, args, True, args.timeout)
            if ours:
                print(f"  ours     peak RSS {ours['peak_rss_bytes'] / 2**30:.2f} GiB (after loading "
                      f"{ours['rss_after_load_bytes'] / 2**30:.2f} GiB), {ours['masks']} masks, {ours['seconds']:.1f} s "
                      f"(target < 4 GB: {'met' if ours['peak_rss_bytes'] < 4e9 else 'NOT met'})")
            else:
                status = 1
            if args.builtin_memory:
                builtin = run_worker(model_dir, "builtin", *memory_size, args, True, args.timeout)
                if builtin:
                    print(f"  built-in peak RSS {builtin['peak_rss_bytes'] / 2**30:.2f} GiB, {builtin['seconds']:.1f} s")
                if ours and builtin:
                    print(f"  memory ratio (built-in / ours): {builtin['peak_rss_bytes'] / ours['peak_rss_bytes']:.2f}x")
    return status


def torch_threads_default() -> int:
    """Torch's default intra-op thread count (the number of cores)."""
    return os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
