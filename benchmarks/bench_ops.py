"""Where a CPU training batch's time goes: oneDNN's own timing of every primitive.

    python3 benchmarks/bench_ops.py --depth 20 --batches 7 [--dtype bfloat16]

Runs the project's training step (``training.module.create_module``: NAG, batch 128,
synthetic data, the BatchNorm-ReLU fusion unless ``--no-fusion``, in float32 or, on a CPU
with native bfloat16, in bfloat16) in a child process under ``DNNL_VERBOSE=1`` and sums, over the
timed batches, the time oneDNN reports for each primitive kind and pass. Convolutions
are split into forward, backward-data and backward-weights passes, each with its
GFLOP/s, from the shapes oneDNN prints, against the peak of the precision measured by
``benchmarks.machine`` (printed first, with the CPU). The batch's wall time in the same child is
printed beside oneDNN's total: the difference is what runs outside oneDNN (MXNet's own
operators such as the optimizer update, the engine, Python). The FLOP of the forward
convolutions is checked against the network's multiply-adds.
"""
import argparse
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from common.cli import UsageError, run_main  # noqa: E402
from common.cpu import check_dtype  # noqa: E402

START, END = "bench_ops: timed batches start", "bench_ops: timed batches end"


def primitive_flop(kind, problem):
    """FLOP (2 per multiply-add) of a convolution or inner product from oneDNN's problem
    descriptor, e.g. ``mb128_ic16oc16_ih32oh32kh3sh1dh0ph1_iw32ow32kw3sw1dw0pw1`` (``g``:
    groups) or ``mb128ic64oc10``; 0 for other kinds."""
    if kind not in ("convolution", "inner_product"):
        return 0
    dims = {k: int(v) for k, v in re.findall(r"(mb|g|ic|oc|ih|iw|oh|ow|kh|kw)(\d+)", problem)}
    mb, g, ic, oc, ih, iw, oh, ow, kh, kw = (
        dims.get(k, 1) for k in ("mb", "g", "ic", "oc", "ih", "iw", "oh", "ow", "kh", "kw"))
    if kind == "inner_product":
        return 2 * mb * oc * ic * ih * iw
    return 2 * mb * oc * (ic // g) * oh * ow * kh * kw


def row_name(kind, prop):
    """The table row of a primitive: the layers with weights and BatchNorm and ReLU by
    pass, additions, layout changes, and the rest."""
    if kind in ("convolution", "inner_product", "batch_normalization", "eltwise"):
        return f"{kind} {'forward' if prop.startswith('forward') else prop}"
    if kind in ("sum", "reorder"):
        return kind
    return "other (pooling, softmax)"


def exec_fields(line):
    """(kind, prop, memory descriptors, problem, ms, start ms or None) of one of oneDNN's
    ``exec`` lines, else None. Reads oneDNN 2's ``dnnl_verbose,exec,cpu,...`` (MXNet) and
    oneDNN 3's ``onednn_verbose,v1,primitive,exec,cpu,...`` (PyTorch); the start is the
    wall-clock time in ms that ``DNNL_VERBOSE_TIMESTAMP=1`` (``ONEDNN_...``) puts before
    ``exec``."""
    fields = line.strip().split(",")
    if not fields[0].endswith("_verbose") or "exec" not in fields[1:5]:
        return None
    at = fields.index("exec", 1)
    if len(fields) < at + 7:
        return None
    start = None
    for field in fields[1:at]:
        try:
            start = float(field)
        except ValueError:
            continue
    return (fields[at + 2], fields[at + 4], fields[at + 5], fields[-2], float(fields[-1]),
            start)


def parse_verbose(lines):
    """{row: [ms, FLOP, calls]} summed over oneDNN's ``exec`` lines."""
    rows = {}
    for line in lines:
        fields = exec_fields(line)
        if fields is None:
            continue
        kind, prop, _, problem, ms, _ = fields
        row = rows.setdefault(row_name(kind, prop), [0.0, 0, 0])
        row[0] += ms
        row[1] += primitive_flop(kind, problem)
        row[2] += 1
    return rows


def child(opts):
    """The timed training step, bracketed by markers between oneDNN's lines."""
    import symbols
    from benchmarks import bench_train
    from training.speed import SyntheticIter, synthetic_module
    from training.devices import get_contexts
    from training.module import build_symbol
    args = bench_train.synthetic_config(opts.depth, opts.batch_size, dtype=opts.dtype,
                                        fusion=not opts.no_fusion)
    symbol = build_symbol(args)
    data = SyntheticIter(10, (opts.batch_size, 3, 32, 32), opts.batches)
    mod = synthetic_module(args, symbol, data, get_contexts(args.gpus, args.cpus))
    bench_train.time_bare(mod, data.batch, 2)  # memory plan, primitives, caches
    print(START, flush=True)
    seconds = bench_train.time_bare(mod, data.batch, opts.batches)
    macs = symbols.count_macs(symbol, (3, 32, 32))
    print(f"{END} {seconds} {macs}", flush=True)
    return 0


def run_child(opts):
    """(oneDNN lines of the timed batches, their wall seconds, the network's forward
    multiply-adds per image) from a child process under DNNL_VERBOSE."""
    argv = [sys.executable, os.path.abspath(__file__), "--child", "--depth", str(opts.depth),
            "--batch-size", str(opts.batch_size), "--batches", str(opts.batches),
            "--dtype", opts.dtype]
    env = dict(os.environ, DNNL_VERBOSE="1")
    out = subprocess.run(argv + (["--no-fusion"] if opts.no_fusion else []), env=env,
                         capture_output=True, text=True)
    if out.returncode != 0:
        lines = out.stderr.strip().splitlines() or ["no message"]
        raise UsageError(lines[-1].split(": error: ", 1)[-1])
    lines = out.stdout.splitlines()
    if START not in lines or not any(l.startswith(END) for l in lines):
        raise UsageError("the training child printed no timed batches")
    first = lines.index(START)
    last = next(i for i, l in enumerate(lines) if l.startswith(END))
    _, seconds, macs = lines[last].rsplit(" ", 2)
    return lines[first + 1:last], float(seconds), int(macs)


def report(rows, seconds, macs, opts, peak_gflops):
    """The table: ms per batch, share of oneDNN's total, GFLOP/s and share of the peak
    (nan where ``peak_gflops`` is None: no peak could be measured)."""
    peak_gflops = peak_gflops or float("nan")
    per_batch = {name: (ms / opts.batches, flop / opts.batches, calls / opts.batches)
                 for name, (ms, flop, calls) in rows.items()}
    total = sum(ms for ms, _, _ in per_batch.values())
    wall = seconds * 1000 / opts.batches
    lines = [f"wall time a batch {wall:.1f} ms; in oneDNN primitives {total:.1f} ms "
             f"({100 * total / wall:.1f} %)",
             f"{'ms/batch':>9} {'share':>6} {'calls':>6} {'GFLOP/s':>8} {'of peak':>8}  primitive"]
    for name, (ms, flop, calls) in sorted(per_batch.items(), key=lambda kv: -kv[1][0]):
        rate = f"{flop / ms / 1e6:8.1f} {100 * flop / ms / 1e6 / peak_gflops:7.1f}%" \
            if flop else f"{'':8} {'':8}"
        lines.append(f"{ms:9.1f} {100 * ms / total:5.1f}% {calls:6.0f} {rate}  {name}")
    conv = [v for k, v in per_batch.items() if k.startswith("convolution")]
    conv_ms, conv_flop = sum(c[0] for c in conv), sum(c[1] for c in conv)
    if conv_ms:
        lines.append(f"convolutions: {conv_ms:.1f} ms, {conv_flop / conv_ms / 1e6:.1f} GFLOP/s "
                     f"= {100 * conv_flop / conv_ms / 1e6 / peak_gflops:.1f}% of the peak")
    forward = sum(per_batch.get(f"{k} forward", (0, 0, 0))[1]
                  for k in ("convolution", "inner_product"))
    lines.append(f"forward FLOP a batch from oneDNN's shapes: {forward:,.0f}; from the "
                 f"network's multiply-adds: {2 * macs * opts.batch_size:,}")
    return lines


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depth", type=int, default=20, help="CIFAR ResNet depth")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--batches", type=int, default=7, help="timed batches")
    p.add_argument("--no-fusion", action="store_true",
                   help="BatchNorm and ReLU as separate operators")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="bfloat16: on a CPU with native bfloat16 (AVX512_BF16 or AMX)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    if min(opts.batch_size, opts.batches) < 1:
        raise UsageError("--batch-size and --batches must be >= 1")
    check_dtype(opts.dtype)
    return opts


def main(argv=None):
    opts = parse_args(argv)
    if opts.child:
        return child(opts)
    from benchmarks.machine import header_lines, machine_info
    from common.mx import mx
    if not mx.runtime.Features().is_enabled("MKLDNN"):
        raise UsageError("this MXNet build has no MKL-DNN (oneDNN): nothing to time")
    lines, seconds, macs = run_child(opts)
    rows = parse_verbose(lines)
    if not rows:
        raise UsageError("oneDNN printed no timings (DNNL_VERBOSE had no effect)")
    machine = machine_info()
    print("\n".join(header_lines(machine)))
    print(f"ResNet-{opts.depth}, {opts.dtype}, batch {opts.batch_size}, {opts.batches} "
          f"batches, BatchNorm-ReLU fusion {'off' if opts.no_fusion else 'on'}, "
          f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
    peak = machine["peaks"].get(opts.dtype, {}).get("gflops")
    print("\n".join(report(rows, seconds, macs, opts, peak)))
    return 0


if __name__ == "__main__":
    run_main(main, prog="bench_ops.py")
