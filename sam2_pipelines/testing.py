"""Tiny randomly initialised SAM-family checkpoints and synthetic media, for tests, notebooks and demos.

Everything here is built locally: no network is touched. The checkpoints are real ``transformers``
models saved with ``save_pretrained`` together with their processor, so loading them back goes through
exactly the same path as a checkpoint downloaded from the Hub.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

#: Side length of the square model input of the tiny SAM 2 and EdgeTAM checkpoints.
TINY_IMAGE_SIZE = 256

#: Side length of the square model input of the tiny SAM 3 checkpoints (SAM 3's ViT has 14-pixel patches).
TINY_SAM3_SIZE = 112

_KINDS = ("image", "video", "edgetam", "edgetam-video", "sam3-tracker", "sam3-tracker-video", "sam3", "sam3-video")

#: Words the tiny SAM 3 tokenizer knows (each one token); other text is spelt out letter by letter.
TINY_SAM3_WORDS = ("red", "car", "truck", "person", "dog", "cat", "a", "the")


def _tiny_sam2_parts(size: int = TINY_IMAGE_SIZE) -> dict:
    """Return the sub-config dicts of a tiny Hiera SAM 2 for a square input of ``size`` pixels."""
    backbone = dict(
        model_type="sam2_hiera_det_model",
        hidden_size=16,
        num_attention_heads=1,
        blocks_per_stage=[1, 2, 1, 1],
        embed_dim_per_stage=[16, 32, 64, 128],
        num_attention_heads_per_stage=[1, 1, 1, 1],
        window_size_per_stage=[4, 4, 4, 4],
        global_attention_blocks=[2],
        image_size=[size, size],
        window_positional_embedding_background_size=[2, 2],
    )
    vision = dict(
        backbone_config=backbone,
        backbone_channel_list=[128, 64, 32, 16],
        backbone_feature_sizes=[[size // 4] * 2, [size // 8] * 2, [size // 16] * 2],
        fpn_hidden_size=128,
    )
    prompt = dict(hidden_size=128, image_size=size, patch_size=16, mask_input_channels=4)
    decoder = dict(hidden_size=128, mlp_dim=128, num_attention_heads=2, iou_head_hidden_dim=32)
    return dict(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)


def _tiny_memory_kwargs(hidden: int, size: int) -> dict:
    """Memory-side config values of a tiny video model whose prompt/decoder width is ``hidden``.

    The memory width stays 64: transformers hard-codes it in the memory cross-attention, and the object
    pointers (``hidden`` wide) must split into ``hidden // 64 > 1`` memory tokens.
    """
    return dict(
        memory_attention_rope_feat_sizes=[size // 16, size // 16],
        memory_attention_hidden_size=hidden,
        memory_attention_num_layers=1,
        memory_attention_mlp_hidden_size=2 * hidden,
        memory_encoder_hidden_size=hidden,
        memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=hidden,
        memory_fuser_embed_dim=hidden,
        memory_fuser_intermediate_dim=2 * hidden,
    )


def _tiny_edgetam_parts(size: int = TINY_IMAGE_SIZE) -> dict:
    """Sub-configs of a tiny EdgeTAM (RepViT backbone through timm, random weights).

    The backbone is spelled out: transformers' default EdgeTAM backbone config names its timm
    architecture under a misspelt key and so falls back to resnet50.
    """
    from transformers import EdgeTamVisionConfig, TimmWrapperConfig

    backbone = TimmWrapperConfig(
        architecture="repvit_m1",
        do_pooling=False,
        model_args={"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3]},
    )
    vision = EdgeTamVisionConfig(
        backbone_config=backbone,
        backbone_feature_sizes=[[size // 4] * 2, [size // 8] * 2, [size // 16] * 2],
        fpn_hidden_size=128,
    )
    prompt = dict(hidden_size=128, image_size=size, patch_size=16, mask_input_channels=4)
    decoder = dict(hidden_size=128, mlp_dim=128, num_attention_heads=2, iou_head_hidden_dim=32)
    return dict(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)


def _tiny_sam3_tracker(size: int, video: bool):
    """A tiny ``Sam3TrackerModel`` / ``Sam3TrackerVideoModel`` (SAM 3's ViT, 14-pixel patches) and its processor."""
    import transformers as tf

    vit = dict(
        model_type="sam3_vit_model",
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=size,
        patch_size=14,
        window_size=4,
        global_attn_indexes=[1],
        pretrain_image_size=56,
    )
    tokens = size // 14
    hidden = 128 if video else 32  # video: object pointers split into hidden // 64 > 1 memory tokens
    vision = tf.Sam3VisionConfig(backbone_config=vit, fpn_hidden_size=hidden, backbone_feature_sizes=[[4 * tokens] * 2, [2 * tokens] * 2, [tokens] * 2])
    parts = dict(
        vision_config=vision,
        prompt_encoder_config=dict(hidden_size=hidden, image_size=size, patch_size=14, mask_input_channels=4),
        mask_decoder_config=dict(hidden_size=hidden, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32),
    )
    image_processor = tf.Sam3ImageProcessor(size={"height": size, "width": size})
    if not video:
        return tf.Sam3TrackerModel(tf.Sam3TrackerConfig(**parts)).eval(), tf.Sam3TrackerProcessor(image_processor=image_processor, target_size=size)
    memory = _tiny_memory_kwargs(hidden, size)
    memory["memory_attention_rope_feat_sizes"] = [tokens, tokens]
    memory["memory_attention_feed_forward_hidden_size"] = memory.pop("memory_attention_mlp_hidden_size")
    model = tf.Sam3TrackerVideoModel(tf.Sam3TrackerVideoConfig(**parts, image_size=size, **memory)).eval()
    video_processor = tf.Sam2VideoVideoProcessor(
        size={"height": size, "width": size}, image_mean=image_processor.image_mean, image_std=image_processor.image_std
    )
    processor = tf.Sam3TrackerVideoProcessor(image_processor=image_processor, video_processor=video_processor, target_size=size)
    return model, processor


def tiny_clip_tokenizer():
    """A CLIP tokenizer over a handful of words (:data:`TINY_SAM3_WORDS`), written and read back locally."""
    import json
    import tempfile

    import transformers as tf

    letters = sorted(set("".join(TINY_SAM3_WORDS)) | set("abcdefghijklmnopqrstuvwxyz"))
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for piece in letters + [letter + "</w>" for letter in letters]:
        vocab[piece] = len(vocab)
    merges = []
    for word in TINY_SAM3_WORDS:
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            merged = parts[0] + parts[1]
            if f"{parts[0]} {parts[1]}" not in merges:
                merges.append(f"{parts[0]} {parts[1]}")
            vocab.setdefault(merged, len(vocab))
            parts = [merged] + parts[2:]
    with tempfile.TemporaryDirectory() as folder:
        with open(f"{folder}/vocab.json", "w") as file:
            json.dump(vocab, file)
        with open(f"{folder}/merges.txt", "w") as file:
            file.write("#version: 0.2\n" + "\n".join(merges) + "\n")
        return tf.CLIPTokenizer(f"{folder}/vocab.json", f"{folder}/merges.txt", model_max_length=32)


def _tiny_sam3(size: int, hidden: int = 32):
    """A tiny ``Sam3Model`` (text prompts: CLIP text encoder, DETR detector, mask head) and its ``Sam3Processor``."""
    import transformers as tf

    tokens = size // 14
    vit = dict(
        model_type="sam3_vit_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        image_size=size, patch_size=14, window_size=4, global_attn_indexes=[1], pretrain_image_size=56,
    )
    vision = dict(backbone_config=vit, fpn_hidden_size=hidden, backbone_feature_sizes=[[4 * tokens] * 2, [2 * tokens] * 2, [tokens] * 2])
    tokenizer = tiny_clip_tokenizer()
    text = dict(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, projection_dim=32, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=32, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    )
    small = dict(hidden_size=hidden, num_layers=1, num_attention_heads=2, intermediate_size=64)
    config = tf.Sam3Config(
        vision_config=vision,
        text_config=text,
        geometry_encoder_config=dict(small),
        detr_encoder_config=dict(small),
        detr_decoder_config=dict(small, num_queries=20),
        mask_decoder_config=dict(hidden_size=hidden, num_attention_heads=2, num_upsampling_stages=3),
    )
    image_processor = tf.Sam3ImageProcessor(size={"height": size, "width": size})
    return tf.Sam3Model(config).eval(), tf.Sam3Processor(image_processor=image_processor, tokenizer=tokenizer, target_size=size)


def nudge_sam3_video(model) -> None:
    """Make a randomly initialised ``Sam3VideoModel`` find and keep instances of any concept (in place).

    The detector's presence head is biased towards "present" and its query projection scaled, so detection scores
    spread over (0, 1) instead of all sitting near 0.25; the tracker's object-score bias makes tracked objects
    visible, so their masks are not blanked out.
    """
    import torch

    with torch.no_grad():
        model.detector_model.detr_decoder.presence_head.layer3.bias.fill_(4.0)
        model.detector_model.dot_product_scoring.query_proj.weight.mul_(40.0)
        model.tracker_model.mask_decoder.pred_obj_score_head.proj_out.bias.add_(2.0)


#: Sam3VideoConfig settings under which random weights keep what they find: tracked masks match detections at any
#: overlap, so instances keep their ids.
SAM3_VIDEO_MATCH_ANY = dict(assoc_iou_thresh=0.01, trk_assoc_iou_thresh=0.01)


def sam3_video_processor(image_processor, tokenizer):
    """A ``Sam3VideoProcessor`` around ``image_processor`` (its size and normalisation) and ``tokenizer``."""
    import transformers as tf

    size = image_processor.size["height"]
    video_processor = tf.Sam2VideoVideoProcessor(size={"height": size, "width": size}, image_mean=image_processor.image_mean, image_std=image_processor.image_std)
    return tf.Sam3VideoProcessor(image_processor=image_processor, video_processor=video_processor, tokenizer=tokenizer, target_size=size)


def _tiny_sam3_video(size: int):
    """A tiny ``Sam3VideoModel`` (text detector + tracker) and its ``Sam3VideoProcessor``, tuned so that its random
    weights find a few instances of any concept and keep tracking them (:func:`nudge_sam3_video`,
    :data:`SAM3_VIDEO_MATCH_ANY`); the hotstart delay and reconditioning period are short so that a few frames
    exercise them.
    """
    import transformers as tf

    detector, detector_processor = _tiny_sam3(size, hidden=128)  # the tracker's width (its video default)
    tracker, _ = _tiny_sam3_tracker(size, video=True)
    config = tf.Sam3VideoConfig(
        detector_config=detector.config.to_dict(), tracker_config=tracker.config.to_dict(), low_res_mask_size=4 * (size // 14),
        hotstart_delay=4, hotstart_unmatch_thresh=2, hotstart_dup_thresh=2, recondition_every_nth_frame=4, high_conf_thresh=0.6,
        high_iou_thresh=0.3, **SAM3_VIDEO_MATCH_ANY,
    )
    model = tf.Sam3VideoModel(config).eval()
    nudge_sam3_video(model)
    return model, sam3_video_processor(detector_processor.image_processor, detector_processor.tokenizer)


def build_tiny_model(kind: str = "image", size: int | None = None, seed: int = 0):
    """Build a tiny randomly initialised model and its processor.

    Args:
        kind: one of ``"image"`` (``Sam2Model``), ``"video"`` (``Sam2VideoModel``), ``"edgetam"``
            (``EdgeTamModel``), ``"edgetam-video"`` (``EdgeTamVideoModel``), ``"sam3-tracker"``
            (``Sam3TrackerModel``), ``"sam3-tracker-video"`` (``Sam3TrackerVideoModel``) or ``"sam3"``
            (``Sam3Model``, text prompts; its tokenizer knows only :data:`TINY_SAM3_WORDS` as words) or
            ``"sam3-video"`` (``Sam3VideoModel``: text prompts on videos, same tokenizer).
        size: square input size of the model: a multiple of 32 (default :data:`TINY_IMAGE_SIZE`), for SAM 3
            a multiple of 56 (default :data:`TINY_SAM3_SIZE`).
        seed: torch seed used for the random initialisation, so two builds are identical.

    Returns:
        ``(model, processor)``; the processor is a ``Sam2Processor`` for image models, a
        ``Sam2VideoProcessor`` for video models, and their SAM 3 tracker counterparts for the SAM 3 kinds.
    """
    import torch
    import transformers as tf

    if kind not in _KINDS:
        raise ValueError(f"unknown tiny model kind {kind!r}; accepted: {', '.join(_KINDS)}")
    sam3 = kind.startswith("sam3")
    if size is None:
        size = TINY_SAM3_SIZE if sam3 else TINY_IMAGE_SIZE
    step = 56 if sam3 else 32
    if size % step:
        raise ValueError(f"size must be a multiple of {step} for kind {kind!r}, got {size}")
    torch.manual_seed(seed)
    if kind == "sam3":
        return _tiny_sam3(size)
    if kind == "sam3-video":
        return _tiny_sam3_video(size)
    if sam3:
        return _tiny_sam3_tracker(size, video=kind.endswith("video"))
    image_processor = tf.Sam2ImageProcessor(
        size={"height": size, "width": size}, mask_size={"height": size // 4, "width": size // 4}
    )
    if kind == "image":
        model = tf.Sam2Model(tf.Sam2Config(**_tiny_sam2_parts(size)))
    elif kind == "video":
        model = tf.Sam2VideoModel(tf.Sam2VideoConfig(**_tiny_sam2_parts(size), image_size=size, **_tiny_memory_kwargs(128, size)))
    elif kind == "edgetam":
        model = tf.EdgeTamModel(tf.EdgeTamConfig(**_tiny_edgetam_parts(size)))
    else:
        model = tf.EdgeTamVideoModel(
            tf.EdgeTamVideoConfig(
                **_tiny_edgetam_parts(size),
                image_size=size,
                perceiver_resampler_num_latents=16,
                perceiver_resampler_num_latents_2d=16,
                memory_attention_rope_k_sizes=[4, 4],
                **_tiny_memory_kwargs(128, size),
            )
        )
    model.eval()
    if kind.endswith("video"):
        video_processor = tf.Sam2VideoVideoProcessor(size={"height": size, "width": size})
        processor = tf.Sam2VideoProcessor(
            image_processor=image_processor, video_processor=video_processor, target_size=size
        )
    else:
        processor = tf.Sam2Processor(image_processor=image_processor, target_size=size)
    return model, processor


def save_tiny_model(directory: str | os.PathLike, kind: str = "image", size: int | None = None, seed: int = 0) -> Path:
    """Build a tiny model (see :func:`build_tiny_model`) and ``save_pretrained`` it with its processor.

    Returns the directory, ready for ``pipeline(task, model=str(directory))``.
    """
    directory = Path(directory)
    model, processor = build_tiny_model(kind, size=size, seed=seed)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def synthetic_image(height: int = 120, width: int = 160, seed: int = 0) -> np.ndarray:
    """An RGB uint8 image with a few flat-coloured shapes on a noisy background."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 40, size=(height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    circle = (yy - height * 0.4) ** 2 + (xx - width * 0.3) ** 2 < (min(height, width) * 0.2) ** 2
    image[circle] = (220, 60, 60)
    image[int(height * 0.55) : int(height * 0.9), int(width * 0.55) : int(width * 0.9)] = (60, 200, 90)
    return image


def synthetic_frames(num_frames: int = 8, height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    """``(num_frames, height, width, 3)`` uint8 frames of a square moving right over a noisy background."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 40, size=(num_frames, height, width, 3), dtype=np.uint8)
    side = max(8, min(height, width) // 4)
    for t in range(num_frames):
        x0 = int((width - side) * t / max(1, num_frames - 1))
        y0 = height // 2 - side // 2
        frames[t, y0 : y0 + side, x0 : x0 + side] = (230, 200, 40)
    return frames


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: int = 10, rotation: int = 0, mirror: tuple[bool, bool] = (False, False)) -> Path:
    """Encode ``(T, H, W, 3)`` uint8 frames into an H.264 mp4 with PyAV (even sizes are required); ``rotation`` and
    ``mirror``: the container's display rotation (counter-clockwise degrees; -90 is a phone's portrait video) and
    mirroring after it (horizontal, vertical)."""
    from sam2_pipelines.io.video import encode_h264

    path = Path(path)
    encode_h264(np.asarray(frames, dtype=np.uint8), path, fps, options={"crf": "10"}, rotation=rotation, mirror=mirror)
    return path


def synthetic_video(path: str | os.PathLike, num_frames: int = 8, height: int = 96, width: int = 128, fps: int = 10, rotation: int = 0, mirror: tuple[bool, bool] = (False, False)) -> Path:
    """Write :func:`synthetic_frames` to ``path`` as an mp4 (stored ``height`` x ``width``, shown turned by
    ``rotation`` and mirrored by ``mirror``) and return the path."""
    return write_video(path, synthetic_frames(num_frames, height, width), fps=fps, rotation=rotation, mirror=mirror)


def save_tiny_video_model(
    directory: str | os.PathLike,
    kind: str = "video",
    num_maskmem: int = 7,
    max_object_pointers: int = 16,
    visible_bias: float = 0.0,
    seed: int = 0,
    size: int | None = None,
) -> Path:
    """Save a tiny video model (``"video"`` or ``"edgetam-video"``) with chosen memory windows.

    Args:
        num_maskmem: frames of mask memory the model attends to (``config.num_maskmem``).
        max_object_pointers: object pointers it attends to (``config.max_object_pointers_in_encoder``).
        visible_bias: added to the bias of the object-score head; a positive value makes the random model
            report objects as visible, so its masks are not blanked out.
        seed: torch seed of the random initialisation.
        size: square input size of the model (as :func:`build_tiny_model`; smaller is faster).

    Short windows let a few-frame video exercise what happens to memories that fall out of them.
    """
    import torch

    if kind not in ("video", "edgetam-video", "sam3-tracker-video"):
        raise ValueError(f"kind must be 'video', 'edgetam-video' or 'sam3-tracker-video', got {kind!r}")
    model, processor = build_tiny_model(kind, size=size, seed=seed)
    config = model.config
    config.num_maskmem = num_maskmem
    config.max_object_pointers_in_encoder = max_object_pointers
    torch.manual_seed(seed)
    model = type(model)(config).eval()
    with torch.no_grad():
        model.mask_decoder.pred_obj_score_head.proj_out.bias.add_(visible_bias)
    directory = Path(directory)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


class ModelFault:
    """Inject a fault into a model for robustness tests: count the calls of its parts and raise ``error`` at the
    ``when``-th (from 1), once.

    Args:
        model: any ``torch.nn.Module``.
        when: the call that raises (``None``: only count).
        error: the exception class raised (``KeyboardInterrupt``, ``MemoryError``, ...).
        parts: names of the submodules whose calls count (default: every direct submodule).

    ``calls`` counts the calls so far, ``fired`` says whether the fault was raised; :meth:`remove` takes the
    hooks off.
    """

    def __init__(self, model, when: int | None = None, error: type[BaseException] = KeyboardInterrupt, parts: tuple[str, ...] | None = None):
        self.calls, self.when, self.error, self.fired = 0, when, error, False
        modules = [module for _, module in model.named_children()] if parts is None else [getattr(model, part) for part in parts]
        self.handles = [module.register_forward_pre_hook(self._count) for module in modules]

    def _count(self, module, args):
        self.calls += 1
        if self.calls == self.when and not self.fired:
            self.fired = True
            raise self.error("injected fault")

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def run_with_fault(model, steps, fault_step: int | None = None, when: int = 1, error: type[BaseException] = KeyboardInterrupt, parts: tuple[str, ...] | None = None) -> tuple[list, list[int]]:
    """Run ``steps`` (callables returning lists of results) in order; step ``fault_step`` is first interrupted at
    the ``when``-th call of the model's ``parts`` (:class:`ModelFault`) and then retried. Returns the results (of
    the retried step, not the interrupted one) and the number of part calls of each step."""
    results, calls = [], []
    for index, step in enumerate(steps):
        if index == fault_step:
            fault = ModelFault(model, when, error, parts)
            try:
                step()
            except error:
                pass
            finally:
                fault.remove()
            if not fault.fired:
                raise ValueError(f"step {index} made {fault.calls} calls, fewer than when={when}")
        counter = ModelFault(model, parts=parts)
        try:
            results += step()
        finally:
            counter.remove()
        calls.append(counter.calls)
    return results, calls
