"""The benchmarks' view of the machine: the x86-64 code of the clock and peak loops, the
loops each CPU gets, and measured figures that must be plausible (no PyTorch needed)."""
import platform
import re
import shutil
import subprocess

import pytest

from benchmarks import machine
from common.cpu import parse_cpuinfo, this_cpu
from tests.cpuinfo_samples import SAPPHIRE_RAPIDS, ZEN3, ZEN4
from tests.train_support import run_script

X86 = platform.machine() in ("x86_64", "AMD64")
needs_x86 = pytest.mark.skipif(not X86, reason="the loops are x86-64 code")


def runnable(code):
    if machine.machine_code(code) is None:
        pytest.skip("this system refuses executable memory: the benchmarks print no "
                    "measured peak")


def test_encodings_match_the_assemblers():
    # from llvm-mc --show-encoding (x86_64, +avx512f,+avx512bf16,+fma)
    assert machine.vex_fma_ymm(10).hex() == "c4420db8d7"   # vfmadd231ps ymm10, ymm14, ymm15
    assert machine.evex_fma_zmm(9).hex() == "62520d48b8cf"  # vfmadd231ps zmm9, zmm14, zmm15
    assert machine.evex_dpbf16_zmm(2).hex() == "62d20e4852d7"  # vdpbf16ps zmm2, zmm14, zmm15


@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) not installed")
@pytest.mark.parametrize("name", list(machine.PEAK_LOOPS))
def test_loops_disassemble_to_what_they_claim(name, tmp_path):
    _, instruction, _, what = machine.PEAK_LOOPS[name]
    path = tmp_path / f"{name}.bin"
    path.write_bytes(machine.throughput_loop(instruction))
    text = subprocess.run(["objdump", "-D", "-b", "binary", "-m", "i386:x86-64", str(path)],
                          capture_output=True, text=True, check=True).stdout
    body = [line.split("\t")[-1].strip() for line in text.splitlines()
            if re.match(r"\s+[0-9a-f]+:\t", line)]
    mnemonic, width = what.split()[-1], "zmm" if "zmm" in what else "ymm"
    assert body[0] == "vzeroall" and body[-2:] == ["vzeroupper", "ret"]
    assert body[1:1 + machine.ACCUMULATORS] == [
        f"{mnemonic} %{width}15,%{width}14,%{width}{d}" for d in range(machine.ACCUMULATORS)]
    assert body[1 + machine.ACCUMULATORS] == "dec    %rdi"
    assert body[2 + machine.ACCUMULATORS] == "jne    0x3"  # back to the first FMA


@pytest.mark.parametrize("text,loops", [
    (ZEN3, ["fp32_avx2"]),
    (ZEN4, ["fp32_avx2", "fp32_avx512", "bf16_avx512"]),
    (SAPPHIRE_RAPIDS, ["fp32_avx2", "fp32_avx512", "bf16_avx512"]),
    ("", []),
])
def test_each_cpu_gets_the_loops_it_can_run(text, loops):
    assert machine.loops_for(parse_cpuinfo(text)) == loops


@needs_x86
def test_measured_clock_is_a_plausible_core_clock():
    runnable(machine.ADD_CHAIN)
    ghz = machine.measure_clock_ghz(threads=1, seconds=0.05)
    # a loop turn counted as 8 cycles when it takes 4 would double the clock; other
    # processes on the cores can only make it look slower
    assert 0.05 < ghz < 8.0
    reported, _ = machine.reported_clock_ghz()
    if reported:
        assert ghz < 2.0 * reported


@needs_x86
@pytest.mark.parametrize("name", machine.loops_for(this_cpu()) or ["fp32_avx2"])
def test_measured_peak_is_plausible(name):
    if name not in machine.loops_for(this_cpu()):
        pytest.skip(f"this CPU ({this_cpu().label()}) cannot run {name}")
    runnable(machine.throughput_loop(machine.PEAK_LOOPS[name][1]))
    ghz = machine.measure_clock_ghz(threads=1, seconds=0.05)
    gflops = machine.measure_peak_gflops(name, threads=1, seconds=0.05)
    per_cycle = gflops / ghz
    # FLOP a cycle on one core: two FMA units of 8 (ymm) or 16 (zmm) lanes give 32 or 64,
    # AVX512_BF16 twice that; a core with one unit, or busy with another process, less.
    most = {"fp32_avx2": 32, "fp32_avx512": 64, "bf16_avx512": 128}[name]
    assert 0.1 * most < per_cycle < 1.25 * most, (gflops, ghz)


@needs_x86
def test_machine_info_and_header():
    runnable(machine.ADD_CHAIN)
    info = machine.machine_info(threads=1, seconds=0.05)
    assert info["model"] == this_cpu().model and info["cores"] == 1
    lines = machine.header_lines(info)
    assert lines[0] == f"machine: {this_cpu().label(1)}"
    assert lines[1].startswith(f"clock: {info['ghz']:.3f} GHz (measured")
    if "float32" in info["peaks"]:
        peak = info["peaks"]["float32"]
        assert peak["gflops"] == max(peak["loops"].values()) > 0
        assert lines[2].startswith(f"float32 peak: {peak['gflops']:.1f} GFLOP/s measured")
    assert any(line.startswith("bfloat16 peak:") for line in lines) == this_cpu().native_bf16


def test_peak_line_without_a_peak():
    line = machine.peak_line({"cores": 2, "ghz": 3.0, "peaks": {}}, "bfloat16")
    assert line.startswith("bfloat16 peak: not measured")


@needs_x86
def test_the_command_prints_peaks_on_one_and_all_cores():
    out = run_script(["benchmarks/machine.py"], timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"machine: {this_cpu().label(len(machine.core_cpus()))}"
    assert "1 of " in lines[1] and sum("float32 peak:" in line for line in lines) == \
        len(machine.core_cpus())
