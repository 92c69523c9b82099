"""Profiling tools shared by the benchmark scripts: the machine's sgemm rate, per-stage timers, FLOP counting."""

from __future__ import annotations

import collections
import contextlib
import functools
import time

from pathlib import Path

from benchmarks.reference_benchmark import META_CONFIG, cpu_seconds


def build_reference_model(directory: Path, kind: str) -> str:
    """The random reference model (Meta's builder, seed 1, SAM 2.1 hiera-tiny) converted for ``kind``
    (``"image"`` or ``"video"``) under ``directory``; returns the converted model's directory."""
    import torch
    from sam2.build_sam import build_sam2, build_sam2_video_predictor

    from sam2_pipelines import convert_checkpoint

    torch.manual_seed(1)
    meta = (build_sam2_video_predictor if kind == "video" else build_sam2)(META_CONFIG, None, device="cpu")
    checkpoint = directory / "sam2.1_hiera_tiny_random.pt"
    torch.save({"model": meta.state_dict()}, checkpoint)
    return str(convert_checkpoint(checkpoint, directory / "converted", kind=kind))


def sgemm_rate(threads: int) -> float:
    """Measured float32 matrix-multiply rate of this machine in FLOP/s (2048x2048 products, best of 5)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * 2048**3 / best


class StageTimer:
    """Wall and CPU seconds and calls per named stage; nested stages are charged to the innermost one."""

    def __init__(self, flops: "FlopCounter"):
        self.wall = collections.Counter()
        self.cpu = collections.Counter()
        self.flops = collections.Counter()
        self.calls = collections.Counter()
        self._flop_counter = flops
        self._stack = []

    def wrap(self, name, function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            start, cpu, flops = time.perf_counter(), cpu_seconds(), self._flop_counter.total
            self._stack.append([0.0, 0.0, 0])
            try:
                return function(*args, **kwargs)
            finally:
                inner = self._stack.pop()
                spent = (time.perf_counter() - start, cpu_seconds() - cpu, self._flop_counter.total - flops)
                self.wall[name] += spent[0] - inner[0]
                self.cpu[name] += spent[1] - inner[1]
                self.flops[name] += spent[2] - inner[2]
                self.calls[name] += 1
                if self._stack:
                    for i in range(3):
                        self._stack[-1][i] += spent[i]

        return timed


@contextlib.contextmanager
def patched(target, name, replacement):
    original = getattr(target, name)
    setattr(target, name, replacement)
    try:
        yield
    finally:
        setattr(target, name, original)


class FlopCounter:
    """Counts matrix, convolution and attention FLOPs run while active (CPU fused attention included)."""

    def __init__(self):
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils.flop_counter import flop_registry

        def fused_attention(query, key, value, *args, out_val=None, **kwargs) -> int:
            *batch, queries, width = query.shape
            count = 1
            for size in batch:
                count *= size
            return 2 * count * queries * key.shape[-2] * (width + value.shape[-1])

        def linear(x, weight, *args, **kwargs) -> int:
            return 2 * x.numel() * weight.shape[0]

        def conv(x, weight, *args, out_val=None, **kwargs) -> int:
            return 2 * out_val.numel() * weight[0].numel()

        def conv_transpose(x, weight, *args, **kwargs) -> int:
            return 2 * x.numel() * weight[0].numel()

        def matmul(a, b, *args, out_val=None, **kwargs) -> int:
            return 2 * out_val.numel() * a.shape[-1]

        registry = dict(flop_registry)
        aten = torch.ops.aten
        # inference mode hands composite ops (linear, conv2d, matmul) over whole: count them as they come
        registry.update({aten._scaled_dot_product_flash_attention_for_cpu: fused_attention, aten.scaled_dot_product_attention: fused_attention, aten.linear: linear, aten.conv2d: conv,
                         aten.conv_transpose2d: conv_transpose, aten.matmul: matmul})
        counter = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                packet = func._overloadpacket
                out = func(*args, **kwargs)
                if packet in flop_registry:
                    counter.total += flop_registry[packet](*args, **kwargs, out_val=out)
                elif packet in registry:
                    counter.total += registry[packet](*args, out_val=out)
                return out

        self.total = 0
        self._mode = Mode()

    def __enter__(self):
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self._mode.__exit__(*exc)
