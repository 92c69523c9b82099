"""Video object tracking side by side: this package vs Meta's ``SAM2VideoPredictor`` vs transformers' session API.

Every contender runs the same weights on the CPU: a randomly initialised Meta SAM 2.1 hiera-tiny (Meta's
``build_sam2_video_predictor``, seed 1, full size, no download) saved as a Meta ``.pt`` checkpoint and converted
with :func:`sam2_pipelines.convert_checkpoint` (``kind="video"``). Each measurement runs in its own fresh
subprocess with ``torch.set_num_threads(--threads)``; times start once the model is loaded and include reading
and preprocessing the video. The contenders:

* ``ours``: ``sam2_pipelines.pipeline("video-object-tracking")``, ``tracker.session(video)``,
  ``session.add_points(...)``, ``session.propagate()`` (reads the mp4 lazily with PyAV);
* ``meta``: ``SAM2VideoPredictor.init_state(video_path=...)``, ``add_new_points_or_box``, ``propagate_in_video``.
  sam2 1.1.0 reads a JPEG folder (PIL, every frame resized to 1024x1024 float32 up front) or, through
  ``decord``, an mp4; decord is not a dependency of sam2 and is usually not installed, so Meta reads a JPEG
  folder here;
* ``transformers``: ``transformers.video_utils.load_video`` (PyAV), ``Sam2VideoProcessor.init_video_session``,
  ``add_inputs_to_inference_session``, ``model(inference_session=..., frame_idx=0)``,
  ``propagate_in_video_iterator`` + ``post_process_masks``;
* ``before`` (with ``--baseline DIR``): this package's pipeline imported from another checkout (e.g.
  ``git worktree add /tmp/before <commit>``), measured in the same run.

What is measured:

1. Steady-state tracking (``--skip steady`` leaves it out), on each clip of ``--clips``:
   ``bedroom`` = the first ``--frames`` frames of ``media/bedroom.mp4`` (960x540) and ``720p`` = the same frames
   resized to 1280x720 (PIL bicubic). One positive click per object on frame 0 (``--objects 1 3``; at (210, 350),
   (600, 300), (800, 150) in 960x540 coordinates, scaled for 720p), then forward propagation over every frame.
   Each clip is given to ours and transformers as each of ``--inputs``: ``jpg`` (the JPEG folder; transformers
   gets its frames as a list of arrays) and ``mp4`` (the lossless mp4 below); Meta reads the JPEG folder for both
   (it reads mp4 only through ``decord``), so it is measured once per clip and object count.
   Reported: total seconds, propagation seconds, fps over the steady-state frames, CPU seconds, peak RSS, and a
   timeline: every contender's seconds per frame, from the click on (frame 0 is the prompted frame).
   Steady-state frames are the frames with index >= ``--warmup-frames`` (default ``num_maskmem`` = 7): their
   memory attention reads a full memory bank (the prompted frame + 6 previous frames). A timestamp is taken as
   each frame's result comes out of the propagation generator; steady fps = steady frames / their summed time.
   To give every contender bit-identical pixels, each clip's frames are written once as a JPEG folder (quality
   95, what Meta reads) and those decoded JPEGs are stored losslessly in an mp4 (H.264 RGB, qp 0: what ours and
   transformers read). Mask agreement: the binary masks at video resolution of every contender are compared
   with ours per frame and object (mean and min IoU; Meta's logits thresholded at 0 after Meta's own resize).
2. Time to first mask on a long video (``--skip first-mask`` leaves it out): a ``--long-frames`` (default 300)
   frame 1280x720 H.264 mp4 (bedroom.mp4 looped and resized; Meta reads a JPEG folder of its decoded frames).
   Time from "model loaded" to the first mask on frame 0 after one click (ours: session creation + add_points;
   Meta: init_state + add_new_points_or_box; transformers: load_video + init_video_session + add inputs + model
   + post_process_masks), and the peak RSS of that process. Meta and transformers preprocess every frame up
   front (300 frames x 3 x 1024x1024 float32 = 3.5 GiB); expect 5-10 GiB free memory for the default.

Random weights score every object of bedroom.mp4 just below "visible" (object-score logits about -0.03), so
their masks are all blank and an IoU of 1 would prove nothing. Every contender therefore adds ``--visible-bias``
(default 2) to the output bias of its object-score head after loading (not timed; the same parameter in Meta's
and the converted model); masks then cover 65-90% of the frame in the runs tried, neither empty nor full, so a
divergence shows in the IoU. The amount of computation does not depend on it. ``--visible-bias 0`` runs the
weights as saved.

``--repeat N`` runs every measurement N times, each in a fresh process, the contenders in turns (ours, meta,
transformers, ours, ...: a slower spell of the machine hits all of them), and keeps the best value of each
timing (peak RSS: the largest). Speed ratios > 1 mean ours is faster; memory ratios < 1 mean ours uses less.

Weights: built in a temporary directory unless given. ``--weights DIR`` reuses ``DIR/meta.pt`` (Meta
checkpoint, ``{"model": state_dict}``) and ``DIR/video/`` (the converted video model: ``config.json``,
``model.safetensors``, ``processor_config.json``) if both exist, else builds them there for the next run.
``--meta-checkpoint PT --converted DIR`` names the two explicitly (they must hold the same weights).

Usage::

    python benchmarks/video_benchmark.py --weights /tmp/fullmodel                     # everything: slow on a small CPU
    python benchmarks/video_benchmark.py --meta-checkpoint /tmp/fullmodel/meta.pt --converted /tmp/fullmodel/video
    python benchmarks/video_benchmark.py --weights /tmp/fullmodel --clips 720p --objects 3 --skip first-mask
    python benchmarks/video_benchmark.py --weights /tmp/fullmodel --baseline /tmp/before --repeat 3 --json out.json
    python benchmarks/video_benchmark.py --frames 3 --objects 1 --long-frames 10 --clips bedroom --warmup-frames 1  # smoke run
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_benchmark import META_CONFIG, ROOT, cpu_seconds, peak_rss_mb, ratio, run_child  # noqa: E402

BEDROOM = ROOT / "media" / "bedroom.mp4"
#: Click of object k+1 on frame 0, in 960x540 (bedroom.mp4) pixel coordinates; scaled for other sizes.
CLICKS = ((210, 350), (600, 300), (800, 150))
#: ``--clips``: name -> (height, width) of the frames.
CLIP_SIZES = {"bedroom": (540, 960), "720p": (720, 1280)}
LONG_SIZE = (720, 1280)
CONTENDERS = ("ours", "meta", "transformers")
#: ``--inputs``: how ours and transformers read a steady-state clip (Meta always reads the JPEG folder).
INPUT_NAMES = {"jpg": "JPEG folder", "mp4": "mp4"}
#: Memories a SAM 2.1 step attends to (``num_maskmem``): the prompted frame + 6 previous frames.
NUM_MASKMEM = 7
JPEG_QUALITY = 95


# --------------------------------------------------------------------------------------------------
# inputs (parent process)
# --------------------------------------------------------------------------------------------------


def build_weights(directory: Path) -> dict:
    """Random Meta SAM 2.1 hiera-tiny (seed 1, as reference_benchmark.prepare) -> ``meta.pt`` + converted ``video/``."""
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    from sam2_pipelines import convert_checkpoint

    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(1)
    meta = build_sam2_video_predictor(META_CONFIG, None, device="cpu")
    checkpoint = directory / "meta.pt"
    torch.save({"model": meta.state_dict()}, checkpoint)
    del meta
    converted = convert_checkpoint(checkpoint, directory / "video", kind="video")
    return {"checkpoint": str(checkpoint), "converted": str(converted)}


def resolve_weights(args, tmp: Path) -> tuple[dict, str]:
    """The Meta checkpoint and converted directory to use, and a description of where they come from."""
    if bool(args.meta_checkpoint) != bool(args.converted):
        raise SystemExit("--meta-checkpoint and --converted go together")
    if args.meta_checkpoint:
        paths = {"checkpoint": str(Path(args.meta_checkpoint).resolve()), "converted": str(Path(args.converted).resolve())}
        return paths, f"weights {paths['checkpoint']} / {paths['converted']}"
    if args.weights:
        directory = Path(args.weights).resolve()
        if (directory / "meta.pt").is_file() and (directory / "video" / "config.json").is_file():
            return {"checkpoint": str(directory / "meta.pt"), "converted": str(directory / "video")}, f"weights reused from {directory}"
        print(f"building random weights in {directory} (reused by later runs with --weights {directory})", flush=True)
        return build_weights(directory), f"random weights (seed 1) built in {directory}"
    return build_weights(tmp / "weights"), "random weights (seed 1)"


def bedroom_frames(count: int, height: int, width: int):
    """Yield ``count`` RGB frames of bedroom.mp4 (looped when it runs out), resized to ``height x width``."""
    import av
    import numpy as np
    from PIL import Image

    produced = 0
    while produced < count:
        with av.open(str(BEDROOM)) as container:
            for frame in container.decode(video=0):
                image = frame.to_image()
                if image.size != (width, height):
                    image = image.resize((width, height), Image.BICUBIC)
                yield np.asarray(image)
                produced += 1
                if produced == count:
                    return


def write_mp4(path: Path, frames, height: int, width: int, lossless: bool) -> None:
    """Write frames as H.264: lossless RGB (libx264rgb, qp 0) or the usual lossy yuv420p."""
    from sam2_pipelines.io.video import encode_h264

    encode_h264(frames, path, 30, lossless=lossless)


def write_jpgs(folder: Path, frames) -> str:
    """RGB frames as a new folder of numbered JPEGs (quality ``JPEG_QUALITY``), the input Meta's predictor reads."""
    from PIL import Image

    folder.mkdir()
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{index:05d}.jpg", quality=JPEG_QUALITY)
    return str(folder)


def make_steady_clip(directory: Path, name: str, count: int) -> dict:
    """JPEG folder (Meta) + lossless mp4 of the decoded JPEGs (ours, transformers): identical pixels for all."""
    import numpy as np
    from PIL import Image

    height, width = CLIP_SIZES[name]
    folder = directory / f"{name}_jpg"
    write_jpgs(folder, bedroom_frames(count, height, width))
    decoded = (np.asarray(Image.open(folder / f"{index:05d}.jpg").convert("RGB")) for index in range(count))
    mp4 = directory / f"{name}.mp4"
    write_mp4(mp4, decoded, height, width, lossless=True)
    return {"mp4": str(mp4), "jpg": str(folder), "height": height, "width": width, "frames": count}


def make_long_clip(directory: Path, count: int) -> dict:
    """A ``count``-frame 1280x720 H.264 mp4 (bedroom.mp4 looped, resized) and a JPEG folder of its decoded frames."""
    import av
    from PIL import Image

    height, width = LONG_SIZE
    mp4 = directory / f"long_{count}.mp4"
    write_mp4(mp4, bedroom_frames(count, height, width), height, width, lossless=False)
    folder = directory / f"long_{count}_jpg"
    folder.mkdir()
    with av.open(str(mp4)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            frame.to_image().save(folder / f"{index:05d}.jpg", quality=JPEG_QUALITY)
    return {"mp4": str(mp4), "jpg": str(folder), "height": height, "width": width, "frames": count}


def clicks(num_objects: int, height: int, width: int) -> list[tuple[int, list[float]]]:
    """``[(obj_id, [x, y])]``: :data:`CLICKS` scaled from 960x540 to ``width x height``."""
    if not 1 <= num_objects <= len(CLICKS):
        raise SystemExit(f"--objects must be between 1 and {len(CLICKS)}")
    return [(k + 1, [x * width / 960, y * height / 540]) for k, (x, y) in enumerate(CLICKS[:num_objects])]


# --------------------------------------------------------------------------------------------------
# measurements (each in a child process)
# --------------------------------------------------------------------------------------------------


def current_rss_mb() -> float:
    """Resident set size of this process right now, in MiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class MaskRecorder:
    """Keeps every frame's binary masks bit-packed (8x smaller than bool) for the IoU comparison."""

    def __init__(self):
        self.frames, self.obj_ids, self.packed, self.shape = [], None, [], None

    def add(self, frame_idx, obj_ids, masks) -> None:
        import numpy as np

        masks = np.asarray(masks, dtype=bool)  # (objects, H, W)
        order = np.argsort(np.asarray(obj_ids))  # by object id, whatever order a contender reports
        self.frames.append(int(frame_idx))
        self.obj_ids = [int(obj_ids[i]) for i in order]
        self.shape = masks.shape[-2:]
        self.packed.append(np.packbits(masks[order], axis=-1))

    def save(self, path: str) -> None:
        import numpy as np

        np.savez(path, frames=np.array(self.frames), obj_ids=np.array(self.obj_ids), packed=np.stack(self.packed),
                 shape=np.array(self.shape))


def load_model(which: str, paths: dict):
    """Load one contender's model (not timed)."""
    if which in ("ours", "before"):  # "before": PYTHONPATH points at the --baseline checkout
        import sam2_pipelines

        return sam2_pipelines.pipeline("video-object-tracking", model=paths["converted"])
    if which == "meta":
        from sam2.build_sam import build_sam2_video_predictor

        return build_sam2_video_predictor(META_CONFIG, paths["checkpoint"], device="cpu")
    from transformers import Sam2VideoModel, Sam2VideoProcessor

    return Sam2VideoModel.from_pretrained(paths["converted"]).eval(), Sam2VideoProcessor.from_pretrained(paths["converted"])


def make_visible(which: str, model, bias: float) -> None:
    """Add ``bias`` to the output bias of the object-score head (the same parameter in every contender's model)."""
    import torch

    if which == "meta":
        layer = model.sam_mask_decoder.pred_obj_score_head.layers[-1]
    else:
        net = model.model if which in ("ours", "before") else model[0]
        layer = net.mask_decoder.pred_obj_score_head.proj_out
    with torch.no_grad():
        layer.bias.add_(bias)


def loaded(which: str, paths: dict, args):
    """The contender's model with ``--visible-bias`` applied, and its package's location (ours / before)."""
    model = load_model(which, paths)
    if args.visible_bias:
        make_visible(which, model, args.visible_bias)
    package = None
    if which in ("ours", "before"):
        import sam2_pipelines

        package = str(Path(sam2_pipelines.__file__).parent)
    return model, package


def run_steady(which: str, paths: dict, clip: dict, args) -> dict:
    """Prompt every object on frame 0, propagate forward through the clip; time every frame."""
    import numpy as np
    import torch

    prompts = clicks(args.objects, clip["height"], clip["width"])
    recorder = MaskRecorder()
    stamps = []
    model, package, rss_loaded, start, cpu = start_measuring(which, paths, args)
    if which in ("ours", "before"):
        video = clip[clip.get("input", "mp4")]
        if hasattr(model, "session"):
            session = model.session(video)
            for obj_id, point in prompts:
                session.add_points(0, obj_id, [point], [1])
            prompted = time.perf_counter()
            results = session.propagate()
        else:  # an older checkout without sessions: the prompts are applied when the call starts
            prompted = time.perf_counter()
            results = model(video, prompts=[{"frame": 0, "obj_id": i, "points": [p], "labels": [1]} for i, p in prompts], stream=True)
        for result in results:
            stamps.append(time.perf_counter())
            recorder.add(result["frame_idx"], result["object_ids"], np.asarray(result["masks"])[:, 0])
        if hasattr(model, "session"):
            session.close()
    elif which == "meta":
        with torch.inference_mode():
            state = model.init_state(video_path=clip["jpg"])
            for obj_id, point in prompts:
                model.add_new_points_or_box(
                    state, frame_idx=0, obj_id=obj_id, points=np.array([point], dtype=np.float32), labels=np.array([1], dtype=np.int32)
                )
            prompted = time.perf_counter()
            for frame_idx, obj_ids, logits in model.propagate_in_video(state):
                masks = (logits[:, 0] > 0).numpy()
                stamps.append(time.perf_counter())
                recorder.add(frame_idx, obj_ids, masks)
    else:
        net, processor = model
        with torch.inference_mode():
            session, _ = transformers_session(model, clip, prompts)  # the prompted frame is segmented first, as documented
            prompted = time.perf_counter()
            for output in net.propagate_in_video_iterator(session):
                masks = processor.post_process_masks([output.pred_masks], original_sizes=[[clip["height"], clip["width"]]])[0]
                stamps.append(time.perf_counter())
                recorder.add(output.frame_idx, list(output.object_ids), masks[:, 0].numpy())
    seconds = time.perf_counter() - start
    result = {"seconds": seconds, "cpu_seconds": cpu_seconds() - cpu, "prompt_seconds": prompted - start,
              "propagate_seconds": stamps[-1] - prompted if stamps else 0.0, "frames": len(stamps),
              "frame_seconds": [b - a for a, b in zip([prompted] + stamps[:-1], stamps)], "frame_indices": list(recorder.frames),
              "rss_after_load_mb": rss_loaded, "peak_rss_mb": peak_rss_mb(), "package": package}
    steady = [s for s, f in zip(result["frame_seconds"], recorder.frames) if f >= args.warmup_frames]
    result["steady_frames"] = len(steady)
    result["steady_fps"] = len(steady) / sum(steady) if steady else None
    if args.masks:
        recorder.save(args.masks)
    return result


def start_measuring(which: str, paths: dict, args):
    """Load ``which``'s model, then start the clocks: ``(model, package, RSS once loaded, wall start, CPU start)``."""
    model, package = loaded(which, paths, args)
    return model, package, current_rss_mb(), time.perf_counter(), cpu_seconds()


def transformers_session(model, clip: dict, prompts: list):
    """transformers' session API: read the whole video, open a session, click each ``(obj_id, point)`` on frame 0
    and segment that frame. Returns the session and the frame-0 output."""
    from transformers.video_utils import load_video

    net, processor = model
    if clip.get("input") == "jpg":  # a folder of frames: read in order, as a list of RGB arrays
        import numpy as np
        from PIL import Image

        video = [np.asarray(Image.open(path).convert("RGB")) for path in sorted(Path(clip["jpg"]).iterdir())]
    else:
        video, _ = load_video(clip["mp4"], backend="pyav")
    session = processor.init_video_session(video=video, inference_device="cpu")
    processor.add_inputs_to_inference_session(
        inference_session=session,
        frame_idx=0,
        obj_ids=[obj_id for obj_id, _ in prompts],
        input_points=[[[point] for _, point in prompts]],
        input_labels=[[[1] for _ in prompts]],
    )
    return session, net(inference_session=session, frame_idx=0)


def run_first_mask(which: str, paths: dict, clip: dict, args) -> dict:
    """Open the long video, click one object on frame 0, and stop at its first mask."""
    import numpy as np
    import torch

    ((obj_id, point),) = clicks(1, clip["height"], clip["width"])
    model, package, rss_loaded, start, cpu = start_measuring(which, paths, args)
    if which in ("ours", "before"):
        if hasattr(model, "session"):
            session = model.session(clip["mp4"])
            mask = session.add_points(0, obj_id, [point], [1])["masks"][0, 0]
            frames = session.num_frames
        else:  # an older checkout without sessions: the first result of a streamed call
            first = next(iter(model(clip["mp4"], prompts=[{"frame": 0, "obj_id": obj_id, "points": [point], "labels": [1]}], stream=True)))
            mask, frames = first["masks"][0, 0], None
    elif which == "meta":
        with torch.inference_mode():
            state = model.init_state(video_path=clip["jpg"])
            _, _, logits = model.add_new_points_or_box(
                state, frame_idx=0, obj_id=obj_id, points=np.array([point], dtype=np.float32), labels=np.array([1], dtype=np.int32)
            )
            mask, frames = (logits[0, 0] > 0).numpy(), state["num_frames"]
    else:
        net, processor = model
        with torch.inference_mode():
            session, output = transformers_session(model, clip, [(obj_id, point)])
            masks = processor.post_process_masks([output.pred_masks], original_sizes=[[clip["height"], clip["width"]]])[0]
            mask, frames = masks[0, 0].numpy(), session.num_frames
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "cpu_seconds": cpu_seconds() - cpu, "frames": frames, "mask_coverage": float(np.mean(mask)),
            "rss_after_load_mb": rss_loaded, "peak_rss_mb": peak_rss_mb(), "package": package}


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    paths, clip = json.loads(args.paths), json.loads(args.clip)
    if args.child == "steady":
        result = run_steady(args.which, paths, clip, args)
    else:
        result = run_first_mask(args.which, paths, clip, args)
    print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------------


def measure_once(kind: str, which: str, paths: dict, clip: dict, args, objects: int = 1, masks: str | None = None) -> dict:
    """Run one measurement in a fresh interpreter (``before``: importing the ``--baseline`` checkout) and return its numbers."""
    command = [
        sys.executable, str(Path(__file__).resolve()), "--child", kind, "--which", which, "--paths", json.dumps(paths),
        "--clip", json.dumps(clip), "--objects", str(objects), "--threads", str(args.threads),
        "--warmup-frames", str(args.warmup_frames), "--visible-bias", str(args.visible_bias),
    ]
    if masks:
        command += ["--masks", masks]
    return run_child(command, which, args.baseline, kind)


def measure_all(kind: str, contenders, paths: dict, clip: dict, args, objects: int = 1, masks: dict | None = None) -> dict:
    """``--repeat`` fresh runs of every contender, taken in turns (ours, meta, transformers, ours, ...) so that a
    slower spell of a shared machine hits all of them; per contender the best value of every timing, the largest
    peak RSS, every run kept under ``runs``."""
    runs = {w: [] for w in contenders}
    for index in range(args.repeat):
        for w in contenders:
            runs[w].append(measure_once(kind, w, paths, clip, args, objects, (masks or {}).get(w) if index == 0 else None))
            print(f"  {kind} {w} run {index + 1}/{args.repeat}: {runs[w][-1]['seconds']:.1f} s", flush=True)
    return {w: best_of(runs[w]) for w in contenders}


def best_of(runs: list) -> dict:
    """One contender's runs as one result: the best of every timing, the largest peak RSS, the runs under ``runs``."""
    best = dict(runs[0])
    for key in ("seconds", "cpu_seconds", "prompt_seconds", "propagate_seconds"):
        if key in best:
            best[key] = min(run[key] for run in runs)
    fps = [run["steady_fps"] for run in runs if run.get("steady_fps")]
    if "steady_fps" in best:
        best["steady_fps"] = max(fps) if fps else None
    best["peak_rss_mb"] = max(run["peak_rss_mb"] for run in runs)
    best["runs"] = runs
    return best


def mask_agreement(ours_path: str, theirs_path: str) -> dict:
    """Mean and min IoU over frames and objects of two saved mask sets (two empty masks count as identical)."""
    import numpy as np

    ours, theirs = np.load(ours_path), np.load(theirs_path)
    if list(ours["frames"]) != list(theirs["frames"]) or list(ours["obj_ids"]) != list(theirs["obj_ids"]):
        return {"error": f"frames/objects differ: {list(ours['frames'])}/{list(ours['obj_ids'])} vs "
                         f"{list(theirs['frames'])}/{list(theirs['obj_ids'])}"}
    width = int(ours["shape"][1])
    ious, coverage = [], []
    for a_packed, b_packed in zip(ours["packed"], theirs["packed"]):
        a = np.unpackbits(a_packed, axis=-1, count=width).astype(bool)
        b = np.unpackbits(b_packed, axis=-1, count=width).astype(bool)
        for m, n in zip(a, b):
            union = np.logical_or(m, n).sum()
            ious.append(1.0 if union == 0 else float(np.logical_and(m, n).sum() / union))
            coverage.append(float(m.mean()))
    return {"mean_iou": float(np.mean(ious)), "min_iou": float(np.min(ious)), "masks": len(ious),
            "ours_coverage_min": min(coverage), "ours_coverage_max": max(coverage)}


def timeline(tag: str, res: dict, contenders) -> None:
    """Print every frame's seconds for each contender (frame 0: from the end of the clicks to the first propagated
    result; the prompt column: from "model loaded" to the end of the clicks)."""
    print(f"  timeline, {tag}: seconds per frame (" + " / ".join(contenders) + ")", flush=True)
    print("    prompt: " + " / ".join(fmt(res[w].get("prompt_seconds"), 2) for w in contenders))
    frames = max(len(res[w]["frame_seconds"]) for w in contenders)
    for index in range(frames):
        cells = [fmt(res[w]["frame_seconds"][index], 2) if index < len(res[w]["frame_seconds"]) else "-" for w in contenders]
        print(f"    frame {res['ours']['frame_indices'][index] if index < len(res['ours']['frame_indices']) else index:3d}: " + " / ".join(cells))


def print_markdown(rows: list[tuple], header: tuple) -> None:
    """A markdown table with aligned columns."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    print("| " + " | ".join(str(c).ljust(w) for c, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")


def fmt(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def speed(theirs, ours) -> str:
    """Speed ratio from two durations (or inverse ratio from two rates): > 1 means ours is faster."""
    return "n/a" if theirs is None or ours is None else ratio(theirs, ours)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=16, help="frames of each steady-state clip (default 16)")
    parser.add_argument("--objects", type=int, nargs="+", default=[1, 3], help="object counts to track (1 to 3; default 1 3)")
    parser.add_argument("--clips", nargs="+", default=list(CLIP_SIZES), choices=list(CLIP_SIZES), help="steady-state clips")
    parser.add_argument("--long-frames", type=int, default=300, help="frames of the 1280x720 time-to-first-mask video (default 300)")
    parser.add_argument("--warmup-frames", type=int, default=NUM_MASKMEM,
                        help=f"steady fps counts frames with index >= this (default num_maskmem = {NUM_MASKMEM}: full memory bank)")
    parser.add_argument("--visible-bias", type=float, default=2.0,
                        help="added to the object-score head's output bias in every contender after loading (default 2; "
                             "0 = the weights as saved: the random seed-1 model scores the objects of bedroom.mp4 just below "
                             "visible, so every mask is blank)")
    parser.add_argument("--inputs", nargs="+", default=list(INPUT_NAMES), choices=list(INPUT_NAMES),
                        help="how ours and transformers get each steady-state clip: 'jpg' (the folder of JPEG frames) and/or "
                             "'mp4' (a lossless H.264 mp4 of the same decoded pixels); Meta reads the JPEG folder in both")
    parser.add_argument("--skip", nargs="*", default=[], choices=["steady", "first-mask"], help="parts to leave out")
    parser.add_argument("--repeat", type=int, default=1, help="fresh processes per measurement; the best is reported")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of every contender (default 2)")
    parser.add_argument("--weights", help="directory with meta.pt + video/ (reused if present, else built there)")
    parser.add_argument("--meta-checkpoint", help="Meta .pt checkpoint (with --converted)")
    parser.add_argument("--converted", help="the same weights converted with sam2_pipelines.convert_checkpoint (kind='video')")
    parser.add_argument("--baseline", help="a checkout of an earlier version of this package: measured as contender 'before'")
    parser.add_argument("--baseline-only", action="store_true",
                        help="with --baseline: steady state of this package and the baseline only, alternately --repeat times (a no-regression check)")
    parser.add_argument("--json", help="write every raw result (per-frame times of every run included) to this file")
    parser.add_argument("--child", choices=["steady", "first-mask"], help=argparse.SUPPRESS)
    parser.add_argument("--which", help=argparse.SUPPRESS)
    parser.add_argument("--paths", help=argparse.SUPPRESS)
    parser.add_argument("--clip", help=argparse.SUPPRESS)
    parser.add_argument("--masks", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.objects = args.objects[0]
        child(args)
        return 0
    if args.frames < 2 or args.long_frames < 1 or args.repeat < 1 or args.threads < 1:
        parser.error("need --frames >= 2, --long-frames >= 1, --repeat >= 1, --threads >= 1")
    for count in args.objects:
        clicks(count, 540, 960)  # checks the range
    contenders = CONTENDERS + (("before",) if args.baseline else ())
    command = "python " + shlex.join(sys.argv if argv is None else [sys.argv[0], *argv])
    report = {"command": command, "args": {k: v for k, v in vars(args).items() if k not in ("child", "which", "paths", "clip", "masks")},
              "steady": {}, "first_mask": None}
    with tempfile.TemporaryDirectory(prefix="video_benchmark_") as tmp:
        tmp = Path(tmp)
        paths, described = resolve_weights(args, tmp)
        parts = []
        if "steady" not in args.skip:
            parts.append(f"steady state: {args.frames} frames of {', '.join(args.clips)}, {' and '.join(map(str, args.objects))} "
                         f"object(s), fps over frames >= {args.warmup_frames}")
        if "first-mask" not in args.skip:
            parts.append(f"first mask: {args.long_frames} frames of 1280x720")
        print(
            f"SAM 2.1 hiera-tiny, {described}, visible bias {args.visible_bias:g}, CPU, {args.threads} torch threads, best of "
            f"{args.repeat} fresh process(es) per measurement; " + "; ".join(parts),
            flush=True,
        )
        rows = []

        def row(metric, values: dict, cells, baseline_cell="") -> None:
            rows.append((metric, *(values[w] for w in contenders), *cells, *((baseline_cell,) if args.baseline else ())))

        if args.baseline_only:
            if not args.baseline:
                parser.error("--baseline-only needs --baseline DIR")
            for name in args.clips:
                clip = make_steady_clip(tmp, name, args.frames)
                for objects in args.objects:
                    masks = {w: str(tmp / f"masks_{name}_{objects}_{w}.npz") for w in ("ours", "before")}
                    runs = {w: r["runs"] for w, r in measure_all("steady", ["ours", "before"], paths, clip, args, objects, masks).items()}
                    agreement = mask_agreement(masks["ours"], masks["before"])
                    print(f"{name} {clip['height']}x{clip['width']}, {objects} object(s); mask IoU before vs ours, mean / min: "
                          f"{agreement.get('mean_iou', float('nan')):.4f} / {agreement.get('min_iou', float('nan')):.4f} {agreement.get('error', '')}")
                    for key in ("seconds", "propagate_seconds", "cpu_seconds", "steady_fps", "peak_rss_mb"):
                        ours, before = ([run[key] for run in runs[w]] for w in ("ours", "before"))
                        print(f"  {key}: ours {' '.join(f'{v:.3f}' for v in ours)} | before {' '.join(f'{v:.3f}' for v in before)}")
            return 0
        if "steady" not in args.skip:
            # Meta reads the JPEG folder whatever the input kind (no mp4 reader without decord): measured once per
            # clip and object count, (result, masks file) kept here
            meta_runs = {}
            steady_runs = [(name, make_steady_clip(tmp, name, args.frames)) for name in args.clips]
            for (name, base_clip), kind in itertools.product(steady_runs, args.inputs):
                clip = dict(base_clip, input=kind)
                label = f"{name} {clip['height']}x{clip['width']} {INPUT_NAMES[kind]}"
                report["steady"][f"{name} {kind}"] = {}
                for objects in args.objects:
                    masks = {w: str(tmp / f"masks_{name}_{kind}_{objects}_{w}.npz") for w in contenders}
                    if (name, objects) in meta_runs:
                        res = dict(measure_all("steady", [w for w in contenders if w != "meta"], paths, clip, args, objects, masks))
                        res["meta"], masks["meta"] = meta_runs[name, objects]
                    else:
                        res = measure_all("steady", contenders, paths, clip, args, objects, masks)
                        meta_runs[name, objects] = res["meta"], masks["meta"]
                    agreement = {w: mask_agreement(masks["ours"], masks[w]) for w in contenders if w != "ours"}
                    report["steady"][f"{name} {kind}"][objects] = {"results": res, "iou_vs_ours": agreement}
                    timeline(f"{label}, {objects} obj", res, contenders)
                    o = res["ours"]
                    tag = f"{label}, {objects} obj"
                    others = [w for w in contenders if w != "ours"]

                    def cells(key, kind):
                        if kind == "speed":  # durations: theirs / ours
                            return [speed(res[w][key], o[key]) for w in others]
                        if kind == "rate":  # rates: ours / theirs
                            return [speed(o[key], res[w][key]) for w in others]
                        return [ratio(o[key], res[w][key]) for w in others]  # memory: ours / theirs

                    def put(metric, key, digits, kind):
                        values = {w: fmt(res[w][key], digits) for w in contenders}
                        c = cells(key, kind)
                        row(metric, values, c[:2], c[2] if args.baseline else "")

                    put(f"{tag}: total seconds", "seconds", 1, "speed")
                    put(f"{tag}: propagation seconds", "propagate_seconds", 1, "speed")
                    put(f"{tag}: steady fps (frames >= {args.warmup_frames}; higher is better)", "steady_fps", 3, "rate")
                    put(f"{tag}: CPU seconds", "cpu_seconds", 1, "speed")
                    put(f"{tag}: peak RSS MiB", "peak_rss_mb", 0, "memory")
                    iou = {"ours": "-"}
                    for w, a in agreement.items():
                        iou[w] = a["error"] if "error" in a else f"{a['mean_iou']:.4f} / {a['min_iou']:.4f}"
                    row(f"{tag}: mask IoU with ours, mean / min", iou, ["", ""], "")
                    cov = agreement["meta"]
                    if "error" not in cov:
                        print(f"  {tag}: ours' masks cover {100 * cov['ours_coverage_min']:.1f}-{100 * cov['ours_coverage_max']:.1f}% "
                              f"of the frame ({cov['masks']} masks compared)", flush=True)
                    if o["steady_frames"] == 0:
                        print(f"  {tag}: no steady-state frames (need --frames > --warmup-frames {args.warmup_frames})", flush=True)
        if "first-mask" not in args.skip:
            clip = make_long_clip(tmp, args.long_frames)
            res = measure_all("first-mask", contenders, paths, clip, args)
            report["first_mask"] = res
            print("  first mask covers " + ", ".join(f"{w} {100 * res[w]['mask_coverage']:.1f}%" for w in contenders)
                  + " of frame 0", flush=True)
            o = res["ours"]
            others = [w for w in contenders if w != "ours"]
            tag = f"first mask, {args.long_frames} frames 1280x720"

            def half(theirs_value, ours_value, kind) -> str:
                text = speed(theirs_value, ours_value) if kind == "speed" else ratio(ours_value, theirs_value)
                return f"{text} (below half: {'yes' if ours_value < theirs_value / 2 else 'no'})"

            c = [half(res[w]["seconds"], o["seconds"], "speed") for w in others]
            row(f"{tag}: seconds (lower is better)", {w: fmt(res[w]["seconds"], 2) for w in contenders}, c[:2],
                c[2] if args.baseline else "")
            c = [half(res[w]["peak_rss_mb"], o["peak_rss_mb"], "memory") for w in others]
            row(f"{tag}: peak RSS MiB", {w: fmt(res[w]["peak_rss_mb"], 0) for w in contenders}, c[:2], c[2] if args.baseline else "")
            row(f"{tag}: RSS MiB once the model is loaded", {w: fmt(res[w]["rss_after_load_mb"], 0) for w in contenders}, ["", ""], "")
        for w in ("ours", "before"):
            run = next((r for part in report["steady"].values() for x in part.values() for n, r in x["results"].items() if n == w),
                       (report["first_mask"] or {}).get(w))
            if run:
                print(f"  {w}: sam2_pipelines imported from {run['package']}")
        print()
        header = ("metric", *contenders, "ours vs meta", "ours vs transformers", *(("ours vs before",) if args.baseline else ()))
        print_markdown(rows, header)
        print("\nspeed ratios (seconds, fps) > 1 mean ours is faster; memory ratios (RSS) < 1 mean ours uses less; "
              "'below half': ours' time / peak RSS is under half of theirs.")
        if report["first_mask"]:
            o = report["first_mask"]["ours"]
            for w in (w for w in contenders if w != "ours"):
                t = report["first_mask"][w]
                print(f"first mask, ours vs {w}: {o['seconds']:.2f} s vs {t['seconds']:.2f} s "
                      f"(below half: {'yes' if o['seconds'] < t['seconds'] / 2 else 'no'}), peak RSS {o['peak_rss_mb']:.0f} vs "
                      f"{t['peak_rss_mb']:.0f} MiB (below half: {'yes' if o['peak_rss_mb'] < t['peak_rss_mb'] / 2 else 'no'})")
        print(f"\ncommand: {command}")
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2))
            print(f"raw results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
