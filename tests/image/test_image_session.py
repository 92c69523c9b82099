"""Image sessions: one encoder pass per image, any number of calls, the pipeline call's results."""

from __future__ import annotations

import numpy as np
import pytest

from sam2_pipelines import ImageSession, testing

LOOSE = dict(points_per_side=3, pred_iou_thresh=0.0, stability_score_thresh=0.0)


def _same(a: dict, b: dict):
    assert set(a) == set(b)
    for key in a:
        if key == "records":
            assert [r["bbox"] for r in a[key]] == [r["bbox"] for r in b[key]]
            assert [r["predicted_iou"] for r in a[key]] == [r["predicted_iou"] for r in b[key]]
        elif key == "masks" and isinstance(a[key], list):
            assert all(np.array_equal(x, y) for x, y in zip(a[key], b[key])) and len(a[key]) == len(b[key])
        else:
            np.testing.assert_array_equal(a[key], b[key])


@pytest.fixture
def count_encodes(mask_generator, monkeypatch):
    calls = []
    encode = mask_generator.image_model.encode

    def spy(pixel_values):
        calls.append(len(pixel_values))
        return encode(pixel_values)

    monkeypatch.setattr(mask_generator.image_model, "encode", spy)
    return calls


def test_one_encode_many_calls_same_results(mask_generator, image, count_encodes):
    session = mask_generator.session(image)
    assert isinstance(session, ImageSession) and session.size == (120, 160)
    assert count_encodes == [1]
    calls = [
        dict(points=[[[50, 40]]], labels=[[1]]),
        dict(points=[[[50, 40], [100, 90]]], labels=[[1, 0]], multimask_output=False),
        dict(boxes=[[10, 10, 90, 80], [40, 30, 150, 110]]),
        dict(points=[[[60, 60]], [[20, 30]]], labels=[[1], [1]], boxes=[[10, 10, 90, 80], [0, 0, 60, 60]], mask_threshold=0.5),
    ]
    for call in calls:
        encodes = len(count_encodes)
        ours = session.predict(**call)
        assert len(count_encodes) == encodes  # no encoder pass for a session call
        _same(ours, mask_generator(image, **call))
    first = session.predict(points=[[[50, 40]]], labels=[[1]])
    best = first["scores"][0].argmax()
    refine = dict(points=[[[50, 40], [90, 70]]], labels=[[1, 0]], masks=first["logits"][:, best], multimask_output=False)
    encodes = len(count_encodes)
    ours_refined, ours_automatic = session.predict(**refine), session.generate(**LOOSE)
    assert len(count_encodes) == encodes
    _same(ours_refined, mask_generator(image, **refine))
    _same(ours_automatic, mask_generator(image, **LOOSE))


def test_automatic_with_crops_encodes_only_the_crops(mask_generator, image, count_encodes):
    session = mask_generator.session(image)
    before = len(count_encodes)
    out = session.generate(crop_n_layers=1, **LOOSE)
    assert sum(count_encodes[before:]) == 4  # the four crops of layer 1, not the whole image again
    _same(out, mask_generator(image, crop_n_layers=1, **LOOSE))


def test_batch_of_sessions(mask_generator, count_encodes):
    images = [testing.synthetic_image(seed=s) for s in range(3)]
    sessions = mask_generator.session(images, batch_size=2)
    assert count_encodes == [2, 1]
    for session, img in zip(sessions, images):
        out = session.predict(points=[[[50, 40]]], labels=[[1]])
        ref = mask_generator(img, points=[[[50, 40]]], labels=[[1]])
        assert (out["masks"] == ref["masks"]).mean() > 0.999
        np.testing.assert_allclose(out["scores"], ref["scores"], atol=1e-5)
    with pytest.raises(ValueError, match="empty"):
        mask_generator.session([])
    with pytest.raises(ValueError, match="batch_size"):
        mask_generator.session(images, batch_size=0)


def test_errors_and_close(mask_generator, image):
    with mask_generator.session(image) as session:
        with pytest.raises(ValueError, match="at least one prompt"):
            session.predict()
        with pytest.raises(ValueError, match="outside"):
            session.predict(points=[[[500, 40]]], labels=[[1]])
        with pytest.raises(ValueError, match="predict"):
            session.generate(points=[[[1, 1]]])
        with pytest.raises(ValueError, match="unknown"):
            session.generate(bogus=1)
    with pytest.raises(ValueError, match="closed"):
        session.predict(points=[[[50, 40]]], labels=[[1]])
    session.close()
    assert "closed" in repr(session)
