"""Frame preprocessing: our default (``frame_resize="bicubic"``) vs Meta's video frame loader, bit for bit.

Meta's ``SAM2VideoPredictor.init_state`` reads a JPEG folder with ``sam2.utils.misc.load_video_frames``
(PIL bicubic resize to ``image_size`` x ``image_size``, ``/ 255``, ImageNet mean/std). Our sessions read
the same folder through ``video_io.open_video`` and preprocess each frame with
:func:`sam2_pipelines.video.frame_pixels.frame_pixels`; the tensors must be equal, not just close. No model is
needed: the processor is the one a converted Meta checkpoint gets (``convert.build_processor``).
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from sam2_pipelines import testing

from sam2_pipelines.io import video as video_io
from sam2_pipelines.models.convert import build_processor
from sam2_pipelines.video.frame_pixels import frame_pixels

pytestmark = [pytest.mark.parity, pytest.mark.slow]

NUM_FRAMES, HEIGHT, WIDTH = 11, 120, 160  # 11 frames: "10.jpg" must come after "9.jpg" in both readers


@pytest.fixture(scope="module")
def jpeg_folder(tmp_path_factory):
    """Eleven JPEG frames named ``0.jpg`` ... ``10.jpg`` (default JPEG settings: chroma subsampling)."""
    folder = tmp_path_factory.mktemp("jpeg-frames")
    for index, frame in enumerate(testing.synthetic_frames(NUM_FRAMES, HEIGHT, WIDTH, seed=3)):
        Image.fromarray(frame).save(folder / f"{index}.jpg")
    return folder


def meta_frames(folder, image_size: int) -> torch.Tensor:
    from sam2.utils.misc import load_video_frames

    images, height, width = load_video_frames(str(folder), image_size, offload_video_to_cpu=True)
    assert (height, width) == (HEIGHT, WIDTH)
    return images


def our_frames(folder, processor) -> torch.Tensor:
    source = video_io.open_video(str(folder))
    return torch.stack([frame_pixels(source[i], processor, "bicubic") for i in range(len(source))])


def test_bicubic_frames_equal_meta_load_video_frames(jpeg_folder):
    processor = build_processor("video")
    image_size = processor.target_size
    theirs = meta_frames(jpeg_folder, image_size)
    ours = our_frames(jpeg_folder, processor)
    assert ours.shape == theirs.shape == (NUM_FRAMES, 3, image_size, image_size)
    assert ours.dtype == theirs.dtype == torch.float32
    assert (ours - theirs).abs().max().item() == 0.0
    assert torch.equal(ours, theirs)
    # the comparison can fail: transformers' bilinear processor gives other pixels
    bilinear = frame_pixels(video_io.open_video(str(jpeg_folder))[0], processor, "bilinear")
    assert not torch.equal(bilinear, theirs[0])


def test_input_size_comes_from_the_processor(jpeg_folder):
    """A processor configured for another input size is followed (Meta's loader at that ``image_size``)."""
    import transformers as tf

    size = 512
    processor = tf.Sam2VideoProcessor(
        image_processor=tf.Sam2ImageProcessor(size={"height": size, "width": size}),
        video_processor=tf.Sam2VideoVideoProcessor(size={"height": size, "width": size}),
        target_size=size,
    )
    assert torch.equal(our_frames(jpeg_folder, processor), meta_frames(jpeg_folder, size))
