"""Smoke run of ``benchmarks/reference_benchmark.py --quick`` (ours vs Meta vs transformers, same weights)."""

from __future__ import annotations

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
