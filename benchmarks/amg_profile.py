"""Where automatic mask generation spends its time: seconds per stage and the share of the FLOP floor reached.

Runs this package's ``mask-generation`` pipeline once on a workload of ``reference_benchmark.py`` (same
random Meta SAM 2.1 hiera-tiny, seed 1, converted) and prints, per stage, wall seconds, CPU seconds and
calls:

* image encoder; decoder two-way transformer (prompt encoder included); mask upscaling + hypernetwork;
* upsampling to the image; stability scores; RLE encoding; NMS; the rest (IoU and crop-edge filters,
  boxes, records).

It also counts the matrix FLOPs actually executed (``torch.utils.flop_counter``) and those the model's
own decoder forward needs for the same points (what Meta's and transformers' generators run: every
point's masks upscaled), measures this machine's sgemm rate, and prints the FLOP floor (executed FLOPs
at the sgemm rate) next to the measured time.

Usage::

    python benchmarks/amg_profile.py                       # standard workload: truck.jpg, 32x32, default thresholds
    python benchmarks/amg_profile.py --workload zero       # 16x16 grid on 480x640, thresholds 0
    python benchmarks/amg_profile.py --points-per-side 8   # quicker
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
from benchmarks.reference_benchmark import (  # noqa: E402
    DEFAULT_THRESHOLDS,
    SAMPLE_PHOTO,
    ZERO_THRESHOLDS,
    cpu_seconds,
    print_table,
)


def build_model(directory: Path) -> str:
    return build_reference_model(directory, "image")


def reference_decoder_flops(generator, points: int) -> float:
    """FLOPs of the model's own decoder forward for ``points`` single-point prompts (every mask upscaled)."""
    import torch

    model = generator.model
    size = generator.image_model.input_size
    with torch.no_grad():
        embeddings = model.get_image_embeddings(torch.zeros(1, 3, size, size))
        with FlopCounter() as counter:
            model(image_embeddings=embeddings, input_points=torch.rand(1, 4, 1, 2) * size, input_labels=torch.ones(1, 4, 1, dtype=torch.long))
    return counter.total / 4 * points


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=["standard", "zero"], default="standard")
    parser.add_argument("--points-per-side", type=int, help="grid size (default: the workload's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", help="a converted model directory (default: build the random reference model)")
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    from PIL import Image
    import sam2_pipelines
    from sam2_pipelines import testing
    from sam2_pipelines.image import amg
    from sam2_pipelines.kernels import fast_decoder
    from sam2_pipelines.image import pipeline as mask_generation

    torch.set_num_threads(args.threads)
    if args.workload == "standard":
        image = np.asarray(Image.open(SAMPLE_PHOTO).convert("RGB"))
        options = dict(points_per_side=args.points_per_side or 32, points_per_batch=64, **DEFAULT_THRESHOLDS)
    else:
        image = testing.synthetic_image(480, 640)
        options = dict(points_per_side=args.points_per_side or 16, points_per_batch=64, **ZERO_THRESHOLDS)
    rate = sgemm_rate(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or build_model(Path(tmp))
        generator = sam2_pipelines.pipeline("mask-generation", model=model)
        generator(image[:64, :64], points_per_side=1)  # warm-up
        counter = FlopCounter()
        timer = StageTimer(counter)
        stages = [
            (generator, "_encode", "image encoder"),
            (fast_decoder, "decode", "decoder two-way transformer"),
            (fast_decoder, "_upscale", "mask upscaling + hypernetwork"),
            (generator, "_upsample", "upsampling to the image"),
            (amg, "calculate_stability_score", "stability scores"),
            (mask_generation, "encode_rle_batch", "RLE encoding"),
            (amg, "box_nms", "NMS"),
        ]
        with contextlib.ExitStack() as stack:
            for target, name, label in stages:
                stack.enter_context(patched(target, name, timer.wrap(label, getattr(target, name))))
            start, cpu = time.perf_counter(), cpu_seconds()
            with counter:
                records = generator(image, **options)["records"]
            total_wall, total_cpu = time.perf_counter() - start, cpu_seconds() - cpu
        executed = counter.total
        grid_points = options["points_per_side"] ** 2
        reference = reference_decoder_flops(generator, grid_points)

    rows = []

    def floor_share(flops, wall):
        return f"{100 * flops / rate / wall:.0f}%" if flops and wall else ""

    for _, _, label in stages:
        rows.append((label, f"{timer.wall[label]:.2f}", f"{timer.cpu[label]:.2f}", str(timer.calls[label]),
                     f"{100 * timer.wall[label] / total_wall:.0f}%", f"{timer.flops[label] / 1e9:.0f}",
                     floor_share(timer.flops[label], timer.wall[label])))
    rest_wall = total_wall - sum(timer.wall.values())
    rest_cpu = total_cpu - sum(timer.cpu.values())
    rows.append(("rest (filters, boxes, records)", f"{rest_wall:.2f}", f"{rest_cpu:.2f}", "", f"{100 * rest_wall / total_wall:.0f}%", "", ""))
    rows.append(("total", f"{total_wall:.2f}", f"{total_cpu:.2f}", "", "100%", f"{executed / 1e9:.0f}", floor_share(executed, total_wall)))
    print(
        f"mask-generation profile: {args.workload} workload, {options['points_per_side']}x{options['points_per_side']} grid "
        f"on {image.shape[0]}x{image.shape[1]}, {args.threads} torch threads, {len(records)} records"
    )
    print()
    print_table(rows, ("stage", "wall s", "CPU s", "calls", "share", "GFLOP", "of FLOP floor"))
    floor = executed / rate
    print()
    print(f"sgemm rate (2048^3, {args.threads} threads): {rate / 1e9:.0f} GFLOP/s")
    print(f"matrix FLOPs executed: {executed / 1e12:.3f} TFLOP -> FLOP floor {floor:.2f} s; "
          f"reached {100 * floor / total_wall:.0f}% of it (floor / wall)")
    print(f"the model's own decoder forward for the same {grid_points} points: {reference / 1e12:.3f} TFLOP "
          f"(+ the encoder) -> floor {reference / rate:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
