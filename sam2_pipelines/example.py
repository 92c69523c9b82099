"""The main job: automatic masks on a sample image and tracking on a sample video, written to ``--out``.

Run it with ``./run.sh example [--model M] [--out DIR]`` (or ``python -m sam2_pipelines.example``).
The sample media are synthetic (:mod:`sam2_pipelines.testing`): an image with a few flat shapes and a
short clip of a square moving right. Outputs in ``--out`` (default ``outputs/``):

* ``sample_image.png`` and ``image/sample_image.json`` (COCO RLE records), ``image/sample_image_overlay.png``;
* ``sample_video.mp4`` and ``video/masks/*.png`` (palette PNGs), ``video/overlay.mp4``, ``video/tracks.json``.

``--model`` is a Hub id (default ``facebook/sam2.1-hiera-tiny``), a ``save_pretrained`` directory or a
Meta ``.pt`` checkpoint; ``--video-model`` overrides it for tracking. When the model cannot be loaded the
command prints one paragraph saying how to point at local weights, and exits with status 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import cli

#: Size of the sample image and of the sample video's frames.
IMAGE_SIZE = (480, 640)
VIDEO_SIZE = (240, 320)
VIDEO_FRAMES = 24


def write_samples(out: Path) -> tuple[Path, Path, list[str]]:
    """Write the sample image and video into ``out``; return their paths and the track prompts (CLI form)."""
    from PIL import Image

    from .testing import synthetic_image, synthetic_video

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
    parser.add_argument("--model", default=cli.DEFAULT_MODEL, help=f"Hub id, save_pretrained directory or Meta .pt (default: {cli.DEFAULT_MODEL})")
    parser.add_argument("--video-model", default=None, help="model for tracking (default: --model)")
    parser.add_argument("--out", default=Path("outputs"), type=Path, help="output directory (default: outputs/)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--points-per-side", default="32", help="automatic-mask grid per side (default: 32)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
    args = parser.parse_args(argv)

    image_path, video_path, prompts = write_samples(args.out)
    common = ["--model", args.model] + (["--device", args.device] if args.device else []) + ([] if args.progress else ["--no-progress"])
    video_common = common.copy()
    if args.video_model:
        video_common[1] = args.video_model
    jobs = [
        ["generate-masks", str(image_path), "--out", str(args.out / "image"), "--points-per-side", args.points_per_side, *common],
        ["track", str(video_path), *prompts, "--out", str(args.out / "video"), *video_common],
    ]
    parser = cli.build_parser()
    for job in jobs:
        parsed = parser.parse_args(job)
        try:
            cli.COMMANDS[parsed.command](parsed)
        except cli.CommandError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    print(f"outputs written to {args.out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
