"""Full-size SAM 3 (random weights, transformers' default configs: 1008-pixel input, ~860M parameters) on the real
sample media: text prompts on an image and on video frames give what transformers' own SAM 3 API gives.

The tiny models of the fast suite cover every path; this checks that nothing depends on their small sizes (the
1008-pixel geometry, 288-pixel low-resolution masks, the full-size detector and tracker). Three frames do not
fill the memory windows; the tiny models' tests exercise those. Like the tiny models, the random detector is nudged to find a few instances (presence head biased
towards "present", query projection scaled so scores spread out) and tracked objects are reported visible;
``max_num_objects`` bounds the tracker's work. The tokenizer is the small local one of the tiny models (no
network): its token ids are valid in SAM 3's full vocabulary.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import pipeline

from sam2_pipelines import testing
from sam2_pipelines.io.video import open_video

pytestmark = pytest.mark.slow

MEDIA = Path(__file__).resolve().parents[2] / "media"
NUM_FRAMES = 3


@pytest.fixture(scope="module")
def full_size_sam3(tmp_path_factory):
    """``(video model dir, image model dir)``: a random full-size ``Sam3VideoModel`` and the ``Sam3Model`` made of
    its detector, saved with their processors."""
    import transformers as tf

    torch.manual_seed(0)
    config = tf.Sam3VideoConfig(max_num_objects=2, hotstart_delay=2, hotstart_unmatch_thresh=1, hotstart_dup_thresh=1, **testing.SAM3_VIDEO_MATCH_ANY)
    model = tf.Sam3VideoModel(config).eval()
    testing.nudge_sam3_video(model)
    image_processor = tf.Sam3ImageProcessor()
    size = image_processor.size["height"]
    tokenizer = testing.tiny_clip_tokenizer()
    video_dir = tmp_path_factory.mktemp("sam3-full-video")
    model.save_pretrained(video_dir)
    testing.sam3_video_processor(image_processor, tokenizer).save_pretrained(video_dir)
    detector = model.detector_model
    image_dir = tmp_path_factory.mktemp("sam3-full-image")
    detector.save_pretrained(image_dir)
    tf.Sam3Processor(image_processor=image_processor, tokenizer=tokenizer, target_size=size).save_pretrained(image_dir)
    del model, detector
    return str(video_dir), str(image_dir)


def test_full_size_text_prompts_on_an_image(full_size_sam3):
    segmenter = pipeline("mask-generation", model=full_size_sam3[1])
    assert type(segmenter.model).__name__ == "Sam3Model" and segmenter.model.config.image_size == 1008
    image = _truck()
    processor, model = segmenter.processor, segmenter.model
    inputs = processor(images=image, text="truck", return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    probabilities = (outputs.pred_logits.sigmoid() * outputs.presence_logits.sigmoid()).flatten()
    threshold = float(probabilities.sort(descending=True).values[4])  # the five best instances pass
    theirs = processor.post_process_instance_segmentation(outputs, threshold=threshold, mask_threshold=0.5, target_sizes=inputs["original_sizes"].tolist())[0]
    ours = segmenter(image, text="truck", score_threshold=threshold)
    assert len(ours["records"]) == len(theirs["scores"]) > 0
    np.testing.assert_allclose(ours["scores"], theirs["scores"].numpy(), rtol=0, atol=1e-5)
    for record, mask in zip(ours["records"], theirs["masks"]):
        assert np.array_equal(record["segmentation"], mask.numpy().astype(bool))


def _truck() -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(MEDIA / "truck.jpg").convert("RGB"))


def test_full_size_text_prompts_on_video_frames(full_size_sam3):
    tracker = pipeline("video-object-tracking", model=full_size_sam3[0])
    assert type(tracker.model).__name__ == "Sam3VideoModel"
    source = open_video(str(MEDIA / "bedroom.mp4"))
    frames = [np.asarray(source[i]) for i in range(NUM_FRAMES)]
    source.close()
    ours = tracker(frames, prompts=[{"frame": 0, "text": "person"}])
    processor, model = tracker.processor, tracker.model
    session = processor.init_video_session(video=frames, inference_device="cpu")
    processor.add_text_prompt(session, "person")
    theirs = [processor.postprocess_outputs(session, output) for output in model.propagate_in_video_iterator(session)]
    assert [r["frame_idx"] for r in ours] == list(range(NUM_FRAMES))
    for result, expected in zip(ours, theirs, strict=True):
        assert result["object_ids"] == expected["object_ids"].tolist()
        np.testing.assert_array_equal(result["masks"][:, 0], expected["masks"].numpy())
        np.testing.assert_array_equal(result["scores"], expected["scores"].numpy().astype(np.float32))
    assert any(result["masks"].any() for result in ours), "the random model found nothing: the comparison shows little"
