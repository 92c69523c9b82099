"""Smoke runs of ``benchmarks/reference_benchmark.py --quick`` and ``benchmarks/video_benchmark.py`` at minimal settings
(ours vs Meta vs transformers, same weights)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.parity, pytest.mark.slow]

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "reference_benchmark.py"


def test_quick_run_prints_every_ratio():
    completed = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=1500)
    assert completed.returncode == 0, completed.stderr[-3000:]
    out = completed.stdout
    for metric in ("AMG seconds / image", "AMG peak RSS MiB", "video fps, 1 object(s)", "video fps, 3 object(s)"):
        line = next((line for line in out.splitlines() if line.startswith(metric)), None)
        assert line is not None, f"no {metric!r} row in:\n{out}"
        # three measured values, then two ratios
        assert len(re.findall(r"\d+\.\d+x", line)) == 2, line
    masks = next(line for line in out.splitlines() if line.startswith("AMG masks returned"))
    counts = [int(v) for v in masks.split()[3:6]]
    assert counts[0] == counts[1] > 0, f"ours and Meta's AMG disagree on the number of masks: {masks}"


VIDEO_SCRIPT = SCRIPT.parent / "video_benchmark.py"


@pytest.mark.timeout(1800)
def test_video_benchmark_smoke_run(tmp_path):
    """``benchmarks/video_benchmark.py`` at its smallest: 2 frames, 1 object, the bedroom clip, a 2-frame long video.

    Every contender runs the full-size random weights (built in ``tmp_path``), so this takes a few minutes on a CPU.
    """
    report = tmp_path / "video.json"
    command = [
        sys.executable, str(VIDEO_SCRIPT), "--weights", str(tmp_path / "weights"), "--frames", "2", "--objects", "1",
        "--clips", "bedroom", "--long-frames", "2", "--warmup-frames", "1", "--json", str(report),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=1500)
    assert completed.returncode == 0, completed.stderr[-3000:]
    out = completed.stdout
    for metric in (
        "bedroom 540x960 JPEG folder, 1 obj: total seconds",
        "bedroom 540x960 mp4, 1 obj: total seconds",
        "bedroom 540x960 mp4, 1 obj: steady fps",
        "bedroom 540x960 mp4, 1 obj: peak RSS MiB",
        "first mask, 2 frames 1280x720: seconds",
        "first mask, 2 frames 1280x720: peak RSS MiB",
    ):
        line = next((line for line in out.splitlines() if line.startswith(f"| {metric}")), None)
        assert line is not None, f"no {metric!r} row in:\n{out}"
        assert len(re.findall(r"\d+\.\d+x", line)) == 2, line  # ours vs meta, ours vs transformers
    assert "command: python " in out
    assert "timeline, bedroom 540x960 JPEG folder, 1 obj" in out and "timeline, bedroom 540x960 mp4, 1 obj" in out, out
    results = json.loads(report.read_text())
    for kind in ("jpg", "mp4"):
        steady = results["steady"][f"bedroom {kind}"]["1"]
        assert all(run["frames"] == 2 and run["steady_frames"] == 1 for run in steady["results"].values()), steady["results"]
        meta = steady["iou_vs_ours"]["meta"]
        # the comparison must be able to fail: the masks are neither empty nor the whole frame
        assert 0.02 < meta["ours_coverage_min"] <= meta["ours_coverage_max"] < 0.98, meta
        assert meta["min_iou"] >= 0.99, f"ours and Meta's tracked masks disagree ({kind}): {meta}"
    first = results["first_mask"]
    assert all(run["frames"] == 2 and run["mask_coverage"] > 0.02 for run in first.values()), first


def test_video_profile_prints_every_stage(tmp_path):
    """``video_profile.py`` on a tiny model: every stage's row, FLOPs counted, steady-state frames found."""
    from sam2_pipelines import testing

    model = testing.save_tiny_video_model(tmp_path / "tiny", visible_bias=2.0)
    script = SCRIPT.parent / "video_profile.py"
    completed = subprocess.run([sys.executable, str(script), "--model", str(model), "--frames", "9", "--objects", "2"],
                               capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    out = completed.stdout
    for stage in ("decode + preprocess", "image encoder", "memory attention", "decoder", "memory encoder", "output", "total per frame"):
        assert any(line.startswith(stage) for line in out.splitlines()), f"no {stage!r} row in:\n{out}"
    total = next(line for line in out.splitlines() if line.startswith("total per frame")).split()
    assert float(total[5]) > 0, out  # GFLOP counted
    assert "shared-work step" in out and "steady state = 2 frames" in out, out
