"""The CPU this process runs on: model, the instruction sets that matter for training
speed, and its physical cores (Linux ``/proc/cpuinfo`` and ``/sys``). No MXNet here.

Training scripts use it to refuse ``--dtype bfloat16`` where the CPU has no bfloat16
instructions, the benchmarks to say what machine their figures come from.
"""
import functools
import os
import platform
from dataclasses import dataclass

from common.cli import UsageError

# /proc/cpuinfo flag -> the name printed, in the order printed.
ISAS = {"avx2": "AVX2", "fma": "FMA", "avx512f": "AVX512F", "avx512_vnni": "AVX512_VNNI",
        "avx_vnni": "AVX_VNNI", "avx512_bf16": "AVX512_BF16", "amx_bf16": "AMX_BF16"}
# Native bfloat16 arithmetic: AVX512_BF16's dot product (Cooper Lake, Zen 4 and later),
# or AMX's bfloat16 tiles (Sapphire Rapids and later).
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class CPU:
    model: str
    flags: frozenset

    @property
    def isa(self):
        """Names of the instruction sets of ``ISAS`` that the CPU has."""
        return [name for flag, name in ISAS.items() if flag in self.flags]

    @property
    def native_bf16(self):
        return any(flag in self.flags for flag in BF16_FLAGS)

    def label(self, cores=None):
        """e.g. ``AMD EPYC 7B13, 2 cores, AVX2/FMA, no AVX-512, no native bf16``."""
        parts = [self.model] + ([f"{cores} cores"] if cores else [])
        parts.append("/".join(self.isa) or "no AVX2")
        if "avx512f" not in self.flags:
            parts.append("no AVX-512")
        if not self.native_bf16:
            parts.append("no native bf16")
        return ", ".join(parts)


def parse_cpuinfo(text):
    """The CPU described by the text of ``/proc/cpuinfo`` (its first processor)."""
    model, flags = None, None
    for line in text.splitlines():
        key, _, value = (s.strip() for s in line.partition(":"))
        if key == "model name" and model is None:
            model = " ".join(value.split())
        elif key in ("flags", "Features") and flags is None:  # x86, ARM
            flags = frozenset(value.split())
    return CPU(model or platform.processor() or platform.machine() or "unknown CPU",
               flags or frozenset())


@functools.lru_cache(maxsize=1)
def this_cpu():
    """The CPU of this machine (an empty flag set where /proc/cpuinfo cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            return parse_cpuinfo(f.read())
    except OSError:
        return parse_cpuinfo("")


def core_cpus():
    """One logical CPU per physical core among those this process may run on
    (hyper-threads of a core counted once), in increasing order."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        list(range(os.cpu_count() or 1))
    first = {}
    for cpu in cpus:
        path = f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list"
        try:
            with open(path) as f:
                core = f.read().strip()
        except OSError:
            core = str(cpu)
        first.setdefault(core, cpu)
    return sorted(first.values()) or [0]


def physical_cores():
    """Number of physical cores this process may run on (hyper-threads counted once)."""
    return len(core_cpus())


def bfloat16_missing(cpu=None):
    """Why ``cpu`` (default: this one) cannot train in bfloat16, in one line; None if it can."""
    cpu = cpu or this_cpu()
    if cpu.native_bf16:
        return None
    return (f"this CPU ({cpu.label()}) has no native bfloat16 instructions: bfloat16 "
            "training needs AVX512_BF16 or AMX_BF16 (e.g. Intel Cooper Lake or Sapphire "
            "Rapids, AMD Zen 4); train in float32")


def check_dtype(dtype, gpus=None, cpu=None):
    """Raise a one-line UsageError where ``--dtype`` cannot run on the chosen devices:
    float16 only on GPUs, bfloat16 only on CPUs with native bfloat16."""
    if dtype == "float16" and not gpus:
        raise UsageError("--dtype float16 needs GPU contexts (--gpus)")
    if dtype == "bfloat16":
        if gpus:
            raise UsageError("--dtype bfloat16 is for CPUs with native bfloat16; on GPUs "
                             "use --dtype float16")
        missing = bfloat16_missing(cpu)
        if missing:
            raise UsageError(f"--dtype bfloat16: {missing}")
