"""Batch runs on Ray Data: throughput against the plain pipeline loop, and the driver's memory over a long run.

Printed, from one run on this machine (each measurement in its own process):

1. images per second of automatic mask generation over the real sample photos (``media/truck.jpg`` and
   ``media/groceries.jpg``, each also mirrored: 4 images, ``--repeat`` times) on a random full-size SAM 2.1
   hiera-tiny (no download), for
   * the plain pipeline loop in one process with 2 torch threads,
   * Ray Data with 1 worker x 2 threads, and with 2 workers x 1 thread (``generate_masks`` on a local
     2-CPU cluster, results written as Parquet parts);
   wall time includes loading the model (and starting the actors) in every case; CPU time is the user +
   system time of the process and, for Ray, of every Ray process (sampled every 0.25 s);
2. the driver's resident memory over a ``--rows``-row run (default 2,000) with the tiny test model: sampled
   every 0.2 s; it must stay flat, because results stream from the workers to disk and only ids and error
   flags reach the driver.

Usage::

    python benchmarks/ray_benchmark.py                       # points_per_side 16 (see --points-per-side)
    python benchmarks/ray_benchmark.py --quick               # tiny model, 40 rows: a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def own_cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class RayCpu:
    """User + system CPU seconds of this process and of every Ray process (sampled: workers exit with the run)."""

    def __init__(self):
        import psutil

        self.psutil, self.seen, self.stop = psutil, {}, threading.Event()
        self.start_self = own_cpu_seconds()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self):
        while not self.stop.is_set():
            for process in self.psutil.process_iter(["cmdline"]):
                line = " ".join(process.info["cmdline"] or [])
                if line.startswith("ray::") or "/ray/core/src/ray/" in line or "ray/_private" in line or "ray/dashboard" in line:
                    try:
                        times = process.cpu_times()
                        self.seen[process.pid] = times.user + times.system
                    except self.psutil.Error:
                        pass
            time.sleep(0.25)

    def total(self) -> float:
        self.stop.set()
        self.thread.join()
        return own_cpu_seconds() - self.start_self + sum(self.seen.values())


def write_sample_images(folder: Path, repeat: int) -> list[Path]:
    from PIL import Image, ImageOps

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for copy in range(repeat):
        for name in ("truck.jpg", "groceries.jpg"):
            image = Image.open(ROOT / "media" / name).convert("RGB")
            for mirrored in (False, True):
                path = folder / f"{Path(name).stem}{'-mirrored' if mirrored else ''}-{copy}.png"
                (ImageOps.mirror(image) if mirrored else image).save(path)
                paths.append(path)
    return paths


def child(args) -> dict:
    """One measurement, in this process."""
    import torch

    options = dict(points_per_side=args.points_per_side)
    start_wall, start_cpu = time.perf_counter(), own_cpu_seconds()
    if args.mode == "loop":
        torch.set_num_threads(2)
        from sam2_pipelines import pipeline
        from sam2_pipelines.core.images import read_image_file

        generator = pipeline("mask-generation", model=args.model, device="cpu")
        paths = sorted(Path(args.images).iterdir())
        masks = sum(len(generator(read_image_file(p), output_mode="coco_rle", **options)["records"]) for p in paths)
        return {"images": len(paths), "masks": masks, "wall": time.perf_counter() - start_wall, "cpu": own_cpu_seconds() - start_cpu}
    import psutil
    import ray

    from sam2_pipelines.distributed.ray import generate_masks

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    start_wall, cpu = time.perf_counter(), RayCpu()
    if args.mode == "ray":
        summary = generate_masks(args.images, args.out, model=args.model, workers=args.workers, cpus_per_worker=2 // args.workers,
                                 batch_size=1, progress=False, **options)
        result = {"images": summary.done, "failed": summary.failed, "wall": time.perf_counter() - start_wall, "cpu": cpu.total()}
    else:  # rss: the driver's resident memory while a long run streams to disk
        import pyarrow.parquet as pq

        driver, samples, stop, counted = psutil.Process(), [], threading.Event(), {}

        def rows_written() -> int:
            for part in Path(args.out).glob("part-*.parquet") if Path(args.out).is_dir() else []:
                if part not in counted:
                    counted[part] = pq.read_metadata(part).num_rows
            return sum(counted.values())

        def sample():
            while not stop.is_set():
                samples.append((time.perf_counter() - start_wall, rows_written(), driver.memory_info().rss))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        summary = generate_masks(args.images, args.out, model=args.model, workers=2, cpus_per_worker=1, batch_size=args.batch_size,
                                 progress=False, points_per_side=8, pred_iou_thresh=0.0, stability_score_thresh=0.0)
        stop.set()
        sampler.join()
        samples.append((time.perf_counter() - start_wall, rows_written(), driver.memory_info().rss))
        result = {"rows": summary.done, "failed": summary.failed, "wall": time.perf_counter() - start_wall, "samples": samples}
    ray.shutdown()
    return result


def run_child(args, **overrides) -> dict:
    command = [sys.executable, __file__, "--child"]
    for key, value in {**vars(args), **overrides}.items():
        if key in ("child", "quick") or value is None:
            continue
        command += [f"--{key.replace('_', '-')}", str(value)]
    output = subprocess.run(command, capture_output=True, text=True, check=False)
    if output.returncode != 0:
        raise RuntimeError(output.stderr[-3000:])
    return json.loads(output.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--model", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--images", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--points-per-side", type=int, default=16, help="AMG grid of the throughput runs (default 16: a quarter of Meta's 32x32 decoder work)")
    parser.add_argument("--repeat", type=int, default=1, help="copies of the 4 sample images (default 1)")
    parser.add_argument("--rows", type=int, default=2000, help="rows of the driver-memory run (default 2000)")
    parser.add_argument("--batch-size", type=int, default=8, help="rows per batch / part file of the driver-memory run (default 8)")
    parser.add_argument("--quick", action="store_true", help="tiny model and 40 rows: a smoke run")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0

    from sam2_pipelines import testing
    from benchmarks.amg_benchmark import build_model_dir

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = build_model_dir(tmp / "model", quick=args.quick)
        tiny = testing.save_tiny_model(tmp / "tiny", "image")
        images = tmp / "images"
        write_sample_images(images, args.repeat)
        shared = dict(model=str(model), images=str(images))
        rows = []
        loop = run_child(args, mode="loop", **shared)
        rows.append(("pipeline loop, 1 process x 2 threads", loop))
        for workers in (1, 2):
            result = run_child(args, mode="ray", workers=workers, out=str(tmp / f"ray{workers}"), **shared)
            rows.append((f"Ray Data, {workers} worker{'s' if workers > 1 else ''} x {2 // workers} thread{'s' if workers == 1 else ''}", result))
        print(f"\nAutomatic masks, {loop['images']} images (truck.jpg, groceries.jpg and mirrors), points_per_side={args.points_per_side}, "
              f"{'tiny' if args.quick else 'full-size random SAM 2.1 hiera-tiny'}")
        print("| run | wall s | images/s | CPU s | vs loop |")
        print("|---|---|---|---|---|")
        for name, result in rows:
            print(f"| {name} | {result['wall']:.1f} | {result['images'] / result['wall']:.3f} | {result['cpu']:.1f} | {loop['wall'] / result['wall']:.2f}x |")

        count = 40 if args.quick else args.rows
        many = tmp / "many"
        many.mkdir()
        from PIL import Image

        for i in range(count):
            Image.fromarray(testing.synthetic_image(96, 128, seed=i % 50)).save(many / f"{i:05d}.png")
        rss = run_child(args, mode="rss", model=str(tiny), images=str(many), out=str(tmp / "rss"))
        samples = rss["samples"]
        mib = lambda value: value / 2**20  # noqa: E731
        print(f"\nDriver RSS over a {rss['rows']}-row run (tiny model, 2 workers x 1 thread, batches of up to {args.batch_size} rows), {rss['wall']:.0f} s")
        print("| rows written (time) | driver RSS MiB |")
        print("|---|---|")
        for fraction in (0.1, 0.25, 0.5, 0.75, 1.0):
            sample = next((s for s in samples if s[1] >= fraction * rss["rows"]), samples[-1])
            print(f"| {sample[1]} ({sample[0]:.0f} s) | {mib(sample[2]):.0f} |")
        working = [s[2] for s in samples if s[1] > 0]
        print(f"peak {mib(max(s[2] for s in samples)):.0f} MiB; while writing: min {mib(min(working)):.0f}, max {mib(max(working)):.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
