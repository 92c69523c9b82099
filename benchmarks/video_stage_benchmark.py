"""The two stages that make a steady-state tracking frame, side by side in one process: ours vs Meta vs transformers.

A SAM 2 frame with a full memory bank is almost all image encoder and memory attention (see
``video_profile.py``: the decoder, memory encoder and output take about 0.25 s of ~6 s on a 2-core CPU). This
script times exactly those two stages of each contender on identical inputs, taking turns (ours, Meta,
transformers, ours, ...) so that a slower spell of a shared machine hits all of them:

* image encoder on one 1024x1024 frame: ours and transformers run transformers' ``get_image_features`` (ours on
  the model as this package's pipeline prepares it: sine position encodings kept per shape; transformers' on
  the same weights loaded with ``Sam2VideoModel.from_pretrained``); Meta ``SAM2Base.forward_image``. Ours' and
  Meta's feature maps are checked to agree;
* memory attention on a full bank (the prompted frame + 6 previous frames of 64x64 memory tokens, plus 16
  object pointers of 4 tokens), for ``--objects`` objects: ours ``fast_memory.condition`` with one
  :class:`~sam2_pipelines.kernels.fast_memory.FrameContext` for all objects of the frame (the work that depends
  on the frame alone done once); Meta's ``memory_attention`` and transformers' ``Sam2VideoMemoryAttention``
  once per object, as their predictors run it. Inputs are random (seed 0), identical for all.

It prints the best and median seconds of each, and the steady-state frame each contender would spend in these
two stages, to show how far a whole frame can be ahead when one stage is the same computation for everyone.

Usage::

    python benchmarks/video_stage_benchmark.py --weights /tmp/fullmodel --repeat 5
    python benchmarks/video_stage_benchmark.py --weights /tmp/fullmodel --objects 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_benchmark import META_CONFIG  # noqa: E402
from video_benchmark import NUM_MASKMEM, resolve_weights  # noqa: E402

MEMORY_TOKENS = 64 * 64
POINTER_TOKENS = 16 * 4


def contenders(paths: dict):
    """``{name: (encode(pixels), attend(features, position, memory, memory_position) for all objects)}``."""
    import torch
    from sam2.build_sam import build_sam2_video_predictor
    from transformers import Sam2VideoModel

    import sam2_pipelines
    from sam2_pipelines.kernels import fast_memory

    meta = build_sam2_video_predictor(META_CONFIG, paths["checkpoint"], device="cpu")
    model = sam2_pipelines.pipeline("video-object-tracking", model=paths["converted"]).model
    theirs = Sam2VideoModel.from_pretrained(paths["converted"]).eval()  # transformers' model as it loads, not through this package

    def ours_attend(features, position, banks):
        context = fast_memory.FrameContext(features[:, 0], position[:, 0])  # one per frame, with its own buffers, as tracking does
        return [fast_memory.condition(model, context, memory, memory_position, POINTER_TOKENS) for memory, memory_position in banks]

    def meta_attend(features, position, banks):
        return [meta.memory_attention(curr=features, curr_pos=position, memory=m, memory_pos=p, num_obj_ptr_tokens=POINTER_TOKENS) for m, p in banks]

    def transformers_attend(features, position, banks):
        return [theirs.memory_attention(features, m, position, p, POINTER_TOKENS) for m, p in banks]

    def ours_encode(pixels):
        return model.get_image_features(pixels, return_dict=True).fpn_hidden_states[-1]

    def transformers_encode(pixels):
        return theirs.get_image_features(pixels, return_dict=True).fpn_hidden_states[-1]

    def meta_encode(pixels):
        return meta.forward_image(pixels)["backbone_fpn"][-1]

    with torch.inference_mode():
        return {
            "ours": (ours_encode, ours_attend),
            "meta": (meta_encode, meta_attend),
            "transformers": (transformers_encode, transformers_attend),
        }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="directory with meta.pt + video/ (as video_benchmark.py; built there if missing)")
    parser.add_argument("--meta-checkpoint", help="Meta .pt checkpoint (with --converted)")
    parser.add_argument("--converted", help="the same weights converted (kind='video')")
    parser.add_argument("--objects", type=int, default=1, help="objects tracked on the frame (default 1)")
    parser.add_argument("--repeat", type=int, default=5, help="timed turns of every contender (default 5)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args(argv)
    if args.objects < 1 or args.repeat < 1 or args.threads < 1:
        parser.error("--objects, --repeat and --threads must be at least 1")

    import tempfile

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="video_stage_benchmark_") as tmp:
        paths, described = resolve_weights(args, Path(tmp))
        runners = contenders(paths)
        generator = torch.Generator().manual_seed(0)
        pixels = torch.randn(1, 3, 1024, 1024, generator=generator)
        features = torch.randn(MEMORY_TOKENS, 1, 256, generator=generator)
        position = torch.randn(MEMORY_TOKENS, 1, 256, generator=generator)
        count = NUM_MASKMEM * MEMORY_TOKENS + POINTER_TOKENS
        banks = [(torch.randn(count, 1, 64, generator=generator), torch.randn(count, 1, 64, generator=generator)) for _ in range(args.objects)]
        times = {(w, stage): [] for w in runners for stage in ("encoder", "attention")}
        with torch.inference_mode():
            first = {w: (encode(pixels), attend(features, position, banks)) for w, (encode, attend) in runners.items()}  # warm-up
            ours_map, meta_map = first["ours"][0], first["meta"][0]
            feature_gap = (ours_map.permute(1, 2, 0).reshape(meta_map.shape) - meta_map).abs().max().item()
            attention_gap = max((o.reshape(m.shape) - m).abs().max().item() for o, m in zip(first["ours"][1], first["meta"][1]))
            for _ in range(args.repeat):
                for w, (encode, attend) in runners.items():
                    start = time.perf_counter()
                    encode(pixels)
                    times[w, "encoder"].append(time.perf_counter() - start)
                    start = time.perf_counter()
                    attend(features, position, banks)
                    times[w, "attention"].append(time.perf_counter() - start)

    print(f"SAM 2.1 hiera-tiny, {described}, CPU, {args.threads} torch threads, {args.repeat} turns, {args.objects} object(s), "
          f"memory bank {NUM_MASKMEM} x {MEMORY_TOKENS} + {POINTER_TOKENS} tokens")
    print(f"largest difference from Meta: image features {feature_gap:.2e}, memory attention output {attention_gap:.2e}\n")
    best = {key: min(values) for key, values in times.items()}
    print("| stage (seconds) | ours best / median | meta best / median | transformers best / median | ours vs meta | ours vs transformers |")
    print("|---|---|---|---|---|---|")
    for stage, label in (("encoder", "image encoder, one frame"), ("attention", f"memory attention, {args.objects} object(s)")):
        cells = [f"{best[w, stage]:.2f} / {statistics.median(times[w, stage]):.2f}" for w in runners]
        print(f"| {label} | {' | '.join(cells)} | {best['meta', stage] / best['ours', stage]:.2f}x | {best['transformers', stage] / best['ours', stage]:.2f}x |")
    total = {w: best[w, "encoder"] + best[w, "attention"] for w in runners}
    print(f"| both, per frame | {' | '.join(f'{total[w]:.2f}' for w in runners)} | {total['meta'] / total['ours']:.2f}x | {total['transformers'] / total['ours']:.2f}x |")
    print("\nratios > 1: ours is faster (best times).")
    print("command: python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
