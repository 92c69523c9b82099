"""Shared fixtures: tiny random SAM-family checkpoints saved to disk, and synthetic media.

Each checkpoint is written once per test session with ``save_pretrained`` and loaded back by the tests
through ``transformers.pipeline(...)``: the real loading path, with no network.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np
import pytest

import sam2_pipelines  # noqa: F401  (registers the pipelines)
from sam2_pipelines import testing


def _saved(tmp_path_factory, kind: str, **options) -> str:
    """Save a tiny checkpoint of ``kind`` in a fresh temporary directory and return its path."""
    return str(testing.save_tiny_model(tmp_path_factory.mktemp(f"tiny-{kind}"), kind, **options))


@pytest.fixture(scope="session")
def tiny_image_model_dir(tmp_path_factory):
    """Directory holding a tiny ``Sam2Model`` + ``Sam2Processor``."""
    return _saved(tmp_path_factory, "image")


@pytest.fixture(scope="session")
def tiny_video_model_dir(tmp_path_factory):
    """Directory holding a tiny ``Sam2VideoModel`` + ``Sam2VideoProcessor`` (128-pixel input), the one video
    checkpoint of the suite.

    Its objects are reported visible (``visible_bias``): as initialised, a random model scores every object
    just below visible and blanks its masks, so results would not show what tracking did.
    """
    directory = tmp_path_factory.mktemp("tiny-video")
    return str(testing.save_tiny_video_model(directory, visible_bias=2.0, size=128))


@pytest.fixture(scope="session")
def tiny_edgetam_model_dir(tmp_path_factory):
    """Directory holding a tiny ``EdgeTamModel`` + ``Sam2Processor``."""
    return _saved(tmp_path_factory, "edgetam")


@pytest.fixture(scope="session")
def tiny_sam3_tracker_model_dir(tmp_path_factory):
    """Directory holding a tiny ``Sam3TrackerModel`` + ``Sam3TrackerProcessor`` (112-pixel input)."""
    return _saved(tmp_path_factory, "sam3-tracker")


@pytest.fixture(scope="session")
def tiny_sam3_model_dir(tmp_path_factory):
    """Directory holding a tiny ``Sam3Model`` (text prompts) + ``Sam3Processor`` (112-pixel input)."""
    return _saved(tmp_path_factory, "sam3")


@pytest.fixture(scope="session")
def tiny_sam3_video_model_dir(tmp_path_factory):
    """Directory holding a tiny ``Sam3VideoModel`` (text prompts on videos) + ``Sam3VideoProcessor`` (112-pixel
    input), tuned to find and keep a few instances of any concept (:func:`sam2_pipelines.testing.build_tiny_model`)."""
    return _saved(tmp_path_factory, "sam3-video")


@pytest.fixture(scope="session")
def tiny_sam3_tracker_video_model_dir(tmp_path_factory):
    """Directory holding a tiny ``Sam3TrackerVideoModel`` + ``Sam3TrackerVideoProcessor`` (112-pixel input) whose
    objects are reported visible."""
    directory = tmp_path_factory.mktemp("tiny-sam3-tracker-video")
    return str(testing.save_tiny_video_model(directory, kind="sam3-tracker-video", visible_bias=2.0))


@pytest.fixture(scope="session")
def tiny_edgetam_video_model_dir(tmp_path_factory):
    """Directory holding a tiny ``EdgeTamVideoModel`` + ``Sam2VideoProcessor``."""
    return _saved(tmp_path_factory, "edgetam-video")


@pytest.fixture(scope="session")
def visible_edgetam_tracker(tmp_path_factory):
    """Tracker over a 128-pixel tiny ``EdgeTamVideoModel`` whose objects are reported visible."""
    from transformers import pipeline

    directory = testing.save_tiny_video_model(tmp_path_factory.mktemp("visible-edgetam-video"), kind="edgetam-video", visible_bias=2.0, size=128)
    return pipeline("video-object-tracking", model=str(directory))


def _tiny_sam1(directory, hq: bool = False) -> str:
    """A tiny random SAM 1 ``SamModel`` (or SAM-HQ ``SamHQModel``): longest-side resize + padding."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    # initializer_range: SamVisionConfig's default (1e-10) gives near-zero convolutions, so the neck's layer norms would
    # scale up rounding noise: image embeddings that are noise, and results that change with the summation order.
    vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_dim=64, image_size=256, global_attn_indexes=[1], window_size=4,
                  initializer_range=0.02)
    prompt = dict(image_size=256, patch_size=16)
    if hq:
        config = tf.SamHQConfig(
            vision_config=tf.SamHQVisionConfig(**vision), prompt_encoder_config=tf.SamHQPromptEncoderConfig(**prompt),
            mask_decoder_config=tf.SamHQMaskDecoderConfig(vit_dim=32).to_dict(),
        )
        model, processor = tf.SamHQModel(config), tf.SamHQProcessor
    else:
        config = tf.SamConfig(vision_config=tf.SamVisionConfig(**vision), prompt_encoder_config=tf.SamPromptEncoderConfig(**prompt), mask_decoder_config={})
        model, processor = tf.SamModel(config), tf.SamProcessor
    image_processor = tf.SamImageProcessor(
        size={"longest_edge": 256}, pad_size={"height": 256, "width": 256}, mask_size={"longest_edge": 64}, mask_pad_size={"height": 64, "width": 64}
    )
    model.eval().save_pretrained(directory)
    processor(image_processor=image_processor).save_pretrained(directory)
    return str(directory)


@pytest.fixture(scope="session")
def tiny_sam1_model_dir(tmp_path_factory):
    """Directory holding a tiny random SAM 1 ``SamModel`` + ``SamProcessor`` (longest-side resize + padding)."""
    return _tiny_sam1(tmp_path_factory.mktemp("tiny-sam1"))


@pytest.fixture(scope="session")
def tiny_sam_hq_model_dir(tmp_path_factory):
    """Directory holding a tiny random ``SamHQModel`` + ``SamHQProcessor``."""
    return _tiny_sam1(tmp_path_factory.mktemp("tiny-sam-hq"), hq=True)


@pytest.fixture(scope="session")
def mask_generator(tiny_image_model_dir):
    """The registered ``mask-generation`` pipeline over the tiny Sam2Model."""
    from transformers import pipeline

    return pipeline("mask-generation", model=tiny_image_model_dir)


@pytest.fixture(scope="session")
def tracker(tiny_video_model_dir):
    """The registered ``video-object-tracking`` pipeline over the tiny Sam2VideoModel (objects visible)."""
    from transformers import pipeline

    return pipeline("video-object-tracking", model=tiny_video_model_dir)


@pytest.fixture
def image() -> np.ndarray:
    """A 120x160 RGB uint8 synthetic image."""
    return testing.synthetic_image()


@pytest.fixture
def frames() -> np.ndarray:
    """Eight 96x128 RGB uint8 synthetic frames of a moving square."""
    return testing.synthetic_frames()


@pytest.fixture
def video_path(tmp_path) -> str:
    """An 8-frame 96x128 H.264 mp4 written with PyAV."""
    return str(testing.synthetic_video(tmp_path / "clip.mp4"))
