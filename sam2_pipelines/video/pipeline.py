"""The ``video-object-tracking`` pipeline: prompted tracking of objects through a video.

``tracker(video, prompts=[...])`` prompts objects on any frames and propagates them through the video;
``tracker.session(video)`` gives an interactive :class:`~sam2_pipelines.video.session.TrackingSession`
(refine, add or remove objects, re-propagate) and ``tracker.session()`` a streaming one. The work is done by
the session; this module only parses arguments.
"""

from __future__ import annotations

import json
import sys

import torch
from transformers import Pipeline
from transformers.utils import logging

from sam2_pipelines.kernels import allocator
from sam2_pipelines.models import internals
from sam2_pipelines.models.loading import VIDEO_CHECKPOINT_ADVICE, compile_model, is_video_model
from sam2_pipelines.video.frame_pixels import DEFAULT_FRAME_RESIZE, check_frame_resize
from sam2_pipelines.core.validation import DIRECTIONS, FrameResize, check_bool, check_choice, check_int
from sam2_pipelines.video.session import TrackingSession, check_autocast, check_mask_threshold, check_output
from sam2_pipelines.video.text_session import TEXT_FRAME_RESIZE, TextTrackingSession, is_text_video_model, text_prompt
from sam2_pipelines.io.video import is_stream, iter_frames

#: Keyword arguments of ``tracker(...)`` with their defaults (also accepted by ``pipeline(...)`` as defaults).
CALL_OPTIONS = {
    "prompts": None,
    "direction": "forward",
    "start_frame": None,
    "max_frames": None,
    "output": "binary",
    "stream": False,
    "progress": False,
    "frame_resize": None,  # the model's: "bicubic" (Meta's loader) for SAM 2-style trackers, "bilinear" for text trackers
    "autocast": None,
    "mask_threshold": 0.0,
    "return_logits": False,
}

#: Options of the call itself, never per video: not accepted as dataset row keys.
LOOP_OPTIONS = ("stream", "progress", "batch_size", "num_workers", "autocast")

_PROMPTS_ACCEPTED = "a list of prompt dicts, one prompt dict, or a JSON string of either"

logger = logging.get_logger(__name__)


def row_options() -> tuple[str, ...]:
    """Call options a dataset row may set for its own video (``direction``, ``start_frame``, ``max_frames``, ...)."""
    return tuple(k for k in CALL_OPTIONS if k not in ("prompts",) + LOOP_OPTIONS)


def check_batch_size(batch_size) -> int:
    """Return ``batch_size`` as an int >= 1 (frames the image encoder encodes in one pass), else raise ValueError."""
    return check_int(batch_size, "batch_size", minimum=1)


def check_num_workers(num_workers) -> None:
    """``num_workers`` may only be ``None`` or 0: the video pipeline has no worker processes."""
    if num_workers is None:
        return
    if check_int(num_workers, "num_workers", minimum=0) > 0:
        raise ValueError(
            f"num_workers={num_workers} is not supported by video-object-tracking: videos are tracked one after "
            "another in this process (batch_size batches the image encoder within each video). For several "
            "processes, split the dataset with sam2_pipelines.sharding.map_sharded (see docs/datasets.md)."
        )


def parse_prompts(prompts, where: str = "prompts") -> list:
    """Prompts as a list of prompt dicts, from a list of dicts, one dict or a JSON string of either."""
    if isinstance(prompts, str):
        try:
            prompts = json.loads(prompts)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: prompts are not valid JSON ({error}); accepted: {_PROMPTS_ACCEPTED}") from None
    if isinstance(prompts, dict):
        return [prompts]
    if isinstance(prompts, (list, tuple)):
        return list(prompts)
    raise ValueError(f"{where}: prompts must be {_PROMPTS_ACCEPTED}; got {type(prompts).__name__}")


def is_multi_video(inputs) -> bool:
    """True for inputs holding several videos: a ``datasets.Dataset`` / ``IterableDataset``, a
    ``torch.utils.data.Dataset`` (e.g. ``KeyDataset``), or a list of row dicts (``{"video": ...}``).

    A list of frames (images, arrays, paths) is one video.
    """
    hf_datasets = sys.modules.get("datasets")
    if hf_datasets is not None and isinstance(inputs, (hf_datasets.Dataset, hf_datasets.IterableDataset)):
        return True
    if isinstance(inputs, torch.utils.data.Dataset):
        return True
    return isinstance(inputs, (list, tuple)) and len(inputs) > 0 and isinstance(inputs[0], dict)


def _closing(session, results):
    """Yield ``results``, then close ``session`` (also when the consumer stops early or fails)."""
    try:
        yield from results
    finally:
        session.close()


class VideoObjectTrackingPipeline(Pipeline):
    """Track prompted objects through a video with ``Sam2VideoModel`` or ``EdgeTamVideoModel``.

    Example::

        tracker = pipeline("video-object-tracking", model="facebook/sam2.1-hiera-tiny")
        results = tracker("clip.mp4", prompts=[{"frame": 0, "obj_id": 1, "points": [[210, 350]], "labels": [1]}])
        results[0]  # {"frame_idx": 0, "object_ids": [1], "masks": bool (1, 1, H, W), "scores": (1,)}

    Videos: a file path or URL (decoded lazily with PyAV), a folder of frames, a list of PIL images /
    arrays / image paths, a ``(T, H, W, 3)`` uint8 array or tensor, a
    :class:`~sam2_pipelines.io.video.FrameSource`, or an iterator of frames (processed as a stream).
    Several videos: a ``datasets.Dataset`` of rows ``{"video": ..., "prompts": ...}``, a
    ``torch.utils.data.Dataset`` such as ``KeyDataset`` (with ``prompts=`` for every video) or a list of row
    dicts; the call then returns a generator of per-video results. ``batch_size`` (call or ``pipeline(...)``
    keyword) is the number of frames the image encoder encodes in one pass.
    See :meth:`__call__` for the options and ``docs/video_tracking.md`` for the details.
    """

    _load_processor = True
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args, compile: bool = False, **kwargs):
        check_bool(compile, "compile")
        super().__init__(*args, **kwargs)
        if not is_video_model(self.model) or not hasattr(self.processor, "video_processor"):
            raise ValueError(
                f"video-object-tracking needs a SAM 2-style video model (Sam2VideoModel, EdgeTamVideoModel) and its "
                f"video processor; got {type(self.model).__name__} with {type(self.processor).__name__}. {VIDEO_CHECKPOINT_ADVICE}"
            )
        # Pipeline.__init__ takes batch_size / num_workers aside; check them at creation too
        check_num_workers(self._num_workers)
        if self._batch_size is not None:
            check_batch_size(self._batch_size)
        if compile:
            if is_text_video_model(self.model):
                raise ValueError(f"compile=True is not supported with a text tracker ({type(self.model).__name__}): it runs transformers' SAM 3 video model as it is")
            compile_model(self.model)
        internals.cache_position_encodings(self.model)
        allocator.one_arena()  # the read-ahead and decoder threads started from now on allocate from the main arena

    def _sanitize_parameters(self, **kwargs):
        """Check call options (``CALL_OPTIONS``); unknown keyword arguments are an error."""
        unknown = sorted(set(kwargs) - set(CALL_OPTIONS))
        if unknown:
            raise ValueError(
                f"unknown argument(s) {', '.join(map(repr, unknown))} for video-object-tracking; accepted: "
                f"{', '.join(CALL_OPTIONS)}, batch_size, num_workers (0 only)"
            )
        if "direction" in kwargs:
            check_choice(kwargs["direction"], "direction", DIRECTIONS)
        if "output" in kwargs:
            check_output(kwargs["output"])
        if "frame_resize" in kwargs:
            check_frame_resize(kwargs["frame_resize"])
        if "autocast" in kwargs:
            check_autocast(kwargs["autocast"])
        if "mask_threshold" in kwargs:
            check_mask_threshold(kwargs["mask_threshold"])
        for flag in ("stream", "progress", "return_logits"):
            if flag in kwargs:
                check_bool(kwargs[flag], flag)
        return {}, dict(kwargs), {}

    @staticmethod
    def _session_options(options: dict) -> dict:
        """The session settings among merged call options (checked: RLE results cannot hold logits)."""
        check_output(options["output"], options["return_logits"])
        return {name: options[name] for name in ("frame_resize", "autocast", "mask_threshold", "return_logits")}

    def _resolve_batch_size(self, batch_size):
        """``batch_size`` as given, else the pipeline's (``pipeline(..., batch_size=n)``), else 1."""
        if batch_size is not None:
            return batch_size
        return self._batch_size if self._batch_size is not None else 1

    def session(self, video=None, *, prune_memory: bool = True, frame_resize: FrameResize | None = None, batch_size: int | None = None, autocast=None, mask_threshold: float | None = None, return_logits: bool | None = None) -> TrackingSession:
        """Open an interactive :class:`~sam2_pipelines.video.session.TrackingSession` on ``video``.

        Without a video the session is a stream: feed it with ``session.push_frame(frame)``.
        ``prune_memory=False`` keeps every tracked output (for comparisons; results are the same).
        ``frame_resize``: ``"bicubic"`` (Meta's frame loader) or ``"bilinear"`` (transformers' video
        processor); ``None`` takes the pipeline's default (``pipeline(..., frame_resize=...)``, else ``"bicubic"``).
        ``batch_size``: frames the image encoder encodes in one pass while propagating (results are the same;
        at most that many frames' features are held; streams encode one frame at a time); ``None`` takes
        ``pipeline(..., batch_size=...)``, else 1.
        ``autocast``: ``torch.bfloat16`` / ``torch.float16`` (or their names) runs the model under
        ``torch.autocast`` in that dtype; ``None`` takes ``pipeline(..., autocast=...)``, else float32 throughout.
        ``mask_threshold`` (mask-logit threshold, default 0.0) and ``return_logits`` (add float32 video-resolution
        ``"logits"`` to each result): ``None`` takes the pipeline's (``pipeline(..., mask_threshold=...)``).
        """
        if is_text_video_model(self.model):
            return self._text_session(video, prune_memory, frame_resize, batch_size, autocast, mask_threshold, return_logits)
        if frame_resize is None:
            frame_resize = self._forward_params.get("frame_resize", DEFAULT_FRAME_RESIZE)
        if autocast is None:
            autocast = self._forward_params.get("autocast")
        if mask_threshold is None:
            mask_threshold = self._forward_params.get("mask_threshold", 0.0)
        if return_logits is None:
            return_logits = self._forward_params.get("return_logits", False)
        return TrackingSession(
            self.model, self.processor, video, device=self.device, prune_memory=prune_memory, frame_resize=frame_resize,
            batch_size=self._resolve_batch_size(batch_size), autocast=autocast, mask_threshold=mask_threshold,
            return_logits=return_logits,
        )

    def _text_session(self, video, prune_memory, frame_resize, batch_size, autocast, mask_threshold, return_logits) -> TextTrackingSession:
        """A :class:`~sam2_pipelines.video.text_session.TextTrackingSession` (``Sam3VideoModel``); options it cannot
        honour are refused rather than ignored."""
        given = {**self._forward_params, "batch_size": self._resolve_batch_size(batch_size)}
        given.update({k: v for k, v in dict(autocast=autocast, mask_threshold=mask_threshold, return_logits=return_logits).items() if v is not None})
        unsupported = [
            f"{name}={given[name]!r}" for name, default in (("batch_size", 1), ("autocast", None), ("mask_threshold", 0.0), ("return_logits", False))
            if given.get(name, default) != default
        ]
        if unsupported:
            raise ValueError(
                f"{', '.join(unsupported)} not supported with a text tracker ({type(self.model).__name__}): it tracks with "
                "transformers' SAM 3 video model as it is (one frame at a time, float32, masks at logit 0)"
            )
        if frame_resize is None:
            frame_resize = self._forward_params.get("frame_resize", TEXT_FRAME_RESIZE)
        return TextTrackingSession(self.model, self.processor, video, device=self.device, prune_memory=prune_memory, frame_resize=frame_resize)

    def __call__(self, video, **kwargs):
        """Track the prompted objects through ``video``.

        Args:
            video: one video (see the class docstring), or several: a ``datasets.Dataset`` (or
                ``IterableDataset``) whose rows hold a ``"video"`` and optionally ``"prompts"`` (a list of prompt
                dicts, one prompt dict, or a JSON string of either) and per-video options (``"direction"``,
                ``"start_frame"``, ``"max_frames"``, ``"output"``, ...; ``None`` values mean "not set"); a
                ``torch.utils.data.Dataset`` (e.g. ``KeyDataset(dataset, "video")``) yielding videos or such
                row dicts; or a list of row dicts. Row prompts and options override the call's; other
                columns are ignored. A list of frames is ONE video.
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
            frame_resize: how frames become model input pixels: ``"bicubic"`` (default; exactly Meta's
                ``SAM2VideoPredictor`` frame loader, so results follow Meta's) or ``"bilinear"``
                (transformers' ``Sam2VideoVideoProcessor``, as in ``Sam2VideoProcessor.init_video_session``).
            batch_size: the image encoder computes the features of up to this many upcoming frames (in the
                propagation direction) in one forward pass, then tracking uses them frame by frame (default 1,
                or ``pipeline(..., batch_size=n)``). Results are the same; at most ``batch_size`` frames'
                features are held. An iterator of frames (a stream) is always encoded one frame at a time.
            mask_threshold: mask-logit threshold of the binary masks (default 0.0, as Meta and transformers).
            return_logits: add ``"logits"`` (float32 ``(objects, 1, H, W)``, video resolution) to every result
                (binary output only).
            autocast: ``torch.bfloat16`` / ``torch.float16`` (or their names): run the model under
                ``torch.autocast`` in that dtype (default: float32). Also ``pipeline(..., autocast=...)``;
                ``pipeline(..., compile=True)`` compiles the model's fixed-shape parts with ``torch.compile``.
            num_workers: not supported (only ``None`` or 0): a ``ValueError`` pointing to
                :func:`sam2_pipelines.sharding.map_sharded` for multi-process runs.

        Returns:
            One video: a list (a generator with ``stream=True``) of per-frame dicts
            ``{"frame_idx", "object_ids", "masks", "scores"}`` in processing order. Arguments and prompts are
            checked before anything is returned, so errors surface at the call even with ``stream=True``.
            Several videos: a generator of per-video results in dataset order, each what a single call
            returns for that row (a list, or a generator with ``stream=True``); ``progress`` shows a bar over
            videos. Call arguments are checked at the call, each row when it is reached (errors name the row).
        """
        batch_size = kwargs.pop("batch_size", None)
        check_num_workers(kwargs.pop("num_workers", None) if "num_workers" in kwargs else self._num_workers)
        batch_size = check_batch_size(self._resolve_batch_size(batch_size))
        if is_multi_video(video):
            return self._track_videos(video, kwargs, batch_size)
        _, options, _ = self._sanitize_parameters(**kwargs)
        options = {**CALL_OPTIONS, **self._forward_params, **options}
        prompts = [] if options["prompts"] is None else parse_prompts(options["prompts"])  # as dataset rows' prompts
        if not prompts:
            example = '{"frame": 0, "text": "person"}' if is_text_video_model(self.model) else '{"frame": 0, "obj_id": 1, "points": [[x, y]], "labels": [1]}'
            raise ValueError(f"give at least one prompt, e.g. prompts=[{example}]")
        if is_text_video_model(self.model):
            results = self._track_text(video, prompts, options, batch_size)
        elif is_stream(video):
            if batch_size > 1:
                logger.warning("batch_size=%d has no effect on an iterator of frames: a stream is encoded one frame at a time", batch_size)
            results = self._track_stream(video, list(prompts), options)
        else:
            session = self.session(video, batch_size=batch_size, **self._session_options(options))
            try:
                for prompt in prompts:
                    session.add_prompt(prompt)
                results = session.propagate(
                    direction=options["direction"],
                    start_frame=options["start_frame"],
                    max_frames=options["max_frames"],
                    output=options["output"],
                    progress=options["progress"],
                )
            except BaseException:
                session.close()
                raise
            results = _closing(session, results)
        return results if options["stream"] else list(results)

    def _track_text(self, video, prompts: list, options: dict, batch_size: int):
        """Text prompts with a ``Sam3VideoModel``: a video is propagated; a stream is pushed frame by frame."""
        if options["direction"] != "forward":
            raise ValueError(f"a text tracker (Sam3VideoModel) tracks forward only, got direction={options['direction']!r}")
        stream = is_stream(video)
        if stream:  # concepts given before the start are looked for from the start, as in a video
            start, limit = self._stream_range(options)
            by_frame: dict[int, list[str]] = {}
            for frame, concepts in map(text_prompt, prompts):
                by_frame.setdefault(max(frame, start), []).extend(concepts)
        session = self.session(None if stream else video, batch_size=batch_size, **self._session_options(options))
        try:
            for prompt in prompts:  # every concept checked before the first frame is tracked
                session.check_text(text_prompt(prompt)[1])
            if stream:
                push = lambda frame, concepts: session.push_frame(frame, text=concepts or None, output=options["output"])  # noqa: E731
                return _closing(session, self._stream_results(video, by_frame, start, limit, options, push))
            for prompt in prompts:
                session.add_prompt(prompt)
            results = session.propagate(start_frame=options["start_frame"], max_frames=options["max_frames"], output=options["output"], progress=options["progress"])
        except BaseException:
            session.close()
            raise
        return _closing(session, results)

    @staticmethod
    def _stream_range(options: dict) -> tuple[int, int | None]:
        """A stream's checked ``(start_frame, max_frames)``: where tracking starts and how many frames at most."""
        start = 0 if options["start_frame"] is None else check_int(options["start_frame"], "start_frame", minimum=0)
        limit = None if options["max_frames"] is None else check_int(options["max_frames"], "max_frames", minimum=1)
        return start, limit

    @staticmethod
    def _prompts_by_frame(prompts: list, start: int) -> dict:
        """Prompts of a stream grouped by their frame (checked: dicts with a frame at or after ``start``)."""
        by_frame: dict[int, list] = {}
        for prompt in prompts:
            if not isinstance(prompt, dict) or "frame" not in prompt:
                raise ValueError(f'each prompt must be a dict with a "frame" key, got {prompt!r}')
            frame = check_int(prompt["frame"], "prompt frame", minimum=0)
            if frame < start:
                raise ValueError(f"prompt on frame {frame} comes before start_frame {start}")
            by_frame.setdefault(frame, []).append(prompt)
        return by_frame

    def _track_stream(self, frames, prompts: list, options: dict):
        """Track an iterator of frames as it arrives (forward only); prompts apply when their frame arrives."""
        if options["direction"] != "forward":
            raise ValueError(f"an iterator of frames can only be tracked forward, got direction={options['direction']!r}")
        start, limit = self._stream_range(options)
        by_frame = self._prompts_by_frame(prompts, start)
        session = self.session(**self._session_options(options))

        def push(frame, group):
            prompts = [{k: v for k, v in p.items() if k != "frame"} for p in group]
            return session.push_frame(frame, prompts=prompts, output=options["output"])

        return self._stream_results(frames, by_frame, start, limit, options, push)

    @staticmethod
    def _stream_results(frames, by_frame: dict, start: int, limit, options: dict, push):
        """Push the stream's frames from ``start`` (at most ``limit``) with ``push(frame, by_frame.get(index, []))``;
        results report the stream's own frame indices (a session numbers pushed frames from 0)."""
        from tqdm.auto import tqdm

        last_prompted = max(by_frame, default=0)
        seen = -1
        count = 0
        with tqdm(desc="tracking", unit="frame", disable=not options["progress"], total=limit) as bar:
            for index, frame in enumerate(iter_frames(frames)):
                seen = index
                if index < start:
                    continue
                if limit is not None and count >= limit:
                    break
                result = push(frame, by_frame.get(index, []))
                result["frame_idx"] = index
                count += 1
                bar.update(1)
                yield result
        if seen < 0:
            raise ValueError("the stream of frames is empty")
        if seen < last_prompted and (limit is None or count < limit):
            raise ValueError(f"a prompt is on frame {last_prompted}, but the stream ended after frame {seen}")

    # ------------------------------------------------------------------------------------------ several videos

    def _track_videos(self, inputs, kwargs: dict, batch_size: int):
        """Several videos: check the call's arguments now, then track the rows one after another, lazily."""
        _, options, _ = self._sanitize_parameters(**kwargs)
        options = {**self._forward_params, **options}
        call_prompts = options.pop("prompts", None)
        if call_prompts is not None:
            call_prompts = parse_prompts(call_prompts)
        stream, progress = options.pop("stream", False), options.pop("progress", False)
        hf_datasets = sys.modules.get("datasets")
        columns = None
        if hf_datasets is not None and isinstance(inputs, (hf_datasets.Dataset, hf_datasets.IterableDataset)):
            columns = inputs.column_names  # None for some iterable datasets
        if columns is not None:
            if "video" not in columns:
                raise ValueError(f'the dataset has no "video" column (columns: {columns}); each row needs a "video" and optionally "prompts"')
            if call_prompts is None and "prompts" not in columns:
                raise ValueError(
                    f'no prompts: the dataset has no "prompts" column (columns: {columns}) and no prompts=[...] was given; '
                    f"give a prompts column ({_PROMPTS_ACCEPTED}) or prompts=[...] for every video"
                )
        if isinstance(inputs, (list, tuple)):  # rows in memory: check them all now
            items = [(i, self._parse_row(i, row, call_prompts, bare_videos=False)) for i, row in enumerate(inputs)]
        elif columns is None and hasattr(inputs, "__len__") and hasattr(inputs, "__getitem__") and not isinstance(inputs, torch.utils.data.IterableDataset):
            if len(inputs) > 0 and call_prompts is None:  # e.g. KeyDataset without prompts=: say so now
                self._parse_row(0, inputs[0], call_prompts, bare_videos=True)
            items = ((i, self._parse_row(i, inputs[i], call_prompts, bare_videos=True)) for i in range(len(inputs)))
        else:
            items = ((i, self._parse_row(i, row, call_prompts, bare_videos=columns is None)) for i, row in enumerate(inputs))
        total = len(inputs) if hasattr(inputs, "__len__") else None
        return self._video_results(items, total, options, stream, progress, batch_size)

    def _video_results(self, items, total, options: dict, stream: bool, progress: bool, batch_size: int):
        """Yield one single-video call's result per row; ``ValueError`` messages name the row."""
        from tqdm.auto import tqdm

        with tqdm(total=total, desc="tracking", unit="video", disable=not progress) as bar:
            for index, (video, prompts, row_options_) in items:
                try:
                    result = self(video, **{**options, **row_options_}, prompts=prompts, stream=stream, progress=False, batch_size=batch_size)
                except ValueError as error:
                    raise ValueError(f"row {index}: {error}") from error
                bar.update(1)
                yield result

    def _parse_row(self, index: int, row, call_prompts, bare_videos: bool) -> tuple:
        """``(video, prompts, options)`` of one row; ``bare_videos``: a non-dict item is a video (torch datasets)."""
        accepted = (
            f'a dict with a "video" (path, frame folder, list of frames, array...) and optionally "prompts" '
            f"({_PROMPTS_ACCEPTED}) and per-video options ({', '.join(row_options())})"
        )
        if isinstance(row, dict):
            if row.get("video") is None:
                raise ValueError(f'row {index} has no "video" (keys: {sorted(map(str, row))}); each row must be {accepted}')
            misplaced = [key for key in LOOP_OPTIONS if row.get(key) is not None]
            if misplaced:
                raise ValueError(f"row {index}: {', '.join(misplaced)} apply to the whole call, not to one video; pass them to tracker(...)")
            video, prompts = row["video"], row.get("prompts")
            options = {key: row[key] for key in row_options() if row.get(key) is not None}
        elif bare_videos:
            video, prompts, options = row, None, {}
        else:
            raise ValueError(
                f"row {index} is a {type(row).__name__}, not a row dict: a list of videos must hold row dicts, each "
                f"{accepted} (a list of frames is one video)"
            )
        if is_multi_video(video):
            raise ValueError(f'row {index}: its "video" holds several videos (a dataset or a list of rows); give one video per row')
        prompts = call_prompts if prompts is None else parse_prompts(prompts, f"row {index}")
        if prompts is None:
            raise ValueError(
                f"row {index} has no prompts: give the row a \"prompts\" entry ({_PROMPTS_ACCEPTED}) or pass prompts=[...] "
                "for every video"
            )
        return video, prompts, options

    # transformers' Pipeline declares these steps abstract. A video is not one forward pass but a session that
    # propagates frame by frame (lazily, with streaming and per-video state), so __call__ runs sessions itself
    # and never reaches them.
    def preprocess(self, video, **options):
        raise NotImplementedError("video-object-tracking runs through __call__ / session(); it has no preprocess step")

    def _forward(self, model_inputs, **options):
        raise NotImplementedError("video-object-tracking runs through __call__ / session(); it has no _forward step")

    def postprocess(self, model_outputs, **options):
        raise NotImplementedError("video-object-tracking runs through __call__ / session(); it has no postprocess step")
