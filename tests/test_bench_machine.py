"""The benchmark's view of the machine: the FP32 peak formula and the measured clock
(no PyTorch needed)."""
import platform

import pytest

from benchmarks import bench_train


def test_peak_formula():
    assert bench_train.peak_gflops(2, 2, 8, 2.5) == 2 * 2 * 8 * 2 * 2.5
    assert bench_train.simd_lanes({"avx512f", "avx2", "fma"}) == 16
    assert bench_train.simd_lanes({"avx2", "fma"}) == 8
    assert bench_train.simd_lanes({"sse2"}) == 4
    cpu = bench_train.cpu_info(fma_units=2)
    assert cpu["peak_gflops"] == pytest.approx(
        cpu["cores"] * 2 * cpu["lanes"] * 2 * cpu["ghz"])
    assert cpu["peak_gflops"] > 0 and f"{cpu['peak_gflops']:.1f} GFLOP/s" in cpu["formula"]


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                    reason="the clock is measured with x86-64 code only")
def test_measured_clock_is_a_plausible_core_clock():
    if bench_train.measure_clock_ghz(threads=1, seconds=0.01) is None:
        pytest.skip("this system refuses executable memory; the reported clock is used")
    cpu = bench_train.cpu_info()
    assert "measured with a dependent-add chain" in cpu["formula"]
    # a loop turn counted as 8 cycles when it takes 4 would double the clock; other
    # processes on the cores can only make it look slower
    assert 0.05 < cpu["ghz"] < 8.0
    if cpu["reported_ghz"]:
        assert cpu["ghz"] < 2.0 * cpu["reported_ghz"]
