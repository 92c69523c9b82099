"""The ``sam2-pipelines`` command: masks for images, tracking in videos, checkpoint conversion.

Usage::

    sam2-pipelines generate-masks photo.jpg other.png --out masks/
    sam2-pipelines track clip.mp4 --frame 0 --obj 1 --point 210,350 --obj 2 --box 300,0,500,400 --out tracks/
    sam2-pipelines batch masks photos/ --out masks/ --workers 2      # Ray Data: durable, resumable part files
    sam2-pipelines convert sam2.1_hiera_tiny.pt sam2.1-hiera-tiny/
    sam2-pipelines serve --model sam2.1_hiera_tiny.pt

``generate-masks`` writes, per image, ``<stem>.json`` (COCO RLE records) and ``<stem>_overlay.png``; with
``--text CONCEPT`` (SAM 3's ``Sam3Model``) the records are the instances of the concept.
``track`` writes ``masks/<frame>.png`` (palette PNGs, pixel value = object id), ``overlay.mp4`` and
``tracks.json`` (per-frame object ids, COCO RLE masks and scores). ``batch masks`` / ``batch track`` run whole
datasets on Ray Data (docs/datasets.md). ``serve`` serves the Gradio demo.
Every model-running subcommand accepts
``--model``, ``--device``, ``--dtype`` and ``--no-progress``. Bad arguments exit with status 2 and a
message saying what is accepted; failures while running exit with status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from sam2_pipelines.io.exports import json_ready
from sam2_pipelines.launch import CommandError, ModelNotFoundError, UsageError, load_pipeline, model_not_found_message  # noqa: F401
from sam2_pipelines.models.loading import DEFAULT_MODEL
from sam2_pipelines.image.options import AMG_DEFAULTS, TextOptions
from sam2_pipelines.image.text import is_text_model
from sam2_pipelines.core.validation import DIRECTIONS, FRAME_RESIZES
DTYPES = ("float32", "float16", "bfloat16")


def _parse_pair_list(text: str, name: str, lengths: tuple[int, ...]) -> list[float]:
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = None
    if values is None or len(values) not in lengths:
        raise argparse.ArgumentTypeError(f"{name} must be {' or '.join(FORMATS[name])}, got {text!r}")
    return values


FORMATS = {"--point": ("X,Y", "X,Y,LABEL (LABEL 1 = positive, 0 = negative)"), "--box": ("X0,Y0,X1,Y1",)}


def point_arg(text: str) -> tuple[list[float], int]:
    """Parse ``X,Y`` or ``X,Y,LABEL`` (label 1 positive, 0 negative) into ``([x, y], label)``."""
    values = _parse_pair_list(text, "--point", (2, 3))
    label = 1 if len(values) == 2 else values[2]
    if label not in (0, 1):
        raise argparse.ArgumentTypeError(f"--point label must be 1 (positive) or 0 (negative), got {text!r}")
    return [values[0], values[1]], int(label)


def box_arg(text: str) -> list[float]:
    """Parse ``X0,Y0,X1,Y1`` into a box (top-left and bottom-right corners, pixels)."""
    box = _parse_pair_list(text, "--box", (4,))
    if box[2] < box[0] or box[3] < box[1]:
        raise argparse.ArgumentTypeError(f"--box must have X1 >= X0 and Y1 >= Y0, got {text!r}")
    return box


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _unit_float(text: str) -> float:
    """A number in [0, 1], written as a decimal (``0.34``) or a fraction (``512/1500``, as the help shows defaults)."""
    try:
        numerator, _, denominator = text.partition("/")
        value = float(numerator) / float(denominator) if denominator else float(text)
    except (ValueError, ZeroDivisionError):
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1 (e.g. 0.5 or 512/1500), got {text!r}")
    return value


class _PromptAction(argparse.Action):
    """Record ``--frame``/``--obj``/``--point``/``--box`` in command-line order, so they can be grouped."""

    def __call__(self, parser, namespace, values, option_string=None):
        tokens = getattr(namespace, "prompt_tokens", None) or []
        tokens.append((self.dest, values))
        namespace.prompt_tokens = tokens


def prompts_from_tokens(tokens) -> list[dict]:
    """Group ordered ``(kind, value)`` tokens into tracker prompts.

    ``--frame N`` and ``--obj ID`` set the current frame (default 0) and object (default 1); each
    ``--point`` adds a point and each ``--box`` sets the box of the current (frame, object) pair; each
    ``--text`` adds a concept looked for from the current frame on (text trackers).
    Returns ``[{"frame", "obj_id", "points", "labels"} and/or "box"]`` and ``[{"frame", "text": [...]}]``, in
    first-mention order.
    """
    frame, obj_id = 0, 1
    groups: dict[tuple, dict] = {}
    for kind, value in tokens:
        if kind == "frame":
            frame = value
        elif kind == "obj":
            obj_id = value
        elif kind == "text":
            groups.setdefault(("text", frame), {"frame": frame, "text": []})["text"].append(value)
        else:
            group = groups.setdefault((frame, obj_id), {"frame": frame, "obj_id": obj_id})
            if kind == "point":
                group.setdefault("points", []).append(value[0])
                group.setdefault("labels", []).append(value[1])
            else:
                if "box" in group:
                    raise ValueError(f"object {obj_id} got two --box prompts on frame {frame}; give at most one box per object and frame")
                group["box"] = value
    return list(groups.values())


#: ``generate-masks`` options: the mask-generation option each sets -> (argument type, help). Defaults are
#: the pipeline's (``AMG_DEFAULTS``); ``bool`` options are flags.
AMG_ARGUMENTS = {
    "points_per_side": (_positive_int, "grid of point prompts per side"),
    "points_per_batch": (_positive_int, "point prompts run together"),
    "pred_iou_thresh": (_unit_float, "minimum predicted IoU"),
    "stability_score_thresh": (_unit_float, "minimum stability score"),
    "box_nms_thresh": (_unit_float, "NMS IoU threshold between masks"),
    "crop_n_layers": (_non_negative_int, "layers of image crops"),
    "min_mask_region_area": (_non_negative_int, "remove holes/islands smaller than this"),
    "stability_score_offset": (float, "logit offset of the stability score"),
    "mask_threshold": (float, "logit threshold of the masks"),
    "crop_nms_thresh": (_unit_float, "NMS IoU threshold across crops"),
    "crop_overlap_ratio": (_unit_float, "overlap of neighbouring crops"),
    "crop_n_points_downscale_factor": (_positive_int, "grid downscale per crop layer"),
    "use_m2m": (bool, "refine each mask with its own low-resolution mask (Meta's m2m)"),
}


def _add_amg_arguments(parser) -> None:
    """The automatic-mask options (:data:`AMG_ARGUMENTS`) and ``--text`` / ``--score-threshold`` of a subcommand."""
    for name, (kind, text) in AMG_ARGUMENTS.items():
        flag, default = f"--{name.replace('_', '-')}", AMG_DEFAULTS[name]
        if kind is bool:
            parser.add_argument(flag, action="store_true", help=text)
        else:
            parser.add_argument(flag, type=kind, default=default, help=f"{text} (default: {default:g})")
    parser.add_argument("--text", action="append", default=None, metavar="CONCEPT",
                        help="segment every instance of CONCEPT instead of everything (SAM 3's Sam3Model); repeat for several concepts")
    parser.add_argument("--score-threshold", type=_unit_float, default=None,
                        help=f"with --text: minimum detection score of an instance (default: {TextOptions.score_threshold:g})")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``sam2-pipelines`` (exposed for documentation and tests)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", default=DEFAULT_MODEL, help=f"Hub id, save_pretrained directory or Meta .pt checkpoint (default: {DEFAULT_MODEL})")
    common.add_argument("--device", default=None, help="torch device, e.g. cpu, cuda, cuda:1, mps (default: cuda if available, else cpu)")
    common.add_argument("--dtype", default="float32", choices=DTYPES, help="model weights dtype (default: float32)")
    common.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")

    parser = argparse.ArgumentParser(prog="sam2-pipelines", description="SAM 2 mask generation and video object tracking.")
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    gen = commands.add_parser("generate-masks", parents=[common], help="automatic masks for images (COCO RLE JSON + overlay PNG)",
                              description="Automatic mask generation: writes <stem>.json (COCO RLE records) and <stem>_overlay.png per image.")
    gen.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    gen.add_argument("--out", required=True, type=Path, help="output directory (created if missing)")
    _add_amg_arguments(gen)

    track = commands.add_parser("track", parents=[common], help="track prompted objects through a video (palette PNGs + overlay mp4 + JSON)",
                                description="Video object tracking. --frame and --obj set the frame and object that the following "
                                "--point/--box prompts belong to (defaults: frame 0, object 1).")
    track.add_argument("video", metavar="VIDEO", help="video file (mp4, ...) or a folder of frames")
    track.add_argument("--point", dest="point", type=point_arg, action=_PromptAction, metavar="X,Y[,LABEL]", help="a click (LABEL 1 positive, default; 0 negative)")
    track.add_argument("--box", dest="box", type=box_arg, action=_PromptAction, metavar="X0,Y0,X1,Y1", help="a box around the object")
    track.add_argument("--text", dest="text", action=_PromptAction, metavar="CONCEPT",
                       help="track every instance of CONCEPT from the current --frame on (SAM 3's Sam3VideoModel, e.g. --model facebook/sam3); repeat for several")
    track.add_argument("--frame", dest="frame", type=_non_negative_int, action=_PromptAction, metavar="N", help="frame of the following prompts")
    track.add_argument("--obj", dest="obj", type=_non_negative_int, action=_PromptAction, metavar="ID", help="object id of the following prompts")
    track.add_argument("--out", required=True, type=Path, help="output directory (created if missing)")
    track.add_argument("--direction", default="forward", choices=DIRECTIONS, help="propagation direction (default: forward)")
    track.add_argument("--start-frame", type=_non_negative_int, default=None, help="frame to start propagating from (default: first prompted frame)")
    track.add_argument("--max-frames", type=_positive_int, default=None, help="propagate over at most this many frames")
    track.add_argument("--fps", type=_positive_float, default=None, help="frame rate of overlay.mp4, > 0 (default: the video's)")
    track.add_argument("--frame-resize", default=None, choices=FRAME_RESIZES,
                       help="frame preprocessing: bicubic = Meta's SAM2VideoPredictor (default for click trackers), "
                       "bilinear = transformers' video processor (default for text trackers)")

    batch = commands.add_parser("batch", help="masks or tracks for a whole dataset on Ray Data (durable, resumable Parquet/JSON lines)",
                                description="Batch runs on Ray Data: the model is loaded once per worker, results are written "
                                "per batch as part files under --out, and running the same command again skips what is there.")
    jobs = batch.add_subparsers(dest="job", metavar="JOB", required=True)
    engine = argparse.ArgumentParser(add_help=False)
    engine.add_argument("source", metavar="SOURCE", help="a folder, a .txt file of paths, a .parquet or .jsonl file of rows")
    engine.add_argument("--out", required=True, type=Path, help="output folder of part files (created if missing; rows already there are skipped)")
    engine.add_argument("--address", default=None, help="Ray cluster to join (e.g. auto, or ray://host:10001; default: RAY_ADDRESS, else a local cluster)")
    engine.add_argument("--workers", type=_positive_int, default=1, help="model workers (Ray actors; each loads the model once; default: 1)")
    engine.add_argument("--cpus-per-worker", type=_positive_float, default=1, help="CPUs (torch threads) per worker (default: 1)")
    engine.add_argument("--gpus-per-worker", type=_non_negative_float, default=0, help="GPUs per worker, e.g. 1 or 0.5 (default: 0)")
    engine.add_argument("--batch-size", type=_positive_int, default=None, help="rows per batch and per part file (default: 8 images, 1 video)")
    engine.add_argument("--output-format", default="parquet", choices=("parquet", "jsonl"), help="part file format (default: parquet)")
    engine.add_argument("--max-retries", type=_non_negative_int, default=3, help="restarts of a dead worker before the run fails (default: 3)")
    masks = jobs.add_parser("masks", parents=[common, engine], help="automatic masks (COCO RLE records) for every image",
                            description="Automatic mask generation for every image of SOURCE (a folder of images, a .txt file "
                            "of paths, or a .parquet/.jsonl file of rows with id and image).")
    _add_amg_arguments(masks)
    tracks = jobs.add_parser("track", parents=[common, engine], help="track prompted objects through every video",
                             description="Video tracking for every video of SOURCE (a folder of videos, a .txt file of paths, "
                             "or a .parquet/.jsonl file of rows with id, video, prompts and per-video options).")
    tracks.add_argument("--prompts", default=None, metavar="JSON", help='prompts for rows without their own, e.g. \'[{"frame": 0, "obj_id": 1, "points": [[210, 350]], "labels": [1]}]\'')
    tracks.add_argument("--direction", default=None, choices=DIRECTIONS, help="propagation direction (default: forward)")
    tracks.add_argument("--max-frames", type=_positive_int, default=None, help="propagate over at most this many frames")
    tracks.add_argument("--frame-batch-size", type=_positive_int, default=1, help="frames per image-encoder pass (default: 1)")

    serve_parser = commands.add_parser("serve", parents=[common], help="serve the Gradio demo (click to segment, video tracking)",
                                       description="Serve the Gradio demo. Both models are loaded before serving, so a model "
                                       "that cannot be found is reported at once.")
    serve_parser.add_argument("--video-model", default=None, help="model of the video tab (default: --model)")
    serve_parser.add_argument("--video-sessions", type=_positive_int, default=4,
                              help="tracking sessions held for all visitors together; beyond it the least recently used visitor's "
                              "expires (default: 4)")
    serve_parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve_parser.add_argument("--port", type=_positive_int, default=7860, help="port to listen on (default: 7860)")

    conv = commands.add_parser("convert", help="convert a Meta SAM 2 .pt checkpoint to a save_pretrained directory",
                               description="Convert a checkpoint of Meta's SAM 2 release into a transformers directory.")
    conv.add_argument("checkpoint", metavar="CKPT", type=Path, help="Meta .pt checkpoint")
    conv.add_argument("output_dir", metavar="OUTDIR", type=Path, help="directory to write (save_pretrained layout)")
    conv.add_argument("--kind", default="video", choices=("image", "video"),
                      help="video (default; the directory then serves both tasks) or image (Sam2Model only)")
    conv.add_argument("--size", default=None, help="Hiera size (tiny, small, base_plus, large; default: detected from the weights)")
    return parser


def _version() -> str:
    from sam2_pipelines import __version__

    return f"sam2-pipelines {__version__}"


def _tqdm(iterable, enabled: bool, **kwargs):
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=not enabled, **kwargs)


def mask_options(args) -> dict:
    """The mask-generation options of ``generate-masks`` / ``batch masks`` (COCO RLE output); UsageError for a bad mix."""
    if args.text:
        automatic = [f"--{name.replace('_', '-')}" for name in AMG_ARGUMENTS if name != "mask_threshold" and getattr(args, name) != AMG_DEFAULTS[name]]
        if automatic:
            raise UsageError(f"{', '.join(automatic)} set automatic mask generation, which --text replaces; give one or the other")
        score_threshold = TextOptions.score_threshold if args.score_threshold is None else args.score_threshold
        return {"text": args.text, "score_threshold": score_threshold, "mask_threshold": args.mask_threshold, "output_mode": "coco_rle"}
    if args.score_threshold is not None:
        raise UsageError("--score-threshold applies with --text only")
    return {**{name: getattr(args, name) for name in AMG_ARGUMENTS}, "output_mode": "coco_rle"}


def generate_masks(args) -> int:
    """Run ``generate-masks``: one JSON and one overlay PNG per image in ``args.out``."""
    from PIL import Image

    from sam2_pipelines.core.images import check_image_file, read_image_file
    from sam2_pipelines.io.visualize import overlay_records

    options = mask_options(args)
    paths = [Path(p) for p in args.images]
    for path in paths:  # every image checked before any work; each is decoded when its turn comes
        if not path.is_file():
            raise CommandError(f"image not found: {path}")
        check_image_file(path)
    names = output_names(paths)
    _check_out_dir(args.out)
    _refuse_foreign_outputs([p for path in paths for p in (args.out / f"{names[path]}.json", args.out / f"{names[path]}_overlay.png")])
    generator = load_pipeline("mask-generation", args.model, args.device, args.dtype, args.progress)
    if args.text and not is_text_model(generator.model):
        raise CommandError(f"--text needs SAM 3's text model (Sam3Model); {args.model} is a {type(generator.model).__name__}")
    args.out.mkdir(parents=True, exist_ok=True)
    keywords = {"text": args.text} if args.text else {"progress": args.progress}
    for path in _tqdm(paths, args.progress and len(paths) > 1, desc="images", unit="image"):
        image = read_image_file(path)  # EXIF orientation applied: sizes, masks and overlays agree
        output = generator(image, **keywords, **{k: v for k, v in options.items() if k != "text"})
        records = output["records"]
        document = {
            "image": {"file_name": path.name, "height": image.shape[0], "width": image.shape[1]},
            "model": args.model,
            "options": options,
            "annotations": [json_ready(record) for record in records],
        }
        json_path, overlay_path = args.out / f"{names[path]}.json", args.out / f"{names[path]}_overlay.png"
        json_path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(json_path, lambda target: target.write_text(json.dumps(document)))
        _write_atomically(overlay_path, lambda target: Image.fromarray(overlay_records(image, records)).save(target, format="PNG", pnginfo=_made_here()))
        print(f"{path}: {len(records)} masks -> {json_path}, {overlay_path}")
    return 0


#: The tag ``generate-masks`` writes into its overlay PNGs: a file without it is not ours to replace.
MADE_BY = ("Software", "sam2-pipelines generate-masks")


def _made_here():
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(*MADE_BY)
    return info


def _is_ours(path: Path) -> bool:
    """Whether ``path`` is an output of an earlier ``generate-masks`` run (so a rerun may replace it)."""
    try:
        if path.suffix == ".json":
            document = json.loads(path.read_text())
            return isinstance(document, dict) and {"image", "model", "options", "annotations"} <= set(document)
        from PIL import Image

        with Image.open(path) as image:
            return image.info.get(MADE_BY[0]) == MADE_BY[1]
    except (OSError, ValueError, SyntaxError):
        return False


def _refuse_foreign_outputs(paths: list[Path]) -> None:
    """Refuse to overwrite files this command did not write (e.g. --out pointed at the images' own folder)."""
    foreign = [p for p in paths if p.exists() and (not p.is_file() or not _is_ours(p))]
    if foreign:
        shown = ", ".join(str(p) for p in foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise UsageError(f"--out already holds {shown}, which generate-masks did not write; it never overwrites other files: pick another --out or move them")


def output_names(paths: list[Path]) -> dict[Path, str]:
    """Output name (without suffix) per input image, unique within one run.

    Images of one folder keep their stem (``photo.jpg`` -> ``photo``); images from several folders keep
    their path below the folders' common parent (``a/img.png`` -> ``a/img``, ``b/img.jpg`` -> ``b/img``).
    Two inputs that would still share a name (``img.png`` and ``img.jpg`` side by side, or one file given
    twice) are an error before any work, never a silent overwrite.
    """
    resolved = {path: path.resolve() for path in paths}
    parents = {r.parent for r in resolved.values()}
    base = Path(os.path.commonpath([str(p) for p in parents])) if len(parents) > 1 else None
    names: dict[Path, str] = {}
    seen: dict[str, Path] = {}
    for path, full in resolved.items():
        name = full.stem if base is None else full.relative_to(base).with_suffix("").as_posix()
        if name in seen:
            raise UsageError(
                f"{seen[name]} and {path} would both be written as {name}.json in --out; give each image once and "
                "rename images that differ only in their extension"
            )
        seen[name] = path
        names[path] = name
    return names


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out must be a directory (it is created if missing); {out} is a file")


def _write_atomically(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename: no partial output file on failure."""
    temporary = path.with_name(f".{path.name}.partial")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


#: What ``track`` writes into ``--out`` (each replaced whole, after everything was written).
TRACK_OUTPUTS = ("masks", "overlay.mp4", "tracks.json")


def track(args) -> int:
    """Run ``track``: palette PNGs, ``overlay.mp4`` and ``tracks.json`` in ``args.out``.

    Each frame's outputs are written as soon as the tracker gives its result (memory stays flat in the video's
    length), into a staging folder inside ``--out``; they replace the outputs of an earlier run only once all
    are written, and a failure or an interrupt leaves none behind.
    """
    from sam2_pipelines.io import video as video_io
    from sam2_pipelines.io.track_outputs import TrackOutputs

    tokens = getattr(args, "prompt_tokens", None) or []
    try:
        prompts = prompts_from_tokens(tokens)
    except ValueError as error:
        raise UsageError(str(error)) from error
    if not prompts:
        raise UsageError("track needs at least one --point, --box or --text prompt")
    texts = [p for p in prompts if "text" in p]
    if texts and len(texts) != len(prompts):
        raise UsageError("--text cannot be combined with --point/--box: text is tracked by SAM 3's Sam3VideoModel, clicks and boxes by the other trackers")
    if texts and any(kind == "obj" for kind, _ in tokens):
        raise UsageError("--obj applies to --point/--box; with --text every instance gets its own id")
    if not os.path.exists(args.video):
        raise CommandError(f"video not found: {args.video}")
    _check_out_dir(args.out)
    for name in TRACK_OUTPUTS[1:]:
        if (args.out / name).is_dir():
            raise UsageError(f"{args.out / name} is a folder; track writes a file there (move it or pick another --out)")
    tracker = load_pipeline("video-object-tracking", args.model, args.device, args.dtype, args.progress)
    video = video_io.open_video(args.video)
    results, staging, created = None, None, not args.out.exists()
    try:
        results = tracker(  # a generator: arguments and prompts are checked now, frames tracked as it is read
            video,
            prompts=prompts,
            direction=args.direction,
            start_frame=args.start_frame,
            max_frames=args.max_frames,
            progress=args.progress,
            stream=True,
            **({} if args.frame_resize is None else {"frame_resize": args.frame_resize}),
        )
        args.out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".track-partial-", dir=args.out))  # nothing final until all is written
        ids: set[int] = set()
        with TrackOutputs(staging, {"video": str(args.video), "model": args.model, "prompts": prompts}, (video.height, video.width)) as outputs:
            for result in results:
                outputs.add(result)
                ids.update(int(i) for i in result["object_ids"])
            count = outputs.finish(video, fps=args.fps)
        for name in TRACK_OUTPUTS:  # replace the outputs of an earlier run into the same folder
            target = args.out / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(staging / name, target)
    finally:
        if results is not None:
            results.close()  # the tracking session, also when writing failed half-way
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if created and args.out.is_dir() and not any(args.out.iterdir()):
            args.out.rmdir()  # a failed run leaves no empty --out it made
        video.close()
    print(f"{args.video}: {count} frames, objects {sorted(ids)} -> {args.out}")
    return 0


def convert(args) -> int:
    """Run ``convert``: a Meta checkpoint into a ``save_pretrained`` directory."""
    from sam2_pipelines.models.convert import convert_checkpoint

    if not args.checkpoint.is_file():
        raise CommandError(f"checkpoint not found: {args.checkpoint}")
    output = convert_checkpoint(args.checkpoint, args.output_dir, kind=args.kind, size=args.size)
    print(f"{args.checkpoint} -> {output or args.output_dir}")
    return 0


def batch(args) -> int:
    """Run ``batch masks`` / ``batch track`` on Ray Data: part files under ``args.out``, then the summary."""
    try:
        import ray
        from sam2_pipelines.distributed import ray as engine
    except ImportError:
        raise CommandError('batch needs Ray Data: pip install "sam2-pipelines[ray]"') from None
    common = {"workers": args.workers, "cpus_per_worker": args.cpus_per_worker, "gpus_per_worker": args.gpus_per_worker,
              "batch_size": args.batch_size, "output_format": args.output_format, "device": args.device, "dtype": args.dtype,
              "max_retries": args.max_retries, "progress": args.progress}
    if args.job == "masks":
        options = mask_options(args)
    else:
        options = {name: getattr(args, name) for name in ("direction", "max_frames") if getattr(args, name) is not None}
        try:
            prompts = None if args.prompts is None else json.loads(args.prompts)
        except json.JSONDecodeError as error:
            raise UsageError(f"--prompts must be JSON (a list of prompt dicts): {error}") from None
    source = args.source
    if not os.path.exists(source):
        raise CommandError(f"source not found: {source}")
    ray.init(address=args.address, log_to_driver=args.progress)
    try:
        if args.job == "masks":
            summary = engine.generate_masks(source, args.out, args.model, **common, **options)
        else:
            summary = engine.track_videos(source, args.out, args.model, prompts=prompts, frame_batch_size=args.frame_batch_size, **common, **options)
    finally:
        ray.shutdown()
    print(f"{args.source}: {summary}")
    return 0


def serve(args) -> int:
    """Run ``serve``: load both demo models (errors reported now, not at the first click), then serve the app."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise CommandError("serve needs the demo extra: pip install 'sam2-pipelines[demo]'") from None
    from sam2_pipelines.demo.app import DemoModels, build_demo, theme

    models = DemoModels(args.model, args.video_model, args.device, args.video_sessions)
    models.generator()
    models.tracker()
    demo = build_demo(models)
    demo.queue().launch(server_name=args.host, server_port=args.port, share=False, ssr_mode=False, theme=theme(), footer_links=[])
    return 0


COMMANDS = {"generate-masks": generate_masks, "track": track, "batch": batch, "convert": convert, "serve": serve}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sam2-pipelines`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        return COMMANDS[args.command](args)
    except UsageError as error:
        print(f"sam2-pipelines {args.command}: error: {error}", file=sys.stderr)
        return 2
    except CommandError as error:
        print(f"sam2-pipelines {args.command}: error: {error}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as error:  # a read-only or full disk, a file where a folder goes, ...
        detail = f"{error.strerror}: {error.filename}" if isinstance(error, OSError) and error.strerror and error.filename else str(error)
        print(f"sam2-pipelines {args.command}: error: {detail}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
