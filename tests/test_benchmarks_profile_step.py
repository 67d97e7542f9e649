"""The per-operator profile: operator names mapped to kinds, oneDNN's reorders placed in the
operator they ran in, and a tiny run whose table has every kind and adds up."""
import importlib.util
import re
import subprocess
import sys

import pytest

from benchmarks import profile_step
from benchmarks.bench_ops import exec_fields
from benchmarks.profile_step import (KINDS, MXNET_KINDS, TORCH_KINDS, breakdown,
                                     mxnet_kind, reorder_kind, torch_kind)
from tests.conftest import ROOT

HAS_TORCH = importlib.util.find_spec("torch") is not None
KEYS = [key for key, _ in KINDS]


def test_every_kind_of_the_tables_is_a_row():
    assert set(MXNET_KINDS) <= set(KEYS) and set(TORCH_KINDS) <= set(KEYS)
    assert "other" not in MXNET_KINDS and "other" not in TORCH_KINDS
    with pytest.raises(ValueError, match="in both"):
        profile_step.name_table({"relu": ("Activation",), "batchnorm": ("Activation",)})


@pytest.mark.parametrize("name,kind", [
    ("Convolution", "conv_forward"), ("_backward_Convolution", "conv_backward"),
    ("BatchNorm", "batchnorm"), ("_backward_contrib_BatchNormWithReLU", "batchnorm"),
    ("Activation", "relu"), ("_backward_Activation", "relu"),
    ("elemwise_add", "residual_add"), ("add_n", "residual_add"),
    ("slice", "slice_pad"), ("broadcast_axis", "slice_pad"),
    ("SoftmaxOutput", "loss"), ("_backward_SoftmaxOutput", "loss"), ("pick", "loss"),
    ("nag_mom_update", "update"), ("CopyCPU2CPU", "copy"), ("amp_cast", "copy"),
    ("_backward_copy", "copy"), ("Pooling", "other"), ("FullyConnected", "other"),
    ("WaitForVar", "other"), ("no_such_operator", "other"),
])
def test_mxnet_names(name, kind):
    assert mxnet_kind(name) == kind


@pytest.mark.parametrize("name,kind", [
    ("aten::mkldnn_convolution", "conv_forward"), ("aten::conv2d", "conv_forward"),
    ("aten::convolution_backward", "conv_backward"),
    ("autograd::engine::evaluate_function: ConvolutionBackward0", "conv_backward"),
    ("aten::native_batch_norm", "batchnorm"), ("aten::native_batch_norm_backward", "batchnorm"),
    ("aten::relu_", "relu"), ("aten::clamp_min_", "relu"), ("aten::threshold_backward", "relu"),
    ("aten::add", "residual_add"), ("aten::add_", "residual_add"),
    ("aten::constant_pad_nd", "slice_pad"), ("aten::slice", "slice_pad"),
    ("aten::_log_softmax", "loss"), ("aten::nll_loss_backward", "loss"),
    ("aten::_fused_sgd_", "update"), ("Optimizer.step#SGD.step", "update"),
    ("aten::to_dense", "reorder"), ("aten::copy_", "copy"), ("aten::_to_copy", "copy"),
    ("aten::contiguous", "copy"), ("aten::addmm", "other"), ("aten::empty", "other"),
    ("torch::autograd::AccumulateGrad", "other"),
])
def test_torch_names(name, kind):
    assert torch_kind(name) == kind


# oneDNN 2 (MXNet) and oneDNN 3 (PyTorch) lines, with DNNL_VERBOSE_TIMESTAMP=1.
V2 = ("dnnl_verbose,{t},exec,cpu,reorder,jit:uni,undef,src_f32::blocked:{src}:f0 "
      "dst_{dt}::blocked:{dst}:f0,,,16x16x3x3,{ms}")
V3 = ("onednn_verbose,v1,{t},primitive,exec,cpu,reorder,jit:blk,undef,src:f32::blocked:"
      "acdb::f0 dst:f32::blocked:Acdb16a::f0,attr-scratchpad:user,,16x3x3x3,0.5")
CONV = ("dnnl_verbose,{t},exec,cpu,convolution,jit:avx512_common,forward_training,src_f32::"
        "blocked:aBcd16b:f0 wei_f32::blocked:ABcd16b16a:f0 bia_undef::undef::f0 dst_f32::"
        "blocked:aBcd16b:f0,,alg:convolution_direct,mb8_ic16oc16_ih32oh32kh3sh1dh0ph1_iw32ow32"
        "kw3sw1dw0pw1,2.0")


def test_verbose_lines_of_both_onednn_versions():
    kind, prop, mds, problem, ms, start = exec_fields(
        V2.format(t="1000.25", src="abcd", dst="ABcd16b16a", dt="f32", ms="0.75"))
    assert (kind, prop, problem, ms, start) == ("reorder", "undef", "16x16x3x3", 0.75, 1000.25)
    assert exec_fields(V3.format(t="2000.5"))[::5] == ("reorder", 2000.5)
    untimed = "dnnl_verbose,exec,cpu,sum,simple:any,undef,src_f32::blocked:aBcd8b:f0,,,8x16,0.1"
    assert exec_fields(untimed)[4:] == (0.1, None)
    assert exec_fields("dnnl_verbose,info,oneDNN v2.4.4 (commit 5818c40)") is None
    assert exec_fields("profile_step: something else") is None


def test_reorders_that_keep_the_layout_are_copies():
    line = V2.format(t=0, src="abcd", dst="ABcd16b16a", dt="f32", ms=1)
    assert reorder_kind(exec_fields(line)[2]) == "reorder"
    assert reorder_kind(exec_fields(V3.format(t=0))[2]) == "reorder"
    same = V2.format(t=0, src="aBcd16b", dst="aBcd16b", dt="f32", ms=1)
    assert reorder_kind(exec_fields(same)[2]) == "copy"
    cast = V2.format(t=0, src="abcd", dst="abcd", dt="bf16", ms=1)
    assert reorder_kind(exec_fields(cast)[2]) == "copy"


def test_reorders_leave_the_operator_they_ran_in():
    # Two iterations: 10 ms of convolution holding a 1 ms weight reorder, 4 ms of
    # elemwise_add holding a 0.5 ms copy, 2 ms of pooling; the main thread waited 3 ms
    # for the iterator, 1 ms of it while nothing ran; 20 ms of wall time in all.
    ms = 1000  # µs
    record = {"batches": 2, "seconds": 0.020, "start_us": 0, "end_us": 20 * ms,
              "events": [("Convolution", 2 * ms, 12 * ms), ("elemwise_add", 12 * ms, 16 * ms),
                         ("Pooling", 16 * ms, 18 * ms)],
              "self_ms": {"Convolution": 10.0, "elemwise_add": 4.0, "Pooling": 2.0},
              "data_waits": [(1 * ms, 4 * ms)]}
    lines = [V2.format(t=3.0, src="abcd", dst="ABcd16b16a", dt="f32", ms=1.0),
             CONV.format(t=4.1),
             V2.format(t=13.0, src="aBcd16b", dst="aBcd16b", dt="f32", ms=0.5),
             V2.format(t=25.0, src="abcd", dst="aBcd16b", dt="f32", ms=9.0)]  # after the end
    rows, notes = breakdown(record, mxnet_kind, lines)
    assert rows["conv_forward"] == pytest.approx(4.5)
    assert rows["reorder"] == pytest.approx(0.5)
    assert rows["residual_add"] == pytest.approx(1.75)
    assert rows["copy"] == pytest.approx(0.25)
    assert rows["data"] == pytest.approx(0.5)
    assert sum(rows.values()) == pytest.approx(notes["total"]) == pytest.approx(10.0)
    assert rows["other"] == pytest.approx(10 - 4.5 - 0.5 - 1.75 - 0.25 - 0.5)
    assert notes["other_names"] == {"Pooling": pytest.approx(1.0)}
    assert notes["reorders"]["reorder"] == (0.5, {"Convolution": pytest.approx(0.5)})
    assert notes["onednn"] is None


def test_bad_depth_is_one_line():
    out = subprocess.run([sys.executable, "benchmarks/profile_step.py", "--depth", "21"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.startswith("profile_step.py: error: --depth 21")
    assert len(out.stderr.strip().splitlines()) == 1


# -- a tiny run ---------------------------------------------------------------------------

def columns(text):
    """{framework: {row label: ms}} from the printed markdown table."""
    lines = [l for l in text.splitlines() if l.startswith("| ")]
    heads = [h.strip() for h in lines[0].strip("|").split("|")]
    frameworks = [h.split()[0] for h in heads[1::2]]
    table = {fw: {} for fw in frameworks}
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for i, fw in enumerate(frameworks):
            table[fw][cells[0]] = float(cells[1 + 2 * i])
    return table


@pytest.fixture(scope="module")
def tiny_profile(generated_cifar10):
    argv = [sys.executable, "benchmarks/profile_step.py", "--depth", "8", "--batch-size", "8",
            "--batches", "1", "--warmup", "1", "--repeats", "1", "--max-wait", "0",
            "--data-dir", generated_cifar10] + ([] if HAS_TORCH else ["--no-peer"])
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def check_column(column):
    labels = [label for _, label in KINDS]
    assert list(column) == labels + ["total (profiled)"]
    assert sum(column[l] for l in labels) == pytest.approx(column["total (profiled)"],
                                                           abs=0.005 * len(labels) + 1e-9)
    assert column["convolution forward"] > 0 and column["convolution backward"] > 0


def test_tiny_mxnet_profile_has_every_kind_and_adds_up(tiny_profile):
    assert "machine: " in tiny_profile and "MXNet 1.9.1" in tiny_profile
    check_column(columns(tiny_profile)["MXNet"])
    assert re.search(r"outside the profiler \(median of 1 runs of 1\): MXNet [\d.]+ ms",
                     tiny_profile)


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch (the peer) is not installed: "
                    "pip install torch==2.13.0 'numpy<2'")
def test_tiny_pytorch_profile_has_every_kind_and_adds_up(tiny_profile):
    check_column(columns(tiny_profile)["PyTorch"])
    assert re.search(r"PyTorch [\d.]+ ms; MXNet / PyTorch speed [\d.]+x", tiny_profile)
