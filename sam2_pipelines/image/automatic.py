"""Automatic mask generation over an :class:`~sam2_pipelines.image.model.ImageModel`, step by step as Meta's
``SAM2AutomaticMaskGenerator`` (a generator over an image predictor)::

    per crop (encoded by the caller): batches of grid points -> decoder
          -> filter by predicted IoU (on low-resolution logits) -> upsample only the survivors
          -> stability score -> binarise -> boxes -> crop-edge filter -> RLE -> per-crop box NMS
    all crops -> cross-crop NMS preferring smaller crops -> optional small-region removal -> records

Candidate masks travel as :class:`MaskData` (one row per mask, as Meta's ``MaskData``). The array logic is
in :mod:`sam2_pipelines.image.amg` and :mod:`sam2_pipelines.core.masks`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from sam2_pipelines.image import amg
from sam2_pipelines.image.model import ImageModel
from sam2_pipelines.image.options import AmgOptions
from sam2_pipelines.core.masks import LOGIT_CLAMP, area_rle, batched_mask_to_box, decode_rle, encode_rle_batch, remove_small_regions, rle_in_format, rle_to_uncompressed

#: Upper bound on the number of float32 pixels of upsampled logits held at once (about 128 MB).
UPSAMPLE_CHUNK_PIXELS = 2**25


@dataclasses.dataclass
class MaskData:
    """Candidate masks, one row each: XYXY ``boxes`` in image pixels, predicted IoU, the grid point that
    prompted the mask, its stability score, its COCO RLE and the crop box it was found in."""

    boxes: torch.Tensor
    iou_preds: torch.Tensor
    points: torch.Tensor
    stability_score: torch.Tensor
    rles: list
    crop_boxes: torch.Tensor

    @classmethod
    def empty(cls) -> MaskData:
        return cls(
            boxes=torch.zeros(0, 4, dtype=torch.long),
            iou_preds=torch.zeros(0),
            points=torch.zeros(0, 2),
            stability_score=torch.zeros(0),
            rles=[],
            crop_boxes=torch.zeros(0, 4, dtype=torch.long),
        )

    @classmethod
    def cat(cls, parts: list[MaskData]) -> MaskData:
        """All rows of ``parts``, in order (no parts: no rows)."""
        parts = [cls.empty(), *parts]
        return cls(
            **{field: torch.cat([getattr(p, field) for p in parts]) for field in cls._tensor_fields()},
            rles=[rle for p in parts for rle in p.rles],
        )

    @staticmethod
    def _tensor_fields() -> tuple[str, ...]:
        return ("boxes", "iou_preds", "points", "stability_score", "crop_boxes")

    def __len__(self) -> int:
        return len(self.rles)

    def filter(self, keep: torch.Tensor) -> MaskData:
        """The rows ``keep`` (indices or a bool mask), in that order."""
        if keep.dtype == torch.bool:
            keep = torch.nonzero(keep).flatten()
        return MaskData(
            **{field: getattr(self, field)[keep] for field in self._tensor_fields()},
            rles=[self.rles[i] for i in keep.tolist()],
        )


class AutomaticMaskGenerator:
    """Every mask of an image's crops: the automatic mode of the ``mask-generation`` pipeline.

    Args:
        model: the image model adapter (encodes nothing here: the caller gives each crop's embedding).
        options: resolved options (:func:`~sam2_pipelines.image.options.resolve_options`).
    """

    def __init__(self, model: ImageModel, options: AmgOptions):
        self.model = model
        self.options = options

    def num_batches(self, layer_idx: int) -> int:
        """Decoder batches of one crop of crop layer ``layer_idx`` (for progress bars)."""
        return -(-len(self.options.layer_grids[layer_idx]) // self.options.points_per_batch)

    def process_crop(self, embedding: dict, image_hw, crop_box, layer_idx: int, resized_hw, progress=None) -> MaskData:
        """All point batches of one crop, then box NMS within the crop; results in image coordinates."""
        x0, y0, x1, y1 = crop_box
        crop_hw = (y1 - y0, x1 - x0)
        points_scale = np.array(crop_hw)[None, ::-1]
        points_for_image = self.options.layer_grids[layer_idx] * points_scale
        batches = []  # only batches with survivors: many small empty results would fragment the heap
        for batch in amg.batch_ranges(len(points_for_image), self.options.points_per_batch):
            result = self._process_batch(embedding, points_for_image[batch], crop_hw, crop_box, image_hw, resized_hw)
            if len(result):
                batches.append(result)
            if progress is not None:
                progress.update(1)
        data = MaskData.cat(batches)
        data = data.filter(amg.box_nms(data.boxes, data.iou_preds, self.options.box_nms_thresh))
        data.boxes = amg.uncrop_boxes_xyxy(data.boxes, crop_box)
        data.points = amg.uncrop_points(data.points, crop_box)
        data.crop_boxes = torch.tensor([crop_box for _ in range(len(data))], dtype=torch.long).reshape(-1, 4)
        return data

    def _process_batch(self, embedding, points, crop_hw, crop_box, orig_hw, resized_hw) -> MaskData:
        """One batch of grid points: decode, IoU filter on low-res logits, then upsample survivors only."""
        opts, model = self.options, self.model
        orig_h, orig_w = orig_hw
        points = torch.as_tensor(points, dtype=torch.float32)
        in_points = model.to_model_coords(points, crop_hw, resized_hw)
        in_labels = torch.ones(len(in_points), dtype=torch.long)
        low_res, iou_preds, points = self._candidates(embedding, in_points[:, None, :], in_labels[:, None], points)
        if opts.use_m2m:
            low_res, iou_preds = self._refine_with_m2m(embedding, model.to_model_coords(points, crop_hw, resized_hw), low_res)
        if opts.pred_iou_thresh > 0.0:
            keep = iou_preds > opts.pred_iou_thresh
            low_res, iou_preds, points = low_res[keep.to(low_res.device)], iou_preds[keep], points[keep]

        parts = []
        chunk = max(1, UPSAMPLE_CHUNK_PIXELS // (crop_hw[0] * crop_hw[1]))
        for part in amg.batch_ranges(len(low_res), chunk):
            logits = model.upsample(low_res[part], crop_hw, resized_hw)
            stability = amg.calculate_stability_score(logits, opts.mask_threshold, opts.stability_score_offset).cpu()
            keep = torch.ones(len(logits), dtype=torch.bool)
            if opts.stability_score_thresh > 0.0:
                keep = stability >= opts.stability_score_thresh
            masks = (logits[keep.to(logits.device)] > opts.mask_threshold).cpu()  # boxes and RLE on the CPU
            del logits
            boxes = batched_mask_to_box(masks)
            keep_edge = ~amg.is_box_near_crop_edge(boxes, crop_box, [0, 0, orig_w, orig_h])
            masks = masks[keep_edge]
            parts.append(
                MaskData(
                    boxes=boxes[keep_edge],
                    iou_preds=iou_preds[part][keep][keep_edge],
                    points=points[part][keep][keep_edge],
                    stability_score=stability[keep][keep_edge],
                    rles=encode_rle_batch(amg.uncrop_masks(masks, crop_box, orig_h, orig_w)),
                    crop_boxes=torch.zeros(len(masks), 4, dtype=torch.long),  # set per crop by process_crop
                )
            )
            del masks
        return MaskData.cat(parts)

    def _candidates(self, embedding, in_points, in_labels, points):
        """Decode one batch of grid points; return ``(low-res logits, predicted IoU, point)`` per candidate mask.

        Candidates are the point's masks in point-major order. With the fast decoder, single-pass multimask
        output and no m2m refinement, the IoU threshold is applied before any mask is computed (as Meta
        filters on the predicted IoU first): only candidates above it are returned, and only their points'
        masks are upscaled. Otherwise every candidate is returned and filtered by the caller.
        """
        opts, model = self.options, self.model
        if model.fast and opts.multimask_output and not opts.use_m2m:
            threshold = opts.pred_iou_thresh
            decoded = model.decode_fast(embedding, in_points, in_labels, masks_for=lambda iou: (iou[:, 1:] > threshold).any(dim=1))
            iou_preds = decoded.iou_scores[:, 1:].float().cpu()  # filters and points live on the CPU
            keep = iou_preds > threshold
            rows = decoded.mask_rows.cpu()
            low_res = decoded.mask_logits[:, 1:].float()
            keep = keep[rows]
            points = points[rows].repeat_interleave(iou_preds.shape[1], dim=0)[keep.flatten()]
            return low_res[keep.to(low_res.device)], iou_preds[rows][keep], points
        low_res, iou_preds = model.decode(embedding, in_points, in_labels, multimask_output=opts.multimask_output)
        k = low_res.shape[1]
        return low_res.flatten(0, 1), iou_preds.flatten(0, 1).cpu(), points.repeat_interleave(k, dim=0)

    def _refine_with_m2m(self, embedding, in_points, low_res):
        """One refinement step: each point again, with its own previous (clamped) logits as mask prompt."""
        low_res = low_res.clamp(-LOGIT_CLAMP, LOGIT_CLAMP)
        labels = torch.ones(len(in_points), 1, dtype=torch.long)
        new_logits, new_iou = [], []
        for part in amg.batch_ranges(len(in_points), self.options.points_per_batch):
            logits, iou = self.model.decode(embedding, in_points[part][:, None], labels[part], masks=low_res[part], multimask_output=False)
            new_logits.append(logits[:, 0])
            new_iou.append(iou[:, 0])
        if not new_logits:
            return low_res, torch.zeros(0)
        return torch.cat(new_logits), torch.cat(new_iou).cpu()

    def merge_crops(self, crop_results: list[MaskData]) -> MaskData:
        """Concatenate crops, remove duplicates across crops (smaller crops win), then small-region removal."""
        opts = self.options
        data = MaskData.cat(crop_results)
        if len(crop_results) > 1:
            data = data.filter(amg.box_nms(data.boxes, amg.crop_preference_scores(data.crop_boxes), opts.crop_nms_thresh))
        if opts.min_mask_region_area > 0:
            data = postprocess_small_regions(data, opts.min_mask_region_area, max(opts.box_nms_thresh, opts.crop_nms_thresh))
        return data


def postprocess_small_regions(data: MaskData, min_area: float, nms_thresh: float) -> MaskData:
    """Fill holes and remove islands smaller than ``min_area`` pixels in every mask, then re-run box NMS.

    Follows Meta's ``postprocess_small_regions``: masks changed by the clean-up get NMS score 0 and
    unchanged ones 1, so NMS prefers masks that needed no clean-up; the RLE and box of a kept changed
    mask are replaced by the cleaned ones. Works one mask at a time (no stack of full-size masks).
    """
    if not len(data):
        return data
    new_rles, new_boxes, scores = [], [], []
    for rle in data.rles:
        mask = decode_rle(rle)
        mask, changed_holes = remove_small_regions(mask, min_area, mode="holes")
        mask, changed_islands = remove_small_regions(mask, min_area, mode="islands")
        changed = changed_holes or changed_islands
        scores.append(0.0 if changed else 1.0)
        new_boxes.append(batched_mask_to_box(torch.as_tensor(mask)))
        new_rles.append(encode_rle_batch(mask[None])[0] if changed else rle)
    boxes = torch.stack(new_boxes)
    keep = amg.box_nms(boxes, torch.tensor(scores), nms_thresh)
    data = dataclasses.replace(data, rles=list(data.rles), boxes=data.boxes.clone())
    for i in keep.tolist():
        if scores[i] == 0.0:
            data.rles[i] = new_rles[i]
            data.boxes[i] = boxes[i]
    return data.filter(keep)


def result_of(records: list[dict], score_key: str) -> dict:
    """``{"masks", "scores", "records"}``: the records with their segmentations and ``score_key`` values listed."""
    return {
        "masks": [record["segmentation"] for record in records],
        "scores": np.array([record[score_key] for record in records], dtype=np.float32),
        "records": records,
    }


def records(data: MaskData, output_mode: str = "binary_mask", output_rle_mask: bool = False, output_bboxes_mask: bool = False) -> dict:
    """The pipeline's automatic-mode result: Meta-style records, plus the masks and scores as lists.

    ``output_mode`` picks the ``segmentation`` format (``"binary_mask"``, ``"uncompressed_rle"``,
    ``"coco_rle"``); ``output_rle_mask`` / ``output_bboxes_mask`` add transformers' built-in outputs.
    """
    out = []
    for idx, rle in enumerate(data.rles):
        out.append(
            {
                "segmentation": rle_in_format(rle, output_mode),
                "area": area_rle(rle),
                "bbox": amg.box_xyxy_to_xywh(data.boxes[idx].float()),
                "predicted_iou": data.iou_preds[idx].item(),
                "point_coords": [data.points[idx].float().tolist()],
                "stability_score": data.stability_score[idx].item(),
                "crop_box": amg.box_xyxy_to_xywh(data.crop_boxes[idx].float()),
            }
        )
    result = result_of(out, "predicted_iou")
    if output_rle_mask:  # transformers' built-in outputs
        result["rle_mask"] = [rle_to_uncompressed(rle) for rle in data.rles]
    if output_bboxes_mask:
        result["bounding_boxes"] = data.boxes.reshape(-1, 4).clone()
    return result
