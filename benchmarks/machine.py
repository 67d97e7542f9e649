"""The machine a benchmark runs on, measured: the clock its cores run at and the peak
FLOP rate they reach, from x86-64 loops run through ctypes on all cores at once.

    python3 benchmarks/machine.py          # the CPU, its clock, and its peaks on 1..N cores

The FP32 peak is the rate of a loop of independent fused multiply-adds: AVX2's
``vfmadd231ps`` on 256-bit ymm registers and, where the CPU has AVX-512, on 512-bit zmm
registers; the faster of the two counts. Measuring it, rather than multiplying FMA units,
lanes and clock, holds where the formula fails: Zen 4 runs AVX-512 on 256-bit units, and
Intel cores slow their clock for AVX-512. Where the CPU has AVX512_BF16, the bfloat16
peak is that of its dot product ``vdpbf16ps`` (16 float32 lanes, each adding two bfloat16
products: 64 FLOP an instruction). AMX tiles are not measured.

Each loop keeps ``ACCUMULATORS`` registers in flight, one dependency chain each: more
than an FMA's latency times the FMA units of any current core (4-6 cycles x 2 units),
so the units, not the latency, set the rate. Every thread is pinned to its own physical
core. The registers start at zero and stay zero, so no denormal slows them.
"""
import ctypes
import mmap
import os
import platform
import statistics
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from common.cli import Parser  # noqa: E402
from common.cpu import core_cpus, this_cpu  # noqa: E402

ACCUMULATORS = 12

# x86-64 System V: the loop count arrives in rdi.
# xor rax,rax; loop: 8 x add rax,rax; dec rdi; jnz loop; ret. The adds depend on each
# other, one cycle each on every x86-64 core, so a loop turn takes 8 cycles.
ADD_CHAIN = bytes.fromhex("4831c0" + "4801c0" * 8 + "48ffcf" + "75e3" + "c3")
VZEROALL, VZEROUPPER, DEC_RDI, RET = (bytes.fromhex(h)
                                      for h in ("c5fc77", "c5f877", "48ffcf", "c3"))


def vex_fma_ymm(d):
    """vfmadd231ps ymm<d>, ymm14, ymm15 (VEX.256.66.0F38.W0 B8 /r)."""
    r = 0x00 if d >= 8 else 0x80  # VEX.R: inverted bit 3 of the destination
    return bytes([0xC4, r | 0x42, 0x0D, 0xB8, 0xC7 | (d & 7) << 3])


def evex_zmm(d, pp, opcode):
    """``opcode`` zmm<d>, zmm14, zmm15 in EVEX.512.<pp>.0F38.W0 form."""
    r = 0x00 if d >= 8 else 0x80  # EVEX.R: inverted bit 3 of the destination
    # P0: R, X=1, B=0 (zmm15), R'=1, map 0F38; P1: W0, vvvv = ~14, 1, pp; P2: 512 bits, V'=1
    return bytes([0x62, r | 0x52, 0x0C | pp, 0x48, opcode, 0xC7 | (d & 7) << 3])


def evex_fma_zmm(d):
    """vfmadd231ps zmm<d>, zmm14, zmm15 (EVEX.512.66.0F38.W0 B8 /r)."""
    return evex_zmm(d, 0x1, 0xB8)


def evex_dpbf16_zmm(d):
    """vdpbf16ps zmm<d>, zmm14, zmm15 (EVEX.512.F3.0F38.W0 52 /r)."""
    return evex_zmm(d, 0x2, 0x52)


def throughput_loop(instruction, accumulators=ACCUMULATORS):
    """Machine code of ``f(turns)``: vzeroall; then ``turns`` times, ``instruction`` on
    each accumulator register 0..accumulators-1; vzeroupper; ret."""
    body = b"".join(instruction(d) for d in range(accumulators)) + DEC_RDI
    jump = -(len(body) + 2)  # jnz rel8 back to the first instruction of the body
    if jump < -128:
        raise ValueError("loop body too long for a short jump")
    return VZEROALL + body + bytes([0x75, jump & 0xFF]) + VZEROUPPER + RET


# name -> (flags the CPU needs, instruction encoder, FLOP an instruction, what it is)
PEAK_LOOPS = {
    "fp32_avx2": (("avx2", "fma"), vex_fma_ymm, 16, "AVX2 ymm vfmadd231ps"),
    "fp32_avx512": (("avx512f",), evex_fma_zmm, 32, "AVX-512 zmm vfmadd231ps"),
    "bf16_avx512": (("avx512f", "avx512_bf16"), evex_dpbf16_zmm, 64,
                    "AVX512_BF16 zmm vdpbf16ps"),
}


class MachineCode:
    """x86-64 code in an executable page, callable as ``int64 f(int64)``; ctypes
    releases the GIL during the call, so threads run it in parallel."""

    def __init__(self, code):
        self.page = mmap.mmap(-1, mmap.PAGESIZE,
                              prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        self.page.write(code)
        self.call = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(
            ctypes.addressof(ctypes.c_char.from_buffer(self.page)))


def machine_code(code):
    """A MachineCode of ``code``, or None where it cannot run: not x86-64, or a system
    that refuses executable memory."""
    if platform.machine() not in ("x86_64", "AMD64") or not hasattr(mmap, "PROT_EXEC"):
        return None
    try:
        return MachineCode(code)
    except (OSError, ValueError):
        return None


def run_on_cores(func, threads):
    """Run ``func()`` in ``threads`` threads at once, each pinned to its own physical core
    where the system allows; returns their results in order."""
    cpus = core_cpus()
    results = [None] * threads
    barrier = threading.Barrier(threads)

    def work(i):
        if hasattr(os, "sched_setaffinity") and i < len(cpus):
            try:
                os.sched_setaffinity(0, {cpus[i]})  # 0: this thread, on Linux
            except OSError:
                pass
        barrier.wait()
        results[i] = func()

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return results


def timed_turns(code, seconds):
    """Loop turns of ``code`` that take about ``seconds`` on one core."""
    tic = time.perf_counter()
    code.call(10 ** 5)
    return max(1, int(10 ** 5 * seconds / max(time.perf_counter() - tic, 1e-7)))


def measure_clock_ghz(threads, seconds=0.3):
    """The clock the cores run at while all ``threads`` are busy, in GHz: the median over
    threads of (8 x loop turns) / time of the dependent-add chain. None where it cannot run."""
    code = machine_code(ADD_CHAIN)
    if code is None:
        return None
    turns = timed_turns(code, seconds)

    def run():
        start = time.perf_counter()
        code.call(turns)
        return 8 * turns / (time.perf_counter() - start) / 1e9
    return statistics.median(run_on_cores(run, threads))


def measure_peak_gflops(name, threads, seconds=0.3, repeats=3):
    """GFLOP/s of loop ``name`` of PEAK_LOOPS on ``threads`` cores at once: the sum of the
    threads' rates, the best of ``repeats`` runs (other processes can only slow it). None
    where the code cannot run."""
    _, instruction, flop, _ = PEAK_LOOPS[name]
    code = machine_code(throughput_loop(instruction))
    if code is None:
        return None
    turns = timed_turns(code, seconds)
    flop_a_turn = ACCUMULATORS * flop

    def run():
        start = time.perf_counter()
        code.call(turns)
        return flop_a_turn * turns / (time.perf_counter() - start) / 1e9
    return max(sum(run_on_cores(run, threads)) for _ in range(repeats))


def loops_for(cpu):
    """Names of the PEAK_LOOPS that ``cpu`` can run."""
    return [name for name, (flags, _, _, _) in PEAK_LOOPS.items()
            if all(f in cpu.flags for f in flags)]


def measure_peaks(cpu, threads, seconds=0.3):
    """{"float32": {...}, "bfloat16": {...}}: the best measured loop of each precision
    (gflops, loop, and every loop's rate), precisions without a runnable loop left out."""
    peaks = {}
    for name in loops_for(cpu):
        gflops = measure_peak_gflops(name, threads, seconds)
        if gflops is None:
            continue
        dtype = "float32" if name.startswith("fp32") else "bfloat16"
        peak = peaks.setdefault(dtype, {"gflops": 0.0, "loop": None, "loops": {}})
        peak["loops"][PEAK_LOOPS[name][3]] = gflops
        if gflops > peak["gflops"]:
            peak.update(gflops=gflops, loop=PEAK_LOOPS[name][3])
    return peaks


def reported_clock_ghz():
    """(GHz, source) that the kernel reports: cpufreq's maximum, else /proc/cpuinfo."""
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") as f:
            return int(f.read()) / 1e6, "cpufreq maximum"
    except (OSError, ValueError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            mhz = next((float(l.split(":")[1]) for l in f if l.startswith("cpu MHz")), None)
    except (OSError, ValueError):
        mhz = None
    return (mhz or 0) / 1e3, "/proc/cpuinfo cpu MHz"


def machine_info(threads=None, seconds=0.3):
    """What the benchmarks print and record about the machine: CPU model, instruction sets,
    physical cores, the clock measured on all of them at once (else the one the kernel
    reports), and the measured peaks of each precision on all of them."""
    cpu = this_cpu()
    cores = threads or len(core_cpus())
    reported, source = reported_clock_ghz()
    ghz = measure_clock_ghz(cores, seconds)
    if ghz is None:
        ghz = reported
    else:
        source = (f"measured with a dependent-add chain on {cores} cores at once; "
                  f"{source} says {reported:.3f}")
    peaks = measure_peaks(cpu, cores, seconds)
    return {"model": cpu.model, "isa": cpu.isa, "native_bf16": cpu.native_bf16,
            "cores": cores, "label": cpu.label(cores), "ghz": ghz, "reported_ghz": reported,
            "clock_source": source, "peaks": peaks}


def peak_line(info, dtype="float32"):
    """One line on the measured peak of ``dtype`` (or why there is none)."""
    peak = info["peaks"].get(dtype)
    if peak is None:
        return (f"{dtype} peak: not measured (no {dtype} loop this CPU runs, or executable "
                "memory refused)")
    per_cycle = peak["gflops"] / info["cores"] / info["ghz"] if info["ghz"] else 0
    others = "; ".join(f"{loop} {g:.1f}" for loop, g in peak["loops"].items())
    cores = "1 core" if info["cores"] == 1 else f"{info['cores']} cores at once"
    return (f"{dtype} peak: {peak['gflops']:.1f} GFLOP/s measured ({others}) on {cores} = "
            f"{per_cycle:.1f} FLOP a cycle a core at {info['ghz']:.3f} GHz")


def header_lines(info):
    """The lines every benchmark prints first: the machine, its clock and its peaks."""
    lines = [f"machine: {info['label']}",
             f"clock: {info['ghz']:.3f} GHz ({info['clock_source']})", peak_line(info)]
    if info["native_bf16"]:
        lines.append(peak_line(info, "bfloat16"))
    return lines


def main(argv=None):
    Parser(prog="machine.py", description="The CPU, its clock, and its measured FP32 "
           "(and bfloat16) peak on 1..N cores.").parse_args(argv)
    cpu = this_cpu()
    cores = len(core_cpus())
    print(f"machine: {cpu.label(cores)}")
    for threads in range(1, cores + 1):
        info = {"cores": threads, "ghz": measure_clock_ghz(threads),
                "peaks": measure_peaks(cpu, threads)}
        print(f"{threads} of {cores} cores: clock {info['ghz'] or 0:.3f} GHz measured")
        for dtype in ("float32", "bfloat16") if cpu.native_bf16 else ("float32",):
            print("  " + peak_line(info, dtype))
    return 0


if __name__ == "__main__":
    sys.exit(main())
