"""Meta SAM 2 checkpoint conversion: key accounting for every size, exact weights, errors, loading paths.

Meta's ``sam2`` package (the ``reference`` extra) builds the source models; nothing is downloaded.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("sam2", reason="needs Meta's sam2 package (the `reference` extra)")

import transformers  # noqa: E402
from transformers.initialization import no_init_weights  # noqa: E402

from sam2_pipelines.models import convert  # noqa: E402

META_CONFIGS = {
    ("sam2.1", "tiny"): "configs/sam2.1/sam2.1_hiera_t.yaml",
    ("sam2.1", "small"): "configs/sam2.1/sam2.1_hiera_s.yaml",
    ("sam2.1", "base_plus"): "configs/sam2.1/sam2.1_hiera_b+.yaml",
    ("sam2.1", "large"): "configs/sam2.1/sam2.1_hiera_l.yaml",
    ("sam2", "tiny"): "configs/sam2/sam2_hiera_t.yaml",
    ("sam2", "small"): "configs/sam2/sam2_hiera_s.yaml",
    ("sam2", "base_plus"): "configs/sam2/sam2_hiera_b+.yaml",
    ("sam2", "large"): "configs/sam2/sam2_hiera_l.yaml",
}


def build_meta(config: str, random: bool = True, seed: int = 0):
    """Meta's SAM2Base from one of its configs; ``random=False`` skips the (slow) initialisation."""
    import importlib
    import pkgutil

    import sam2.modeling
    from sam2.build_sam import build_sam2

    # Import Meta's model modules before no_init_weights: a module first imported inside it would keep the
    # blanked init functions it imported by name, and every later random build in this process (the parity
    # suite's) would leave those weights uninitialised.
    for module in pkgutil.walk_packages(sam2.modeling.__path__, "sam2.modeling."):
        importlib.import_module(module.name)
    torch.manual_seed(seed)
    if random:
        return build_sam2(config, None, device="cpu")
    with no_init_weights():
        return build_sam2(config, None, device="cpu")


@pytest.fixture(scope="module")
def meta_tiny():
    """Meta's SAM 2.1 hiera-tiny with random weights."""
    return build_meta(META_CONFIGS[("sam2.1", "tiny")])


@pytest.fixture(scope="module")
def tiny_checkpoint(meta_tiny, tmp_path_factory):
    """``{"model": state_dict}`` of ``meta_tiny`` saved like Meta's released checkpoints."""
    path = tmp_path_factory.mktemp("meta") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": meta_tiny.state_dict()}, path)
    return path


@pytest.mark.parametrize("version,size", sorted(META_CONFIGS))
def test_every_meta_size_maps_completely(version, size):
    """Every tensor of every released architecture maps onto a transformers weight of the same shape."""
    meta = build_meta(META_CONFIGS[(version, size)], random=False)
    state_dict = meta.state_dict()
    detected = convert.detect_size(state_dict)
    assert detected.name == size
    assert convert.is_sam2_1(state_dict) == (version == "sam2.1")
    for kind in ("video", "image"):
        converted, unknown = convert.convert_state_dict(state_dict, kind)
        assert unknown == []
        config = convert.build_config(detected, kind, sam2_1=convert.is_sam2_1(state_dict))
        with torch.device("meta"):
            model = getattr(transformers, convert.KINDS[kind])(config)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        assert set(converted) == set(expected)
        assert {k: tuple(v.shape) for k, v in converted.items()} == expected


@pytest.mark.parametrize("size", ["base_plus", "large"])
def test_hiera_trunk_numerics_for_multi_head_sizes(size):
    """Head counts are not visible in shapes: run both trunks on the same input (small, 256 px)."""
    meta = build_meta(META_CONFIGS[("sam2.1", size)], random=False)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for tensor in meta.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.05)
    converted, _ = convert.convert_state_dict(meta.state_dict(), "image")
    hiera = convert.detect_size(meta.state_dict())
    with no_init_weights():
        model = transformers.Sam2Model(convert.build_config(hiera, "image"))
    model.load_state_dict(converted)
    model.eval()
    pixels = torch.randn(1, 3, 256, 256, generator=generator)
    with torch.no_grad():
        ours = model.vision_encoder.backbone(pixels).intermediate_hidden_states
        theirs = meta.image_encoder.trunk(pixels)
    assert len(ours) == len(theirs) == 4
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.permute(0, 3, 1, 2), b, atol=1e-4, rtol=1e-4)


def test_weights_are_copied_exactly(meta_tiny, tiny_checkpoint):
    """Each transformers tensor equals the Meta tensor it came from (spot checks through every module)."""
    model, processor = convert.load_checkpoint(tiny_checkpoint)
    assert type(model).__name__ == "Sam2VideoModel"
    assert type(processor).__name__ == "Sam2VideoProcessor"
    meta = meta_tiny.state_dict()
    ours = model.state_dict()
    pairs = {
        "image_encoder.trunk.blocks.3.attn.qkv.weight": "vision_encoder.backbone.blocks.3.attn.qkv.weight",
        "image_encoder.trunk.blocks.0.mlp.layers.1.bias": "vision_encoder.backbone.blocks.0.mlp.proj_out.bias",
        "image_encoder.neck.convs.2.conv.weight": "vision_encoder.neck.convs.2.weight",
        "sam_mask_decoder.iou_prediction_head.layers.1.weight": "mask_decoder.iou_prediction_head.layers.0.weight",
        "sam_mask_decoder.iou_prediction_head.layers.2.weight": "mask_decoder.iou_prediction_head.proj_out.weight",
        "sam_mask_decoder.transformer.layers.1.cross_attn_image_to_token.out_proj.weight":
            "mask_decoder.transformer.layers.1.cross_attn_image_to_token.o_proj.weight",
        "memory_encoder.mask_downsampler.encoder.12.weight": "memory_encoder.mask_downsampler.final_conv.weight",
        "memory_encoder.mask_downsampler.encoder.7.bias": "memory_encoder.mask_downsampler.layers.2.layer_norm.bias",
        "memory_encoder.fuser.layers.1.gamma": "memory_encoder.memory_fuser.layers.1.scale",
        "memory_attention.layers.2.cross_attn_image.k_proj.weight": "memory_attention.layers.2.cross_attn_image.k_proj.weight",
        "obj_ptr_proj.layers.2.bias": "object_pointer_proj.proj_out.bias",
        "no_obj_embed_spatial": "occlusion_spatial_embedding_parameter",
        "maskmem_tpos_enc": "memory_temporal_positional_encoding",
    }
    for meta_key, our_key in pairs.items():
        torch.testing.assert_close(ours[our_key], meta[meta_key], rtol=0, atol=0)
    points = torch.cat([meta[f"sam_prompt_encoder.point_embeddings.{i}.weight"] for i in range(4)])
    torch.testing.assert_close(ours["prompt_encoder.point_embed.weight"], points, rtol=0, atol=0)
    gaussian = meta["sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"]
    torch.testing.assert_close(ours["shared_image_embedding.positional_embedding"], gaussian, rtol=0, atol=0)
    # the whole parameter mass is accounted for, not only the spot checks
    total_meta = sum(v.double().sum().item() for v in meta.values())
    total_ours = sum(v.double().sum().item() for k, v in ours.items() if k != "shared_image_embedding.positional_embedding")
    assert total_ours == pytest.approx(total_meta, rel=1e-9)


def test_kind_selection(tiny_checkpoint, tmp_path):
    image_model, image_processor = convert.load_checkpoint(tiny_checkpoint, kind="image", size="t")
    assert type(image_model).__name__ == "Sam2Model"
    assert type(image_processor).__name__ == "Sam2Processor"
    state = convert.read_state_dict(tiny_checkpoint)
    image_only = {k: v for k, v in state.items() if not k.startswith(convert.VIDEO_ONLY_PREFIXES)}
    path = tmp_path / "image_only.pt"
    torch.save({"model": image_only}, path)
    model, _ = convert.load_checkpoint(path)  # kind=None picks the image model
    assert type(model).__name__ == "Sam2Model"
    with pytest.raises(convert.CheckpointConversionError, match="memory modules"):
        convert.load_checkpoint(path, kind="video")
    with pytest.raises(ValueError, match="unknown kind"):
        convert.load_checkpoint(tiny_checkpoint, kind="both")


def test_size_errors(tiny_checkpoint):
    with pytest.raises(convert.CheckpointConversionError, match="'large' was requested but the weights are those of 'tiny'"):
        convert.load_checkpoint(tiny_checkpoint, size="large")
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        convert.load_checkpoint(tiny_checkpoint, size="huge")


def test_unknown_and_missing_keys_are_listed(tiny_checkpoint, tmp_path):
    state = convert.read_state_dict(tiny_checkpoint)
    extra = dict(state)
    extra["sam_mask_decoder.extra_head.weight"] = torch.zeros(2)
    extra["image_encoder.trunk.blocks.0.attn.rel_pos_h"] = torch.zeros(2)
    path = tmp_path / "extra.pt"
    torch.save({"model": extra}, path)
    with pytest.raises(convert.CheckpointConversionError) as info:
        convert.load_checkpoint(path)
    assert "sam_mask_decoder.extra_head.weight" in str(info.value)
    assert "image_encoder.trunk.blocks.0.attn.rel_pos_h" in str(info.value)

    missing = {k: v for k, v in state.items() if k not in ("no_obj_ptr", "sam_mask_decoder.conv_s0.bias")}
    path = tmp_path / "missing.pt"
    torch.save({"model": missing}, path)
    with pytest.raises(convert.CheckpointConversionError) as info:
        convert.load_checkpoint(path)
    assert "no_object_pointer" in str(info.value) and "mask_decoder.conv_s0.bias" in str(info.value)

    reshaped = dict(state)
    reshaped["no_obj_ptr"] = torch.zeros(1, 128)
    path = tmp_path / "reshaped.pt"
    torch.save({"model": reshaped}, path)
    with pytest.raises(convert.CheckpointConversionError, match="no_object_pointer: checkpoint"):
        convert.load_checkpoint(path)


class NotATensor:
    """A pickled object that ``weights_only`` loading must refuse."""


def test_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        convert.load_checkpoint(tmp_path / "absent.pt")
    path = tmp_path / "object.pt"
    torch.save({"model": NotATensor()}, path)
    with pytest.raises(convert.CheckpointConversionError, match="weights_only"):
        convert.load_checkpoint(path)
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(convert.CheckpointConversionError, match="under 'model'"):
        convert.load_checkpoint(path)
    path = tmp_path / "optimizer_only.pt"
    torch.save({"optimizer": {"lr": torch.tensor(1.0)}, "epoch": 3}, path)
    with pytest.raises(convert.CheckpointConversionError, match="under 'model'"):
        convert.load_checkpoint(path)


def test_convert_checkpoint_round_trip(tiny_checkpoint, tmp_path):
    """The saved directory loads with from_pretrained and with both registered pipelines."""
    out = convert.convert_checkpoint(tiny_checkpoint, tmp_path / "hf")
    assert (out / "config.json").is_file()
    reloaded = transformers.Sam2VideoModel.from_pretrained(out)
    direct, _ = convert.load_checkpoint(tiny_checkpoint)
    for key, value in direct.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[key], value, rtol=0, atol=0)
    tracker = transformers.pipeline("video-object-tracking", model=str(out))
    assert type(tracker).__name__ == "VideoObjectTrackingPipeline"
    generator = transformers.pipeline("mask-generation", model=str(out))
    assert type(generator).__name__ == "MaskGenerationPipeline"


def test_pipeline_accepts_a_meta_checkpoint(tiny_checkpoint):
    import sam2_pipelines

    generator = sam2_pipelines.pipeline("mask-generation", model=str(tiny_checkpoint))
    assert type(generator).__name__ == "MaskGenerationPipeline"
    assert type(generator.model).__name__ == "Sam2Model"
    tracker = sam2_pipelines.pipeline("video-object-tracking", model=tiny_checkpoint)
    assert type(tracker).__name__ == "VideoObjectTrackingPipeline"
    assert type(tracker.model).__name__ == "Sam2VideoModel"
    half = sam2_pipelines.pipeline("mask-generation", model=str(tiny_checkpoint), dtype="bfloat16")
    assert half.model.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="can be loaded for the tasks"):
        sam2_pipelines.pipeline("image-classification", model=str(tiny_checkpoint))
    with pytest.raises(ValueError, match="config= cannot be combined"):
        sam2_pipelines.pipeline("mask-generation", model=str(tiny_checkpoint), config=generator.model.config)
