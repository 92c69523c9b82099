"""The adapter over transformers' private SAM 2 video internals: pinned to the versions it supports.

When a transformers release renames or reshapes one of the private methods the tracking session runs, these
tests say which one, instead of a tracking call failing deep inside a user's propagation.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import transformers

from sam2_pipelines.models import internals as model_internals

ROOT = Path(__file__).resolve().parents[2]


def _major_minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def test_pinned_transformers_is_supported():
    pinned = re.search(r"^transformers==(\S+)$", (ROOT / "constraints.txt").read_text(), re.MULTILINE).group(1)
    assert ".".join(pinned.split(".")[:2]) in model_internals.SUPPORTED_TRANSFORMERS, (
        f"constraints.txt pins transformers {pinned}, outside the versions sam2_pipelines.models.internals supports "
        f"({', '.join(model_internals.SUPPORTED_TRANSFORMERS)})"
    )


def test_installed_transformers_is_supported():
    installed = _major_minor(transformers.__version__)
    supported = [_major_minor(v) for v in model_internals.SUPPORTED_TRANSFORMERS]
    assert installed >= supported[0], (
        f"transformers {transformers.__version__} is older than the versions sam2_pipelines.models.internals supports "
        f"({', '.join(model_internals.SUPPORTED_TRANSFORMERS)})"
    )
    if installed > supported[-1]:
        # The newest-release lane installs past the tested range on purpose: what matters there is whether the
        # private names and signatures still hold, which the tests below check one by one.
        pytest.skip(
            f"transformers {transformers.__version__} is newer than the tested range "
            f"({', '.join(model_internals.SUPPORTED_TRANSFORMERS)}): the private names and signatures are checked below; "
            "extend SUPPORTED_TRANSFORMERS once the parity suite passes on it"
        )
    assert installed in supported, f"transformers {transformers.__version__} falls in a gap of {model_internals.SUPPORTED_TRANSFORMERS}"


def test_pyproject_states_the_supported_range():
    spec = re.search(r'^\s*"(transformers[^"]*)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE).group(1).replace(" ", "")
    first, last = model_internals.SUPPORTED_TRANSFORMERS[0], model_internals.SUPPORTED_TRANSFORMERS[-1]
    major, minor = last.split(".")
    assert spec == f"transformers>={first},<{major}.{int(minor) + 1}"


@pytest.fixture(scope="module")
def owners(tiny_video_model_dir, tiny_edgetam_video_model_dir, tiny_sam3_tracker_video_model_dir):
    from transformers import pipeline

    owners = []
    for directory in (tiny_video_model_dir, tiny_edgetam_video_model_dir, tiny_sam3_tracker_video_model_dir):
        tracker = pipeline("video-object-tracking", model=directory)
        # transformers' own inference session of the family (the tracking session drives a subclass of it)
        owners.append({"model": tracker.model, "session": tracker.processor.init_video_session()})
    return owners


def test_every_private_name_exists(owners):
    for owner in owners:
        for kind, dotted in model_internals.PRIVATE_NAMES:
            value = owner[kind]
            for part in dotted.split("."):
                assert hasattr(value, part), f"{type(owner[kind]).__name__} has no {dotted} (transformers {transformers.__version__})"
                value = getattr(value, part)


#: Parameters the adapter passes by name to transformers' private methods.
CALLED_WITH = {
    "_run_single_frame_inference": {"inference_session", "frame_idx", "obj_idx", "batch_size", "is_init_cond_frame", "point_inputs", "mask_inputs", "reverse", "prev_sam_mask_logits", "streaming"},
    "_encode_new_memory": {"current_vision_feats", "pred_masks_high_res", "object_score_logits", "is_mask_from_pts"},
    "_single_frame_forward": {"pixel_values", "input_points", "input_labels", "input_masks", "image_embeddings", "multimask_output"},
}


def test_private_methods_take_the_arguments_passed(owners):
    for owner in owners:
        model = owner["model"]
        for name, parameters in CALLED_WITH.items():
            accepted = set(inspect.signature(getattr(model, name)).parameters)
            assert parameters <= accepted, f"{type(model).__name__}.{name} no longer takes {sorted(parameters - accepted)}"
    kinds = {type(o["model"]).__name__: model_internals.encodes_memory_inline(o["model"]) for o in owners}
    assert kinds == {"Sam2VideoModel": False, "EdgeTamVideoModel": True, "Sam3TrackerVideoModel": False}


def test_the_lazy_session_has_every_family_session_attribute(owners):
    """LazyInferenceSession extends SAM 2's session class; EdgeTAM's and SAM 3 tracker's session classes must
    hold nothing more (transformers generates them from SAM 2's), or their models would miss it."""
    import sys

    for owner in owners:
        module = sys.modules[type(owner["model"]).__module__]
        family = next(getattr(module, name) for name in dir(module) if name.endswith("VideoInferenceSession"))
        lazy = model_internals.LazyInferenceSession
        own = {name for name in vars(family) if not name.startswith("__")}
        assert own <= set(dir(lazy)), f"{family.__name__} has {sorted(own - set(dir(lazy)))}"
        init = set(inspect.signature(family.__init__).parameters)
        assert init == set(inspect.signature(lazy.__mro__[1].__init__).parameters), family.__name__


def test_only_the_adapter_touches_private_internals():
    """Other modules reach transformers' private SAM 2 internals only through model_internals."""
    names = [dotted.split(".")[-1] for _, dotted in model_internals.PRIVATE_NAMES]
    pattern = re.compile(r"\.(" + "|".join(map(re.escape, names)) + r")\b")
    offenders = []
    for path in sorted((ROOT / "sam2_pipelines").rglob("*.py")):
        if path.relative_to(ROOT).as_posix() == "sam2_pipelines/models/internals.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            code = line.split("#")[0]
            if pattern.search(code) and "``" not in code:
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_text_session_has_what_pruning_reads():
    """forget_text_frames prunes transformers' Sam3VideoInferenceSession through these attributes (and per-object
    output dicts with these storage keys): a release that renames one fails here, not in a user's tracking."""
    state = model_internals.text_video_session(lambda: 0)
    for name in ("processed_frames", "output_dict_per_obj", "frames_tracked_per_obj", "mask_inputs_per_obj", "point_inputs_per_obj",
                 "obj_id_to_tracker_score_frame_wise", "suppressed_obj_ids", "hotstart_removed_obj_ids", "prompts", "obj_id_to_prompt_id"):
        assert hasattr(state, name), name
    obj_idx = state.obj_id_to_idx(7)
    assert set(state.output_dict_per_obj[obj_idx]) == {"cond_frame_outputs", "non_cond_frame_outputs"}
    assert state.num_frames == 0


def test_the_sam3_video_module_has_the_mask_iou_it_replaces():
    """bound_pairwise_mask_iou replaces ``mask_iou(pred_masks, gt_masks)``, a module function of transformers'
    SAM 3 video model that the model calls by its module name: a release that renames, reshapes or inlines it fails
    here (the replacement would silently not be used)."""
    from transformers.models.sam3_video import modeling_sam3_video

    theirs = model_internals.transformers_mask_iou()
    assert theirs.__module__ == modeling_sam3_video.__name__
    assert list(inspect.signature(theirs).parameters) == ["pred_masks", "gt_masks"]
    source = inspect.getsource(modeling_sam3_video)
    calls = source.count("mask_iou(") - source.count("def mask_iou(")
    assert calls >= 3, "the model calls mask_iou (matching, NMS, overlap suppression) by its module name"


def test_position_encodings_are_kept_per_shape_with_transformers_values(owners):
    """cache_position_encodings (applied by the pipeline): every family's sine position encodings are built once
    per shape and are the tensors transformers' own module gives for that shape; a batch of two or a mask is
    left to transformers."""
    import torch

    for owner in owners:
        model = owner["model"]
        kept = [m for m in model.modules() if "forward" in vars(m) and hasattr(type(m), "build_sine_position_embedding")]
        assert kept, f"{type(model).__name__}: no position encoding is kept"
        for module in kept:
            theirs = type(module).forward
            first = {size: module(torch.Size((1, 8, size, size)), "cpu", torch.float32) for size in (8, 4, 2)}
            for size, tensor in first.items():  # asked again after the other shapes: the same tensor, transformers' values
                assert module(torch.Size((1, 8, size, size)), "cpu", torch.float32) is tensor
                assert torch.equal(tensor, theirs(module, torch.Size((1, 8, size, size)), "cpu", torch.float32))
            batch = module(torch.Size((2, 8, 4, 4)), "cpu", torch.float32)
            assert batch.shape[0] == 2 and torch.equal(batch[1], first[4][0])
            mask = torch.zeros(1, 4, 4, dtype=torch.bool)
            assert torch.equal(module(torch.Size((1, 8, 4, 4)), "cpu", torch.float32, mask), theirs(module, torch.Size((1, 8, 4, 4)), "cpu", torch.float32, mask))
        before = [m.forward for m in kept]
        model_internals.cache_position_encodings(model)  # idempotent: the kept encodings stay
        assert [m.forward for m in kept] == before


def test_learned_position_embedding_is_kept_until_its_parameters_change(owners):
    """cache_position_encodings also keeps the SAM 2 image encoder's learned position embedding per feature size:
    transformers' values, built again when a parameter changes in place, and never kept while gradients flow."""
    import torch

    model = owners[0]["model"]  # SAM 2: the Hiera image encoder has one
    kept = [m for m in model.modules() if "_get_pos_embed" in vars(m)]
    assert len(kept) == 1, "the SAM 2 image encoder's position embedding is not kept"
    (module,) = kept
    theirs = type(module)._get_pos_embed
    with torch.no_grad():
        first = {size: module._get_pos_embed((size, size)) for size in (16, 8)}
        for size, tensor in first.items():
            assert module._get_pos_embed((size, size)) is tensor
            assert torch.equal(tensor, theirs(module, (size, size)))
        module.pos_embed.add_(1.0)  # as an optimizer step or load_state_dict does
        try:
            changed = module._get_pos_embed((16, 16))
            assert changed is not first[16] and torch.equal(changed, theirs(module, (16, 16)))
            assert not torch.equal(changed, first[16])
        finally:
            module.pos_embed.sub_(1.0)
    with torch.enable_grad():
        module.pos_embed.requires_grad_(True)
        tracked = module._get_pos_embed((16, 16))
        assert tracked.grad_fn is not None, "with gradients the embedding is built by transformers each time"
    before = module._get_pos_embed
    model_internals.cache_position_encodings(model)
    assert module._get_pos_embed is before


def test_a_tracking_step_computes_only_the_position_encoding_it_reads(owners):
    """read_position_encodings_only (entered by every tracking step): the image features of every family are
    transformers' own, and so is the position encoding of the level a step reads (the last); the neck's other
    levels are NaN placeholders that take no memory. Outside the block the model gives all of them again."""
    import torch

    for owner in owners:
        model = owner["model"]
        size = model.config.image_size
        pixels = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            theirs = model.get_image_features(pixels, return_dict=True)
            with model_internals.read_position_encodings_only(model):
                ours = model.get_image_features(pixels, return_dict=True)
            again = model.get_image_features(pixels, return_dict=True)
        name = type(model).__name__
        assert len(ours.fpn_position_encoding) == len(theirs.fpn_position_encoding) > 1, name
        for mine, reference in zip(ours.fpn_hidden_states, theirs.fpn_hidden_states):
            assert torch.equal(mine, reference), f"{name}: the features changed"
        assert torch.equal(ours.fpn_position_encoding[-1], theirs.fpn_position_encoding[-1]), name
        for placeholder, reference in zip(ours.fpn_position_encoding[:-1], theirs.fpn_position_encoding[:-1]):
            assert placeholder.shape == reference.shape and not torch.isnan(reference).any(), name
            assert torch.isnan(placeholder).all() and placeholder.untyped_storage().nbytes() <= 8, name
        for outside, reference in zip(again.fpn_position_encoding, theirs.fpn_position_encoding):
            assert torch.equal(outside, reference), f"{name}: the placeholders outlived the block"
