"""benchmarks/bench_rewrites.py: each CPU graph rewrite timed against the one before."""
import re
import subprocess
import sys

import pytest

from common.mx import mx
from symbols.fusion import can_fuse
from tests.conftest import ROOT


@pytest.mark.skipif(not can_fuse([mx.cpu()]), reason="this MXNet build has no MKL-DNN rewrites")
def test_every_rewrite_is_timed_against_the_one_before():
    run = subprocess.run([sys.executable, "benchmarks/bench_rewrites.py", "--depths", "8",
                          "--batch-size", "4", "--batches", "1", "--repeats", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert lines[0].startswith("machine: ")
    assert re.fullmatch(r"ResNet-8, float32, batch 4: none [\d.]+ ms, fusion [\d.]+ ms, "
                        r"fusion\+mean [\d.]+ ms", lines[1])
    assert re.fullmatch(r"  fusion over none: [\d.]+x", lines[2])
    assert re.fullmatch(r"  fusion\+mean over fusion: [\d.]+x", lines[3])


def test_bad_flags_are_one_line():
    run = subprocess.run([sys.executable, "benchmarks/bench_rewrites.py", "--depths", "x"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1
