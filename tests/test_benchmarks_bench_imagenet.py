"""benchmarks/bench_imagenet.py: the ImageNet ResNets' training step against torchvision's."""
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def torchvision_runs():
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except Exception as err:  # missing, or built for another torch
        return str(err)
    return None


@pytest.mark.skipif(torchvision_runs() is not None,
                    reason=f"PyTorch with torchvision is needed: {torchvision_runs()}")
def test_resnet18_against_torchvision_with_the_same_parameters():
    run = subprocess.run([sys.executable, "benchmarks/bench_imagenet.py", "--depths", "18",
                          "--batch-size", "2", "--batches", "1", "--repeats", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    line = run.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"ResNet-18, float32, 224x224, batch 2, 11,689,512 parameters: "
                        r"project [\d.]+ images/s, torchvision [\d.]+ images/s; "
                        r"project / PyTorch [\d.]+x", line)


def test_bad_flags_are_one_line():
    for argv in (["--depths", "10"], ["--dtypes", "float16"]):
        run = subprocess.run([sys.executable, "benchmarks/bench_imagenet.py"] + argv,
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
