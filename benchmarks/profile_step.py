"""One training iteration of MXNet and of PyTorch, profiled and broken down by operator kind.

    python3 benchmarks/profile_step.py --depth 20 --dtype float32 --batches 5
    python3 benchmarks/profile_step.py --depth 56 --dtype bfloat16 --batches 5   # native bf16

The step is the one ``bench_train.py`` times in each framework, at the same batch, with
its functions: its ``real`` run, the project's default network trained by its loop
(``bench_train.time_loop``: ``training.loop.train_epoch``, NAG, loss and accuracy sums
kept on the device) over the augmenting ``CifarIter`` of the CIFAR-10 files in
``--data-dir``; and its PyTorch peer (``bench_train.peer``: channels-last, the fused SGD
with Nesterov momentum, bfloat16 through ``torch.autocast``) on one fixed batch.

Each framework runs ``--warmup`` iterations and then ``--batches`` profiled ones in a
child process under oneDNN's verbose mode with timestamps:
- MXNet: ``mx.profiler`` (all but the C API calls) records every operator, with
  ``MXNET_EXEC_BULK_EXEC_TRAIN=0`` (bulked segments would hide the operators inside them);
  the time of each operator name is summed and mapped to a kind by ``MXNET_KINDS``.
- PyTorch: ``torch.profiler``; ``key_averages()``'s self CPU time of each name, mapped to
  a kind by ``TORCH_KINDS`` (autograd's bookkeeping of a backward node goes with the node).
Layout reorders run inside the operators and have no name of their own. oneDNN times
every reorder it runs (``bench_ops.exec_fields`` reads its lines); each is placed, by its
start time, in the innermost operator that was running, whose kind gives that time up to
"layout reorders" (source and destination layouts differ) or to "copies" (same layout:
a copy, or a cast). The data pipeline is MXNet's main thread waiting for the iterator
while no operator ran (the peer has none); the batches the iterator's thread prepares
while operators run are not on this timeline, and cost only as slower operators.
"other" is what is left of the profiled wall time: operators of no listed kind (pooling,
the classifier, allocations), the engine, Python. The rows sum to the profiled time an
iteration.

Then the wall time an iteration is measured outside the profiler, in this process,
MXNet with its defaults, the two frameworks alternated (median of ``--repeats`` runs of
``--batches`` iterations each). The figures go to the standard output only.
"""
import argparse
import bisect
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.bench_ops import exec_fields  # noqa: E402
from common.cli import Parser, UsageError, run_main  # noqa: E402
from common.cpu import check_dtype, physical_cores, this_cpu  # noqa: E402

FRAMEWORKS = ("mxnet", "torch")

# The rows of the table, in order: (key, label).
KINDS = (
    ("conv_forward", "convolution forward"),
    ("conv_backward", "convolution backward"),
    ("batchnorm", "BatchNorm (with ReLU where fused)"),
    ("relu", "ReLU"),
    ("residual_add", "residual add (and gradient sums)"),
    ("slice_pad", "option A slice and pad"),
    ("loss", "softmax and loss (with loss and accuracy sums)"),
    ("update", "optimizer update"),
    ("reorder", "layout reorders (oneDNN)"),
    ("copy", "copies and casts"),
    ("data", "data pipeline"),
    ("other", "other"),
)
LABELS = dict(KINDS)

# MXNet operator names (as mx.profiler reports them) of each kind; others are "other".
MXNET_KINDS = {
    "conv_forward": ("Convolution",),
    "conv_backward": ("_backward_Convolution",),
    "batchnorm": ("BatchNorm", "_backward_BatchNorm", "_contrib_BatchNormWithReLU",
                  "_backward_contrib_BatchNormWithReLU"),
    "relu": ("Activation", "_backward_Activation", "relu", "_backward_relu"),
    "residual_add": ("elemwise_add", "_backward_add", "add_n", "ElementWiseSum", "_grad_add"),
    "slice_pad": ("slice", "_backward_slice", "slice_axis", "_backward_slice_axis",
                  "expand_dims", "squeeze", "zeros_like", "broadcast_axis",
                  "_backward_broadcast_axis", "Pad", "_backward_Pad"),
    # SoftmaxOutput, then training.monitor.RunningStats' sums of loss and correct answers
    "loss": ("SoftmaxOutput", "_backward_SoftmaxOutput", "log", "pick", "argmax", "sum",
             "broadcast_equal", "_plus_scalar", "_mul_scalar", "Concat", "broadcast_add"),
    "update": ("nag_mom_update", "mp_nag_mom_update", "sgd_update", "sgd_mom_update",
               "mp_sgd_update", "mp_sgd_mom_update", "multi_sgd_update",
               "multi_sgd_mom_update", "multi_mp_sgd_update", "multi_mp_sgd_mom_update",
               "preloaded_multi_sgd_update", "preloaded_multi_sgd_mom_update"),
    # the batch copied into the executor, Flatten's backward, bfloat16 casts
    "copy": ("CopyCPU2CPU", "_copy", "_copyto", "_backward_copy", "amp_cast",
             "_backward_amp_cast", "amp_multicast", "_backward_amp_multicast", "Cast",
             "_backward_Cast"),
}

# PyTorch names (aten operators, autograd nodes, the optimizer's ranges) of each kind.
TORCH_KINDS = {
    "conv_forward": ("aten::conv2d", "aten::convolution", "aten::_convolution",
                     "aten::mkldnn_convolution", "aten::_slow_conv2d_forward",
                     "aten::thnn_conv2d", "aten::_nnpack_spatial_convolution"),
    "conv_backward": ("aten::convolution_backward", "ConvolutionBackward0",
                      "aten::mkldnn_convolution_backward", "aten::_slow_conv2d_backward"),
    "batchnorm": ("aten::batch_norm", "aten::_batch_norm_impl_index",
                  "aten::native_batch_norm", "aten::_native_batch_norm_legit",
                  "aten::_native_batch_norm_legit_functional", "aten::_batch_norm_with_update",
                  "aten::native_batch_norm_backward", "aten::batch_norm_backward",
                  "NativeBatchNormBackward0", "BatchNormWithUpdateBackward0"),
    "relu": ("aten::relu", "aten::relu_", "aten::clamp_min", "aten::clamp_min_",
             "aten::threshold_backward", "ReluBackward0"),
    # add_: autograd's sums of a gradient that reaches a tensor twice (and BatchNorm's
    # count of batches); add: the shortcuts, and bench_train's sums of the loss
    "residual_add": ("aten::add", "aten::add_", "AddBackward0"),
    "slice_pad": ("aten::slice", "aten::narrow", "aten::constant_pad_nd", "aten::pad",
                  "aten::slice_backward", "SliceBackward0", "ConstantPadNdBackward0"),
    # cross-entropy and its backward, the mean over the batch, the count of correct
    # answers (aten::sum also sums the classifier's bias gradient, a few µs)
    "loss": ("aten::cross_entropy_loss", "aten::log_softmax", "aten::_log_softmax",
             "aten::_log_softmax_backward_data", "aten::nll_loss", "aten::nll_loss_nd",
             "aten::nll_loss_forward", "aten::nll_loss_backward", "LogSoftmaxBackward0",
             "NllLossBackward0", "aten::div", "DivBackward0", "aten::ones_like",
             "aten::argmax", "aten::eq", "aten::sum"),
    "update": ("aten::_fused_sgd_", "aten::_fused_sgd", "Optimizer.step#SGD.step",
               "Optimizer.zero_grad#SGD.zero_grad", "aten::_foreach_add_",
               "aten::_foreach_mul_", "aten::_foreach_add", "aten::_foreach_mul"),
    "reorder": ("aten::to_dense", "aten::_to_dense", "aten::to_mkldnn",
                "aten::mkldnn_reorder_conv2d_weight"),
    # copies, and autocast's casts
    "copy": ("aten::copy_", "aten::to", "aten::_to_copy", "aten::contiguous", "aten::clone",
             "aten::_copy_from", "aten::_copy_from_and_resize", "ToCopyBackward0",
             "CloneBackward0"),
}
AUTOGRAD_PREFIX = "autograd::engine::evaluate_function: "


def name_table(kinds):
    """{operator name: kind key} of a ``{kind: names}`` table; a name in two kinds is an
    error."""
    table = {}
    for kind, names in kinds.items():
        for name in names:
            if name in table:
                raise ValueError(f"{name} is in both {table[name]} and {kind}")
            table[name] = kind
    return table


MXNET_NAMES, TORCH_NAMES = name_table(MXNET_KINDS), name_table(TORCH_KINDS)


def mxnet_kind(name):
    """The kind key of an MXNet operator name ("other" for the rest)."""
    return MXNET_NAMES.get(name, "other")


def torch_kind(name):
    """The kind key of a PyTorch profiler name ("other" for the rest); autograd's
    evaluation of a backward node goes with the node."""
    return TORCH_NAMES.get(name.removeprefix(AUTOGRAD_PREFIX), "other")


KIND_OF = {"mxnet": mxnet_kind, "torch": torch_kind}


# -- oneDNN's reorders, and where they ran ---------------------------------------------------

LAYOUT = re.compile(r"\b(src|dst)[_:](\w+?):\w*:blocked:(\w+)")


def reorder_kind(descriptors):
    """"reorder" where a oneDNN reorder changes the layout (e.g. plain ``abcd`` to blocked
    ``aBcd16b``), "copy" where it keeps it (a copy, or a cast of the data type)."""
    tags = {side: tag for side, _, tag in LAYOUT.findall(descriptors)}
    if "src" in tags and tags.get("src") == tags.get("dst"):
        return "copy"
    return "reorder"


def onednn_reorders(lines, start_us, end_us):
    """[(start µs, ms, "reorder" or "copy")] of the oneDNN reorders whose start time lies
    in [start_us, end_us]; lines without a time are left out."""
    found = []
    for line in lines:
        fields = exec_fields(line)
        if fields is None or fields[0] != "reorder" or fields[5] is None:
            continue
        at = fields[5] * 1000
        if start_us <= at <= end_us:
            found.append((at, fields[4], reorder_kind(fields[2])))
    return found


def onednn_version(lines):
    """"v2.4.4" from oneDNN's info lines, or None."""
    for line in lines:
        match = re.search(r"oneDNN (v[\d.]+)", line)
        if match:
            return match.group(1)
    return None


class Events:
    """Operator intervals [(start µs, end µs, name)], to find the operator running at a time."""

    def __init__(self, events, slack_us=0.0):
        self.events = sorted((float(s), float(e), n) for n, s, e in events)
        self.starts = [e[0] for e in self.events]
        self.slack = slack_us

    def innermost(self, at):
        """The name of the latest-starting operator running at ``at``, or None."""
        i = bisect.bisect_right(self.starts, at + self.slack)
        while i > 0:
            i -= 1
            start, end, name = self.events[i]
            if end + self.slack >= at:
                return name
        return None

    def busy(self):
        """The merged intervals during which some operator ran."""
        merged = []
        for start, end, _ in self.events:
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        return merged


def idle_time(intervals, busy):
    """µs of ``intervals`` [(start, end)] not covered by the merged ``busy`` intervals."""
    starts = [b[0] for b in busy]
    total = 0.0
    for start, end in intervals:
        covered = 0.0
        i = max(0, bisect.bisect_right(starts, start) - 1)
        while i < len(busy) and busy[i][0] < end:
            covered += max(0.0, min(end, busy[i][1]) - max(start, busy[i][0]))
            i += 1
        total += (end - start) - covered
    return total


def breakdown(record, kind_of, lines):
    """{kind: ms an iteration}, summing to the profiled wall time an iteration, and notes
    (what "other" holds, where the reorders ran) from a child's ``record`` and its
    oneDNN lines."""
    batches = record["batches"]
    rows = {key: 0.0 for key, _ in KINDS}
    other_names = {}
    for name, ms in record["self_ms"].items():
        kind = kind_of(name)
        rows[kind] += ms
        if kind == "other":
            other_names[name] = other_names.get(name, 0.0) + ms
    events = Events(record["events"], slack_us=record.get("slack_us", 0.0))
    reorders = onednn_reorders(lines, record["start_us"], record["end_us"])
    owners = {"reorder": {}, "copy": {}}  # kind -> {operator it ran in: ms}
    calls = {"reorder": 0, "copy": 0}
    for at, ms, kind in reorders:
        owner = events.innermost(at)
        rows[kind] += ms
        calls[kind] += 1
        if owner is not None:
            rows[kind_of(owner)] -= ms
            if kind_of(owner) == "other":
                other_names[owner] -= ms
        owner = owner or "(outside any operator)"
        owners[kind][owner] = owners[kind].get(owner, 0.0) + ms
    waits = record.get("data_waits") or []
    rows["data"] = idle_time(waits, events.busy()) / 1000 if waits else 0.0
    total = record["seconds"] * 1000
    rows["other"] = total - sum(v for k, v in rows.items() if k != "other")
    per_batch = {k: v / batches for k, v in rows.items()}
    outside = (rows["other"] - sum(other_names.values())) / batches
    notes = {"total": total / batches, "outside_ms": outside,
             "other_names": {k: v / batches for k, v in other_names.items()},
             "reorders": {kind: (calls[kind] / batches,
                                 {k: v / batches for k, v in owners[kind].items()})
                          for kind in owners},
             "data_wait_ms": sum(e - s for s, e in waits) / 1000 / batches,
             "onednn": onednn_version(lines)}
    return per_batch, notes


# -- the two training steps ----------------------------------------------------------------

def project_step(depth, batch_size, dtype):
    """bench_train's configuration of the project's network, the network, and its Module
    (bound, initialised, with its optimizer): ``(config, symbol, mod)``."""
    from benchmarks import bench_train
    from training.speed import SyntheticIter, synthetic_module
    from training.devices import get_contexts
    from training.module import build_symbol
    config = bench_train.synthetic_config(depth, batch_size, dtype=dtype)
    symbol = build_symbol(config)
    shapes = SyntheticIter(config.num_classes, (batch_size,) + config.image_shape, 1)
    mod = synthetic_module(config, symbol, shapes, get_contexts(config.gpus, config.cpus))
    return config, symbol, mod


def cifar_iter(opts, batches):
    """bench_train's augmenting iterator over ``--data-dir``, tiled to ``batches``."""
    from benchmarks import bench_train
    return bench_train.cifar_iter(opts.data_dir, batches, opts.batch_size)


def project_epoch(mod, data_iter, epoch):
    """Seconds of bench_train's real-data run: ``train_epoch`` over an epoch of
    ``data_iter``, metrics flushed and the engine drained."""
    from benchmarks import bench_train
    return bench_train.time_loop(mod, data_iter, epoch)


def torch_step(depth, batch_size, dtype):
    """bench_train's PyTorch peer: ``run(batches) -> seconds``."""
    from benchmarks import bench_train
    from training.module import build_symbol
    device = bench_train.torch_device(None)
    symbol = build_symbol(bench_train.synthetic_config(depth, batch_size, dtype=dtype))
    return bench_train.peer(depth, symbol, batch_size, device, dtype)


def now_us():
    return time.time() * 1e6


def mxnet_trace_events(path):
    """[(name, start µs, end µs)] of the operators in an mx.profiler trace file."""
    with open(path) as f:
        trace = json.load(f)
    open_, events = {}, []
    for ev in trace["traceEvents"]:
        if ev.get("cat") != "operator" or ev.get("ph") not in ("B", "E"):
            continue
        key = (ev.get("tid"), ev["name"])
        if ev["ph"] == "B":
            open_.setdefault(key, []).append(ev["ts"])
        elif open_.get(key):
            events.append((ev["name"], open_[key].pop(), ev["ts"]))
    return events


def mxnet_child(opts, out):
    """Profile the project's step (run under DNNL_VERBOSE); write the record to ``out``."""
    from common.mx import mx
    _, _, mod = project_step(opts.depth, opts.batch_size, opts.dtype)
    if opts.warmup:
        warmup = cifar_iter(opts, opts.warmup)
        project_epoch(mod, warmup, 0)
        warmup.close()
    data = cifar_iter(opts, opts.batches)
    waits, read = [], data.next

    def timed_next():  # the main thread waiting for the iterator
        start = now_us()
        try:
            return read()
        finally:
            waits.append((start, now_us()))
    data.next = timed_next
    trace = out + ".trace.json"
    # profile_all but the C API: a call of the iterator's thread in flight when the
    # profiler starts aborts MXNet 1.9.1 ("thread_profiling_data.calls_.empty()")
    mx.profiler.set_config(profile_symbolic=True, profile_imperative=True,
                           profile_memory=True, profile_api=False, filename=trace)
    start = now_us()
    mx.profiler.set_state("run")
    seconds = project_epoch(mod, data, 1)
    mx.profiler.set_state("stop")
    end = now_us()
    mx.profiler.dump()
    data.close()
    waits = [w for w in waits if w[0] >= start]
    events = mxnet_trace_events(trace)
    self_ms = {}
    for name, s, e in events:
        self_ms[name] = self_ms.get(name, 0.0) + (e - s) / 1000
    record = {"batches": opts.batches, "seconds": seconds, "start_us": start, "end_us": end,
              "events": events, "self_ms": self_ms, "data_waits": waits, "slack_us": 1.0,
              "version": mx.__version__}
    with open(out, "w") as f:
        json.dump(record, f)


def torch_child(opts, out):
    """Profile the peer's step (run under ONEDNN_VERBOSE); write the record to ``out``."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    run = torch_step(opts.depth, opts.batch_size, opts.dtype)
    if opts.warmup:
        run(opts.warmup)
    start = now_us()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        seconds = run(opts.batches)
    end = now_us()
    base = prof.profiler.kineto_results.trace_start_ns() / 1000
    events = [(e.name, base + e.time_range.start, base + e.time_range.end)
              for e in prof.events()]
    self_ms = {a.key: a.self_cpu_time_total / 1000 for a in prof.key_averages()}
    record = {"batches": opts.batches, "seconds": seconds, "start_us": start, "end_us": end,
              "events": events, "self_ms": self_ms, "version": torch.__version__}
    with open(out, "w") as f:
        json.dump(record, f)


def run_child(framework, opts, work_dir):
    """(record, oneDNN lines) of the profiled step of ``framework`` in a child process."""
    out = os.path.join(work_dir, f"{framework}.json")
    argv = [sys.executable, os.path.abspath(__file__), "--child", framework, "--child-out",
            out, "--depth", str(opts.depth), "--dtype", opts.dtype, "--batch-size",
            str(opts.batch_size), "--batches", str(opts.batches), "--warmup",
            str(opts.warmup)] + (["--data-dir", opts.data_dir] if opts.data_dir else [])
    if framework == "mxnet":
        env = dict(os.environ, DNNL_VERBOSE="1", DNNL_VERBOSE_TIMESTAMP="1",
                   MXNET_EXEC_BULK_EXEC_TRAIN="0")
    else:
        env = dict(os.environ, ONEDNN_VERBOSE="1", ONEDNN_VERBOSE_TIMESTAMP="1")
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0 or not os.path.isfile(out):
        lines = proc.stderr.strip().splitlines() or ["no message"]
        raise UsageError(f"the {framework} profile failed: "
                         f"{lines[-1].split(': error: ', 1)[-1]}")
    with open(out) as f:
        return json.load(f), proc.stdout.splitlines()


# -- wall time outside the profiler ---------------------------------------------------------

def wall_times(opts, peer):
    """{framework: median ms an iteration} of ``--repeats`` runs of ``--batches``
    iterations, MXNet with its defaults, the frameworks alternated."""
    from benchmarks.bench_train import QuietWaiter
    wait = QuietWaiter(opts.max_wait) if opts.max_wait > 0 else (lambda: None)
    _, _, mod = project_step(opts.depth, opts.batch_size, opts.dtype)
    data = cifar_iter(opts, opts.batches)
    timers = {"mxnet": lambda epoch: project_epoch(mod, data, epoch)}
    if peer:
        run = torch_step(opts.depth, opts.batch_size, opts.dtype)
        timers["torch"] = lambda epoch: run(opts.batches)
    if opts.warmup:  # memory plans, primitives, caches
        warmup = cifar_iter(opts, opts.warmup)
        project_epoch(mod, warmup, 0)
        warmup.close()
        if peer:
            run(opts.warmup)
    seconds = {name: [] for name in timers}
    for r in range(opts.repeats):
        order = list(timers) if r % 2 == 0 else list(timers)[::-1]
        for name in order:
            wait()
            seconds[name].append(timers[name](r + 1))
    data.close()
    return {name: 1000 * statistics.median(s) / opts.batches for name, s in seconds.items()}


# -- the table ------------------------------------------------------------------------------

def table(results):
    """The markdown table: a row per kind, ms an iteration and share, per framework, and
    the profiled total."""
    names = {"mxnet": "MXNet", "torch": "PyTorch"}
    heads = [h for fw in results for h in (f"{names[fw]} ms", f"{names[fw]} share")]
    lines = ["| operator kind | " + " | ".join(heads) + " |",
             "|---|" + "---:|" * len(heads)]
    for key, label in KINDS + (("total", "total (profiled)"),):
        cells = []
        for rows, notes in results.values():
            value = notes["total"] if key == "total" else rows[key]
            cells += [f"{value:.2f}", f"{100 * value / notes['total']:.1f} %"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def top(items, count=5):
    shown = sorted(((v, k) for k, v in items.items() if round(v, 2)), reverse=True)[:count]
    return ", ".join(f"{k} {v:.2f}" for v, k in shown) or "none"


def notes_lines(results, wall):
    names = {"mxnet": "MXNet", "torch": "PyTorch"}
    lines = []
    for fw, (rows, notes) in results.items():
        lines.append(f"- {names[fw]}: profiled {notes['total']:.2f} ms an iteration against "
                     f"{wall[fw]:.2f} ms outside the profiler.")
        for kind, what in (("reorder", "changing the layout"), ("copy", "keeping it")):
            calls, owners = notes["reorders"][kind]
            lines.append(f"  oneDNN reorders {what}: {calls:.0f} an iteration, "
                         f"{sum(owners.values()):.2f} ms, by the operator they ran in (ms): "
                         f"{top(owners)}.")
        if fw == "mxnet":
            lines.append(f"  the main thread waited {notes['data_wait_ms']:.2f} ms for the "
                         f"iterator, {rows['data']:.2f} ms of it while no operator ran (the "
                         "data pipeline row).")
        lines.append(f"  \"other\": {notes['outside_ms']:.2f} ms outside any listed "
                     f"operator{' (the engine, Python)' if fw == 'mxnet' else ' (Python)'}; "
                     f"the biggest unlisted operators (ms): {top(notes['other_names'])}.")
    if "torch" in results:
        lines.append("- PyTorch's data pipeline is 0: bench_train's peer trains on one "
                     "fixed batch.")
    return lines


def parse_args(argv=None):
    p = Parser(prog="profile_step.py", description=__doc__.splitlines()[0])
    p.add_argument("--depth", type=int, default=20, help="CIFAR ResNet depth (6n+2)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="bfloat16: on a CPU with native bfloat16 (AVX512_BF16 or AMX)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--batches", type=int, default=5, help="profiled iterations")
    p.add_argument("--warmup", type=int, default=3, help="iterations before profiling")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed runs of --batches iterations outside the profiler")
    p.add_argument("--data-dir", help="CIFAR-10 batches for MXNet's iterator (default: "
                   "bench_train's generated images)")
    p.add_argument("--no-peer", action="store_true", help="skip PyTorch")
    p.add_argument("--max-wait", type=float, default=120, help="seconds, in all, to wait "
                   "for other processes to leave the CPUs idle before timed runs (0: never)")
    p.add_argument("--child", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    if min(opts.batch_size, opts.batches, opts.repeats) < 1 or opts.warmup < 0:
        raise UsageError("--batch-size, --batches and --repeats must be >= 1, --warmup >= 0")
    if opts.depth < 8 or (opts.depth - 2) % 6:
        raise UsageError(f"--depth {opts.depth}: the default CIFAR network is 6n+2 deep "
                         "(8, 14, 20, 56, 110...)")
    if opts.data_dir is not None and not os.path.isdir(opts.data_dir):
        raise UsageError(f"--data-dir {opts.data_dir}: no such folder")
    check_dtype(opts.dtype)
    return opts


def main(argv=None):
    opts = parse_args(argv)
    if opts.child:
        return (mxnet_child if opts.child == "mxnet" else torch_child)(opts, opts.child_out)
    from benchmarks.bench_train import import_torch
    from common.mx import mx
    if not mx.runtime.Features().is_enabled("MKLDNN"):
        raise UsageError("this MXNet build has no MKL-DNN (oneDNN): nothing to profile")
    torch = None if opts.no_peer else import_torch()
    frameworks = ["mxnet"] + ([] if opts.no_peer else ["torch"])
    results, versions = {}, {}
    with tempfile.TemporaryDirectory(prefix="profile_step-") as work_dir:
        for fw in frameworks:
            record, lines = run_child(fw, opts, work_dir)
            results[fw] = breakdown(record, KIND_OF[fw], lines)
            versions[fw] = (record["version"], results[fw][1]["onednn"])
    wall = wall_times(opts, not opts.no_peer)
    print(f"profile_step: ResNet-{opts.depth}, {opts.dtype}, batch {opts.batch_size}, "
          f"{opts.warmup} warm-up and {opts.batches} profiled iterations; ms an iteration")
    print(f"machine: {this_cpu().label(physical_cores())}; "
          f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
    parts = [f"Python {platform.python_version()}"]
    for fw, name in (("mxnet", "MXNet"), ("torch", "PyTorch")):
        if fw in versions:
            version, onednn = versions[fw]
            parts.append(f"{name} {version} (oneDNN {onednn or 'unknown'})")
    print("versions: " + ", ".join(parts) + (f"; torch threads {torch.get_num_threads()}"
                                              if torch else ""))
    print("MXNet profiled with MXNET_EXEC_BULK_EXEC_TRAIN=0; wall times with its defaults")
    print()
    print("\n".join(table(results)))
    print()
    speed = (f"; MXNet / PyTorch speed {wall['torch'] / wall['mxnet']:.2f}x"
             if "torch" in wall else "")
    print(f"wall time an iteration outside the profiler (median of {opts.repeats} runs of "
          f"{opts.batches}): " + ", ".join(f"{'MXNet' if k == 'mxnet' else 'PyTorch'} "
                                           f"{v:.2f} ms" for k, v in wall.items()) + speed)
    print("\n".join(notes_lines(results, wall)))
    return 0


if __name__ == "__main__":
    run_main(main, prog="profile_step.py")
