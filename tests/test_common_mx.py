"""GPU plumbing of common.mx that runs without a GPU: the refusal of GPUs MXNet 1.9.1 has
no code for, and the preload of the nvidia-*-cu11 wheels' libraries."""
import ctypes.util
import os
import shutil
import subprocess
import sys

import pytest

import common.mx as cmx
from common.cli import run_main
from common.mx import mx
from tests.conftest import ROOT


def fake_capability(monkeypatch, major, minor, name="NVIDIA H100 80GB HBM3"):
    monkeypatch.setattr(cmx, "compute_capability", lambda device_id: (major, minor, name))


@pytest.mark.parametrize("major,minor", [(9, 0), (10, 0), (3, 7)])
def test_gpus_without_mxnet_code_are_refused(monkeypatch, major, minor):
    fake_capability(monkeypatch, major, minor)
    with pytest.raises(cmx.GPUError, match=rf"GPU 1 \(NVIDIA H100 80GB HBM3\) has compute "
                                           rf"capability {major}\.{minor}, and MXNet 1\.9\.1"):
        cmx.check_gpus([mx.cpu(), mx.gpu(1)])


@pytest.mark.parametrize("major,minor", [(5, 2), (6, 1), (7, 0), (7, 5), (8, 0), (8, 6), (8, 9)])
def test_gpus_with_mxnet_code_pass(monkeypatch, major, minor):
    fake_capability(monkeypatch, major, minor)
    cmx.check_gpus([mx.gpu(0), mx.gpu(1)])


def test_cpu_contexts_never_ask_the_driver(monkeypatch):
    def boom(device_id):
        raise AssertionError("the driver was asked about a CPU context")
    monkeypatch.setattr(cmx, "compute_capability", boom)
    cmx.check_gpus([mx.cpu(), mx.cpu(1)])
    cmx.check_gpus([])


def test_hopper_stops_a_command_in_one_line(monkeypatch, capsys):
    fake_capability(monkeypatch, 9, 0)
    with pytest.raises(SystemExit) as stop:
        run_main(lambda argv: cmx.check_gpus([mx.gpu(0)]), [], "train_cifar.py")
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("train_cifar.py: error: GPU 0 (NVIDIA H100 80GB HBM3) has compute "
                          "capability 9.0") and "sm_86" in err


@pytest.mark.skipif(ctypes.util.find_library("cuda") is not None, reason="a CUDA driver exists")
def test_no_driver_is_one_clear_error():
    with pytest.raises(cmx.GPUError, match=r"no NVIDIA driver \(libcuda\.so\.1\)"):
        cmx.compute_capability(0)


def test_preload_finds_the_wheels_libraries(tmp_path):
    # A stand-in nvidia/ namespace holding one "library" (a copy of libz) under a cu11 name.
    libz = ctypes.util.find_library("z")
    if libz is None:
        pytest.skip("no libz to stand in for a CUDA library")
    lib = tmp_path / "nvidia" / "nvtx" / "lib"
    lib.mkdir(parents=True)
    (tmp_path / "nvidia" / "__init__.py").write_text("")
    found = [os.path.join(d, libz) for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
                                            "/lib64", "/usr/lib64", "/lib", "/usr/lib")]
    source = next((p for p in found if os.path.exists(p)), None)
    if source is None:
        pytest.skip("libz not found on disk")
    shutil.copy(source, lib / "libnvToolsExt.so.1")
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}")
    out = subprocess.run([sys.executable, "-c", "from common.mx import preload_cuda11\n"
                          "print(preload_cuda11())"],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str([str(lib / "libnvToolsExt.so.1")])
