"""The ``video-object-tracking`` pipeline: prompted tracking of objects through a video."""

from __future__ import annotations

import numpy as np
import torch
from transformers import Pipeline


class VideoObjectTrackingPipeline(Pipeline):
    """Track prompted objects through a video with ``Sam2VideoModel`` or ``EdgeTamVideoModel``.

    ``tracker(frames, prompts=[{"frame": 0, "obj_id": 1, "points": [[x, y]], "labels": [1]}])`` returns a
    list with one record per frame: ``{"frame_idx", "object_ids", "masks", "scores"}``.
    """

    _load_processor = True
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def _sanitize_parameters(self, prompts=None, **kwargs):
        return {}, {"prompts": prompts or []}, {}

    def __call__(self, video, **kwargs):
        """Track the prompted objects through ``video`` (a list of frames)."""
        preprocess, forward, post = self._sanitize_parameters(**kwargs)
        return self.postprocess(self._forward(self.preprocess(video, **preprocess), **forward), **post)

    def preprocess(self, video):
        """Start an inference session over the frames."""
        frames = [np.asarray(f) for f in video]
        return self.processor.init_video_session(video=frames, inference_device=self.device, dtype=self.model.dtype)

    def _forward(self, session, prompts):
        for prompt in prompts:
            self.processor.add_inputs_to_inference_session(
                inference_session=session,
                frame_idx=prompt["frame"],
                obj_ids=prompt["obj_id"],
                input_points=[[prompt["points"]]],
                input_labels=[[prompt["labels"]]],
            )
        results = []
        with torch.inference_mode():
            start = min((p["frame"] for p in prompts), default=0)
            for out in self.model.propagate_in_video_iterator(session, start_frame_idx=start):
                masks = self.processor.post_process_masks(
                    [out.pred_masks], original_sizes=[[session.video_height, session.video_width]], binarize=True
                )[0]
                results.append({"frame_idx": out.frame_idx, "object_ids": list(session.obj_ids), "masks": masks.cpu().numpy(), "scores": out.object_score_logits.float().cpu().numpy() if out.object_score_logits is not None else None})
        return results

    def postprocess(self, results):
        """Return the per-frame records."""
        return results
