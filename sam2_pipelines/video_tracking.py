"""The ``video-object-tracking`` pipeline: prompted tracking of objects through a video.

``tracker(video, prompts=[...])`` prompts objects on any frames and propagates them through the video;
``tracker.session(video)`` gives an interactive :class:`~sam2_pipelines.session.TrackingSession`
(refine, add or remove objects, re-propagate) and ``tracker.session()`` a streaming one. The work is done by
the session; this module only parses arguments.
"""

from __future__ import annotations

from transformers import Pipeline

from .session import TrackingSession, check_direction, check_output
from .video_io import is_stream, iter_frames

#: Keyword arguments of ``tracker(...)`` with their defaults (also accepted by ``pipeline(...)`` as defaults).
CALL_OPTIONS = {
    "prompts": None,
    "direction": "forward",
    "start_frame": None,
    "max_frames": None,
    "output": "binary",
    "stream": False,
    "progress": False,
}


class VideoObjectTrackingPipeline(Pipeline):
    """Track prompted objects through a video with ``Sam2VideoModel`` or ``EdgeTamVideoModel``.

    Example::

        tracker = pipeline("video-object-tracking", model="facebook/sam2.1-hiera-tiny")
        results = tracker("clip.mp4", prompts=[{"frame": 0, "obj_id": 1, "points": [[210, 350]], "labels": [1]}])
        results[0]  # {"frame_idx": 0, "object_ids": [1], "masks": bool (1, 1, H, W), "scores": (1,)}

    Videos: a file path or URL (decoded lazily with PyAV), a folder of frames, a list of PIL images /
    arrays / image paths, a ``(T, H, W, 3)`` uint8 array or tensor, a
    :class:`~sam2_pipelines.video_io.FrameSource`, or an iterator of frames (processed as a stream).
    See :meth:`__call__` for the options and ``docs/video_tracking.md`` for the details.
    """

    _load_processor = True
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def _sanitize_parameters(self, **kwargs):
        """Check call options (``CALL_OPTIONS``); unknown keyword arguments are an error."""
        unknown = sorted(set(kwargs) - set(CALL_OPTIONS))
        if unknown:
            raise ValueError(
                f"unknown argument(s) {', '.join(map(repr, unknown))} for video-object-tracking; accepted: "
                f"{', '.join(CALL_OPTIONS)}"
            )
        if "direction" in kwargs:
            check_direction(kwargs["direction"])
        if "output" in kwargs:
            check_output(kwargs["output"])
        for flag in ("stream", "progress"):
            if flag in kwargs and not isinstance(kwargs[flag], bool):
                raise ValueError(f"{flag} must be True or False, got {kwargs[flag]!r}")
        return {}, dict(kwargs), {}

    def session(self, video=None, *, prune_memory: bool = True) -> TrackingSession:
        """Open an interactive :class:`~sam2_pipelines.session.TrackingSession` on ``video``.

        Without a video the session is a stream: feed it with ``session.push_frame(frame)``.
        ``prune_memory=False`` keeps every tracked output (for comparisons; results are the same).
        """
        return TrackingSession(self.model, self.processor, video, device=self.device, prune_memory=prune_memory)

    def __call__(self, video, **kwargs):
        """Track the prompted objects through ``video``.

        Args:
            video: see the class docstring.
            prompts: list of dicts ``{"frame": int, "obj_id": int, ...}`` with ``"points": [[x, y], ...]`` and
                ``"labels": [1, 0, ...]`` (1 positive, 0 negative), or ``"box": [x0, y0, x1, y1]`` (optionally
                with points and labels), or ``"mask"``: a binary ``(H, W)`` array. Pixel coordinates of the
                video; any integer object ids; several prompts may target the same object on different
                frames (clicks on the same frame accumulate).
            direction: ``"forward"`` (default), ``"backward"`` or ``"both"``.
            start_frame: frame to start from (default: earliest prompted frame; latest for ``"backward"``).
            max_frames: at most this many frames per direction, the start frame included.
            output: ``"binary"`` (bool masks ``(objects, 1, H, W)``) or ``"rle"`` (COCO RLE dicts).
            stream: return a generator instead of a list.
            progress: show a progress bar.

        Returns:
            A list (a generator with ``stream=True``) of per-frame dicts
            ``{"frame_idx", "object_ids", "masks", "scores"}`` in processing order. Arguments and prompts are
            checked before anything is returned, so errors surface at the call even with ``stream=True``.
        """
        _, options, _ = self._sanitize_parameters(**kwargs)
        options = {**CALL_OPTIONS, **self._forward_params, **options}
        prompts = options["prompts"]
        if prompts is None or (isinstance(prompts, (list, tuple)) and len(prompts) == 0):
            raise ValueError('give at least one prompt, e.g. prompts=[{"frame": 0, "obj_id": 1, "points": [[x, y]], "labels": [1]}]')
        if isinstance(prompts, dict):
            prompts = [prompts]
        if not isinstance(prompts, (list, tuple)):
            raise ValueError(f"prompts must be a list of prompt dicts, got {type(prompts).__name__}")
        if is_stream(video):
            results = self._track_stream(video, list(prompts), options)
        else:
            session = self.session(video)
            for prompt in prompts:
                session.add_prompt(prompt)
            results = session.propagate(
                direction=options["direction"],
                start_frame=options["start_frame"],
                max_frames=options["max_frames"],
                output=options["output"],
                progress=options["progress"],
            )
        return results if options["stream"] else list(results)

    def _track_stream(self, frames, prompts: list, options: dict):
        """Track an iterator of frames as it arrives (forward only); prompts apply when their frame arrives."""
        from .prompts import check_int

        if options["direction"] != "forward":
            raise ValueError(f"an iterator of frames can only be tracked forward, got direction={options['direction']!r}")
        start = 0 if options["start_frame"] is None else check_int(options["start_frame"], "start_frame", minimum=0)
        limit = None if options["max_frames"] is None else check_int(options["max_frames"], "max_frames", minimum=1)
        by_frame: dict[int, list] = {}
        for prompt in prompts:
            if not isinstance(prompt, dict) or "frame" not in prompt:
                raise ValueError(f'each prompt must be a dict with a "frame" key, got {prompt!r}')
            frame = check_int(prompt["frame"], "prompt frame", minimum=0)
            if frame < start:
                raise ValueError(f"prompt on frame {frame} comes before start_frame {start}")
            by_frame.setdefault(frame, []).append(prompt)
        return self._stream_results(frames, by_frame, start, limit, options)

    def _stream_results(self, frames, by_frame, start, limit, options):
        from tqdm.auto import tqdm

        session = self.session()
        last_prompted = max(by_frame)
        seen = -1
        count = 0
        with tqdm(desc="tracking", unit="frame", disable=not options["progress"], total=limit) as bar:
            for index, frame in enumerate(iter_frames(frames)):
                seen = index
                if index < start:
                    continue
                if limit is not None and count >= limit:
                    break
                # the session numbers pushed frames from 0; results report the stream's own indices
                prompts = [{k: v for k, v in p.items() if k != "frame"} for p in by_frame.get(index, [])]
                result = session.push_frame(frame, prompts=prompts, output=options["output"])
                result["frame_idx"] = index
                count += 1
                bar.update(1)
                yield result
        if seen < 0:
            raise ValueError("the stream of frames is empty")
        if seen < last_prompted and (limit is None or count < limit):
            raise ValueError(f"a prompt is on frame {last_prompted}, but the stream ended after frame {seen}")

    # The standard Pipeline steps, for completeness: one call = one video.
    def preprocess(self, video, **options):
        """Open a :class:`TrackingSession` on ``video``."""
        return {"session": self.session(video), "options": options}

    def _forward(self, model_inputs, **options):
        """Apply the prompts and propagate."""
        session = model_inputs["session"]
        for prompt in options.get("prompts") or []:
            session.add_prompt(prompt)
        return session.propagate(
            **{k: options[k] for k in ("direction", "start_frame", "max_frames", "output", "progress") if k in options}
        )

    def postprocess(self, model_outputs, **options):
        """Materialise the per-frame results."""
        return list(model_outputs)
