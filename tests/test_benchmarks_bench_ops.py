"""The oneDNN breakdown: FLOP from oneDNN's shapes, the grouping of its lines, and a tiny
run whose forward FLOP must equal the network's multiply-adds."""
import re
import subprocess
import sys

import pytest

from benchmarks import bench_ops
from benchmarks.bench_ops import parse_verbose, primitive_flop
from common.cli import UsageError
from common.mx import mx
from tests.conftest import ROOT

# Lines as MXNet 1.9.1's oneDNN prints them (times in ms are the last field).
CONV = ("dnnl_verbose,exec,cpu,convolution,jit:avx2,{prop},src_f32::blocked:aBcd8b:f0 "
        "wei_f32::blocked:ABcd8b8a:f0 bia_undef::undef::f0 dst_f32::blocked:aBcd8b:f0,,"
        "alg:convolution_direct,{problem},{ms}")
LINES = [
    "dnnl_verbose,info,oneDNN v2.3.2 (commit 3b6ee4f9)",
    "dnnl_verbose,create:cache_miss,cpu,convolution,jit:avx2,forward_training,,,,"
    "mb128_ic16oc16_ih32oh32kh3sh1dh0ph1_iw32ow32kw3sw1dw0pw1,0.1",
    CONV.format(prop="forward_training", ms="5.0",
                problem="mb128_ic16oc16_ih32oh32kh3sh1dh0ph1_iw32ow32kw3sw1dw0pw1"),
    CONV.format(prop="backward_weights", ms="8.0",
                problem="mb128_ic16oc16_ih32oh32kh3sh1dh0ph1_iw32ow32kw3sw1dw0pw1"),
    CONV.format(prop="backward_weights", ms="1.0",
                problem="mb128_ic16oc32_ih32oh16kh1sh2dh0ph0_iw32ow16kw1sw2dw0pw0"),
    "dnnl_verbose,exec,cpu,batch_normalization,bnorm_jit:avx2,forward_training,data_f32::"
    "blocked:aBcd8b:f0 diff_undef::undef::f0,,flags:SR,mb128ic16ih32iw32,1.5",
    "dnnl_verbose,exec,cpu,sum,simple:any,undef,src_f32::blocked:aBcd8b:f0 src_f32::blocked:"
    "aBcd8b:f0 dst_f32::blocked:aBcd8b:f0,,,128x16x32x32,0.75",
    "dnnl_verbose,exec,cpu,inner_product,x64:gemm:jit,forward_training,src_f32::blocked:ab:f0"
    " wei_f32::blocked:ab:f0 bia_f32::blocked:a:f0 dst_f32::blocked:ab:f0,,,mb128ic64oc10,0.04",
    "dnnl_verbose,exec,cpu,pooling_v2,jit:avx2,forward_training,,,alg:pooling_avg,"
    "mb128ic64_ih8oh1kh8,0.08",
]


def test_flop_from_onednn_shapes():
    same = "mb128_ic16oc16_ih32oh32kh3sh1dh0ph1_iw32ow32kw3sw1dw0pw1"
    assert primitive_flop("convolution", same) == 2 * 128 * 16 * 16 * 32 * 32 * 9
    strided_1x1 = "mb128_ic16oc32_ih32oh16kh1sh2dh0ph0_iw32ow16kw1sw2dw0pw0"
    assert primitive_flop("convolution", strided_1x1) == 2 * 128 * 32 * 16 * 16 * 16
    grouped = "mb2_g4ic16oc16_ih8oh8kh3sh1dh0ph1_iw8ow8kw3sw1dw0pw1"
    assert primitive_flop("convolution", grouped) == 2 * 2 * 16 * 4 * 8 * 8 * 9
    assert primitive_flop("inner_product", "mb128ic64oc10") == 2 * 128 * 64 * 10
    assert primitive_flop("inner_product", "mb4ic2048ih7iw7oc1000") == 2 * 4 * 2048 * 49 * 1000
    assert primitive_flop("batch_normalization", "mb128ic16ih32iw32") == 0


def test_lines_are_grouped_by_kind_and_pass():
    rows = parse_verbose(LINES)
    assert rows["convolution forward"] == [5.0, 2 * 128 * 16 * 16 * 32 * 32 * 9, 1]
    ms, flop, calls = rows["convolution backward_weights"]
    assert (ms, calls) == (9.0, 2)
    assert flop == 2 * 128 * 16 * 16 * 32 * 32 * 9 + 2 * 128 * 32 * 16 * 16 * 16
    assert rows["batch_normalization forward"][0] == 1.5
    assert rows["sum"] == [0.75, 0, 1]
    assert rows["inner_product forward"][1] == 2 * 128 * 64 * 10
    assert rows["other (pooling, softmax)"][2] == 1
    assert len(rows) == 6  # info and create lines are not executions


@pytest.mark.skipif(not mx.runtime.Features().is_enabled("MKLDNN"),
                    reason="this MXNet build has no MKL-DNN (oneDNN) to time")
def test_tiny_breakdown_counts_the_networks_flop():
    out = subprocess.run([sys.executable, "benchmarks/bench_ops.py", "--depth", "8",
                          "--batch-size", "8", "--batches", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    onednn, network = re.search(r"oneDNN's shapes: ([\d,]+); from the network's "
                                r"multiply-adds: ([\d,]+)", text).groups()
    assert onednn == network and int(network.replace(",", "")) > 0
    for row in ("convolution forward", "convolution backward_data",
                "convolution backward_weights", "batch_normalization backward", "sum"):
        assert re.search(rf"\d%\s+.*{row}$", text, re.M), row
    wall, inside = map(float, re.search(r"wall time a batch ([\d.]+) ms; in oneDNN "
                                        r"primitives ([\d.]+) ms", text).groups())
    assert 0 < inside <= wall


def test_bad_depth_is_one_line():
    out = subprocess.run([sys.executable, "benchmarks/bench_ops.py", "--depth", "21"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1
    assert out.stderr.startswith("bench_ops.py: error: ") and "21" in out.stderr


@pytest.mark.skipif(not mx.runtime.Features().is_enabled("MKLDNN"),
                    reason="this MXNet build has no MKL-DNN (oneDNN) to time")
def test_no_timings_is_an_error(monkeypatch):
    # A build whose oneDNN ignores DNNL_VERBOSE prints no exec lines: say so, don't
    # print an empty table.
    monkeypatch.setattr(bench_ops, "run_child", lambda opts: (["dnnl_verbose,info,x"], 1.0, 10))
    with pytest.raises(UsageError, match="oneDNN printed no timings"):
        bench_ops.main(["--depth", "8"])


def test_child_without_timed_batches_is_an_error(monkeypatch):
    # A child that exits cleanly but never reached its timed batches gives one line.
    silent = subprocess.CompletedProcess([], 0, stdout="dnnl_verbose,info,x\n", stderr="")
    monkeypatch.setattr(bench_ops.subprocess, "run", lambda *a, **k: silent)
    with pytest.raises(UsageError, match="printed no timed batches"):
        bench_ops.run_child(bench_ops.parse_args(["--depth", "8"]))
