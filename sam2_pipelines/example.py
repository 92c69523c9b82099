"""The main job: automatic masks on a sample image and tracking on a sample video, written to ``--out``.

Run it with ``./run.sh example [--model M] [--out DIR]`` (or ``python -m sam2_pipelines.example``).
The sample media are synthetic (:mod:`sam2_pipelines.testing`): an image with a few flat shapes and a
short clip of a square moving right. Outputs in ``--out`` (default ``outputs/``):

* ``sample_image.png`` and ``image/sample_image.json`` (COCO RLE records), ``image/sample_image_overlay.png``;
* ``sample_video.mp4`` and ``video/masks/*.png`` (palette PNGs), ``video/overlay.mp4``, ``video/tracks.json``.

``--model`` is a Hub id (default ``facebook/sam2.1-hiera-tiny``), a ``save_pretrained`` directory or a
Meta ``.pt`` checkpoint; ``--video-model`` overrides it for tracking.

When no ``--model`` is given and the default model cannot be reached (no network, not cached), the
example says so and still runs end to end, on a randomly initialised full-size SAM 2.1 hiera-tiny built
locally (no download): outputs go to ``image-random-weights/`` and ``video-random-weights/``, and the
summary says the masks are meaningless and how to point ``--model`` at real weights (exit status 0).
A ``--model`` that cannot be loaded prints one paragraph saying how to point at local weights (status 1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sam2_pipelines import cli
from sam2_pipelines.models import families

#: Size of the sample image and of the sample video's frames.
IMAGE_SIZE = (480, 640)
VIDEO_SIZE = (240, 320)
VIDEO_FRAMES = 24


def write_samples(out: Path) -> tuple[Path, Path, list[str]]:
    """Write the sample image and video into ``out``; return their paths and the track prompts (CLI form)."""
    from PIL import Image

    from sam2_pipelines.testing import synthetic_image, synthetic_video

    out.mkdir(parents=True, exist_ok=True)
    image_path = out / "sample_image.png"
    Image.fromarray(synthetic_image(*IMAGE_SIZE)).save(image_path)
    video_path = synthetic_video(out / "sample_video.mp4", num_frames=VIDEO_FRAMES, height=VIDEO_SIZE[0], width=VIDEO_SIZE[1])
    # The square starts at the left edge, vertically centred, with side min(H, W) // 4: click its middle.
    side = min(VIDEO_SIZE) // 4
    prompts = ["--frame", "0", "--obj", "1", "--point", f"{side // 2},{VIDEO_SIZE[0] // 2}"]
    return image_path, video_path, prompts


def main(argv: list[str] | None = None) -> int:
    """Run the example; returns the exit status (0 on success, 1 when the model cannot be loaded, 2 on bad arguments)."""
    parser = argparse.ArgumentParser(prog="sam2_pipelines.example", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help=f"Hub id, save_pretrained directory or Meta .pt (default: {cli.DEFAULT_MODEL})")
    parser.add_argument("--video-model", default=None, help="model for tracking (default: --model)")
    parser.add_argument("--out", default=Path("outputs"), type=Path, help="output directory (default: outputs/)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--points-per-side", default="32", help="automatic-mask grid per side (default: 32)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
    args = parser.parse_args(argv)

    image_path, video_path, prompts = write_samples(args.out)
    model = args.model or cli.DEFAULT_MODEL
    try:
        run_jobs(args, image_path, video_path, prompts, model, args.video_model or model, suffix="")
    except cli.ModelNotFoundError as error:
        if args.model is not None or args.video_model is not None:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(
            f"The default model {cli.DEFAULT_MODEL!r} cannot be reached (no network access to the Hub and not in the local "
            "cache). Running the whole example anyway on a randomly initialised full-size SAM 2.1 hiera-tiny built "
            "locally, so every step runs end to end; its masks are meaningless.",
            file=sys.stderr,
        )
        random_model = random_weights_model(args.out / "random-weights-model")
        try:
            run_jobs(args, image_path, video_path, prompts, str(random_model), str(random_model), suffix="-random-weights")
        except cli.CommandError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(f"outputs written to {args.out.resolve()} (image-random-weights/, video-random-weights/)")
        print(
            "NOTE: these masks come from random weights and are meaningless. For real masks run with --model pointing "
            f"at real weights: a Hub id ({cli.DEFAULT_MODEL}, needs network access), a save_pretrained directory, or a "
            "Meta checkpoint such as sam2.1_hiera_tiny.pt."
        )
        return 0
    except cli.CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"outputs written to {args.out.resolve()}")
    return 0


def run_jobs(args, image_path: Path, video_path: Path, prompts: list[str], model: str, video_model: str, suffix: str) -> None:
    """Mask generation on the sample image and tracking on the sample video, into ``image{suffix}`` / ``video{suffix}``."""
    device = ["--device", args.device] if args.device else []
    quiet = [] if args.progress else ["--no-progress"]
    jobs = [
        ["generate-masks", str(image_path), "--out", str(args.out / f"image{suffix}"), "--points-per-side", args.points_per_side,
         "--model", model, *device, *quiet],
        ["track", str(video_path), *prompts, "--out", str(args.out / f"video{suffix}"), "--model", video_model, *device, *quiet],
    ]
    parser = cli.build_parser()
    for job in jobs:
        parsed = parser.parse_args(job)
        status = cli.COMMANDS[parsed.command](parsed)
        if status:
            raise cli.CommandError(f"{parsed.command} exited with status {status}")


def random_weights_model(directory: Path) -> Path:
    """Save a randomly initialised full-size SAM 2.1 hiera-tiny (video model + processor, built locally) in ``directory``.

    One video checkpoint serves both tasks. Nothing is downloaded; the weights are random (seed 0).
    """
    import torch
    import transformers

    from sam2_pipelines.models.convert import SIZES, build_config, build_processor

    torch.manual_seed(0)
    model = getattr(transformers, families.named("sam2").video_class)(build_config(SIZES["tiny"], "video")).eval()
    model.save_pretrained(directory)
    build_processor("video").save_pretrained(directory)
    return directory

if __name__ == "__main__":
    sys.exit(main())
