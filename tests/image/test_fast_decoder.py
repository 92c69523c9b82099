"""The fast SAM 2 mask decoder computes the model's own decoder forward (up to float rounding), for SAM 2,
EdgeTAM and SAM 3 tracker models."""

from __future__ import annotations

import pytest
import torch
from transformers import pipeline

from sam2_pipelines.kernels import fast_decoder

ATOL = 1e-5


@pytest.fixture(scope="module", params=["sam2", "edgetam", "sam3-tracker"])
def model(request, tiny_image_model_dir, tiny_edgetam_model_dir, tiny_sam3_tracker_model_dir):
    directory = {"sam2": tiny_image_model_dir, "edgetam": tiny_edgetam_model_dir, "sam3-tracker": tiny_sam3_tracker_model_dir}[request.param]
    model = pipeline("mask-generation", model=directory).model
    assert fast_decoder.supports(model)
    return model


@pytest.fixture(scope="module")
def embeddings(model):
    torch.manual_seed(0)
    size = model.config.prompt_encoder_config.image_size
    with torch.no_grad():
        return model.get_image_embeddings(torch.randn(1, 3, size, size))


def _prompts(model, count, seed=0):
    generator = torch.Generator().manual_seed(seed)
    size = model.config.prompt_encoder_config.image_size
    points = torch.rand(count, 2, 2, generator=generator) * size
    labels = torch.randint(0, 2, (count, 2), generator=generator)
    corners = torch.sort(torch.rand(count, 2, 2, generator=generator) * size, dim=1).values
    return points, labels, corners.reshape(count, 4)


def _reference(model, embeddings, multimask, points=None, labels=None, boxes=None):
    with torch.no_grad():
        out = model(
            image_embeddings=embeddings,
            input_points=None if points is None else points[None],
            input_labels=None if labels is None else labels[None],
            input_boxes=None if boxes is None else boxes[None],
            multimask_output=multimask,
        )
    return out.pred_masks[0], out.iou_scores[0], out.object_score_logits[0]


@pytest.mark.parametrize("multimask", [True, False])
@pytest.mark.parametrize("prompt", ["points", "boxes", "points+boxes"])
def test_matches_the_model_forward(model, embeddings, prompt, multimask):
    points, labels, boxes = _prompts(model, 9)  # several groups of fast_decoder.GROUP prompts
    given = dict(
        points=points if "points" in prompt else None,
        labels=labels if "points" in prompt else None,
        boxes=boxes if "boxes" in prompt else None,
    )
    context = fast_decoder.ImageContext(model, embeddings)
    decoded = fast_decoder.decode(context, **given)
    assert decoded.mask_rows.tolist() == list(range(9))
    logits, scores = fast_decoder.select_outputs(decoded.mask_logits, decoded.iou_scores, multimask, model.mask_decoder)
    ref_logits, ref_scores, ref_objects = _reference(model, embeddings, multimask, **given)
    assert logits.shape == ref_logits.shape
    torch.testing.assert_close(logits, ref_logits, rtol=0, atol=ATOL)
    torch.testing.assert_close(scores, ref_scores, rtol=0, atol=ATOL)
    torch.testing.assert_close(decoded.object_score_logits, ref_objects, rtol=0, atol=ATOL)


def test_masks_only_for_the_prompts_asked_for(model, embeddings):
    points, labels, _ = _prompts(model, 11, seed=1)
    context = fast_decoder.ImageContext(model, embeddings)
    everything = fast_decoder.decode(context, points, labels)
    threshold = float(everything.iou_scores[:, 1:].max(dim=1).values.median())
    asked = []

    def masks_for(iou):
        asked.append(len(iou))
        return iou[:, 1:].max(dim=1).values > threshold

    chosen = fast_decoder.decode(context, points, labels, masks_for=masks_for)
    expected = torch.nonzero(everything.iou_scores[:, 1:].max(dim=1).values > threshold).flatten()
    assert 0 < len(expected) < 11 and chosen.mask_rows.tolist() == expected.tolist()
    assert sum(asked) == 11 and max(asked) <= fast_decoder.GROUP  # asked group by group
    torch.testing.assert_close(chosen.iou_scores, everything.iou_scores, rtol=0, atol=ATOL)
    # other GEMM shapes: equal up to rounding
    torch.testing.assert_close(chosen.mask_logits, everything.mask_logits[expected], rtol=0, atol=ATOL)
    nothing = fast_decoder.decode(context, points, labels, masks_for=lambda iou: torch.zeros(len(iou), dtype=torch.bool))
    assert nothing.mask_rows.shape == (0,) and nothing.mask_logits.shape == (0, *everything.mask_logits.shape[1:])


def test_single_mask_choice_matches_the_decoder(model):
    """select_outputs picks token 0 where it is stable, else the best multimask token, as the decoder does."""
    decoder = model.mask_decoder
    torch.manual_seed(3)
    logits = torch.randn(6, 4, 16, 16)
    logits[:3, 0] = logits[:3, 0].sign() * 10  # stable single-mask outputs for the first three
    scores = torch.rand(6, 4)
    ours = fast_decoder.select_outputs(logits, scores, False, decoder)
    theirs = decoder._dynamic_multimask_via_stability(logits[None], scores[None])
    torch.testing.assert_close(ours[0], theirs[0][0], rtol=0, atol=0)
    torch.testing.assert_close(ours[1], theirs[1][0], rtol=0, atol=0)
    chosen = [int((ours[0][i, 0] == logits[i]).flatten(1).all(1).nonzero()[0]) for i in range(6)]
    assert chosen[:3] == [0, 0, 0] and all(c > 0 for c in chosen[3:])


def test_prompted_pipeline_uses_it_for_many_objects(tiny_image_model_dir, image, monkeypatch):
    """Many boxes on one image go through the fast decoder and equal the model's own decoding."""
    generator = pipeline("mask-generation", model=tiny_image_model_dir)
    boxes = [[10, 10, 60, 50], [30, 20, 120, 100], [0, 0, 159, 119], [70, 40, 150, 110], [5, 60, 80, 115]]
    calls = []
    decode = fast_decoder.decode

    def spy(*args, **kwargs):
        calls.append(1)
        return decode(*args, **kwargs)

    monkeypatch.setattr(fast_decoder, "decode", spy)
    fast = generator(image, boxes=boxes)
    assert calls
    monkeypatch.setattr(fast_decoder, "supports", lambda model: False)
    plain = generator(image, boxes=boxes)
    assert fast["masks"].shape == plain["masks"].shape == (5, 3, 120, 160)
    assert (fast["masks"] == plain["masks"]).mean() > 0.999
    assert abs(fast["scores"] - plain["scores"]).max() < ATOL
    assert abs(fast["logits"] - plain["logits"]).max() < ATOL


def test_supports_sam2_family_decoders_only(model):
    assert fast_decoder.supports(model)
    assert not fast_decoder.supports(torch.nn.Linear(2, 2))
