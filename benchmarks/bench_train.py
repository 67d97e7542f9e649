"""Training and inference speed of the CIFAR ResNets on this machine, against PyTorch.

    python3 benchmarks/bench_train.py --depths 20,56,110,164 --repeats 5
    python3 benchmarks/bench_train.py --dtypes float32,bfloat16     # a CPU with native bf16

It first prints the machine (``benchmarks.machine``): CPU model, instruction sets, the
clock its cores run at and its peaks, measured. Then, for every network and precision of
``--dtypes``, at batch 128, alternating within each repeat:
- real: the project's training loop (``training.loop.train_epoch``: Module update, loss and
  accuracy on the device, progress, loss checks) over the augmenting ``CifarIter``, fed
  with the CIFAR-10 files of ``--data-dir`` (default: 1,000 generated images) tiled to
  the batches needed;
- synthetic: the same loop over one fixed random batch;
- bare: ``forward_backward`` + ``update`` alone, to price the metric bookkeeping;
- unfused (CPU): the bare loop with BatchNorm and ReLU as separate operators
  (``--no-fusion``), to price the fusion of ``symbols.fusion``;
- torch: the same network in PyTorch eager (``peer_torch``, parameter shapes asserted
  equal), SGD with Nesterov momentum, loss and accuracy sums kept as tensors, in the same
  precision (autocast for float16 and bfloat16) and the fastest settings found (the
  fused SGD; channels-last on the CPU);
- torch_defaults: the same in PyTorch's defaults (NCHW, SGD looping over parameters).
Then: achieved GFLOP/s (3 x 2 x forward multiply-adds per image) against the peak of the
precision (the FMA loop's for float32, the bfloat16 dot product's for bfloat16) measured
on all cores after the network's runs; the time of a checkpoint against an epoch of 50k
images; inference images/s of the network exported by ``training.export`` (float32);
peak RSS of each float32 network, fused and unfused (and of R-1001 with and without
memory mirroring) in subprocesses; a linear fit of time per image against depth.
Speeds are medians of the repeats; ratios are medians of the ratios within a repeat.
bfloat16 on a CPU without native bfloat16 is skipped, in one line that says why.

With ``--gpus`` the same runs on GPU contexts, in each of ``--dtypes``.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from benchmarks.machine import (header_lines, machine_info, measure_clock_ghz,  # noqa: E402
                                measure_peaks)
from common.cli import UsageError, int_list, run_main  # noqa: E402
from common.cpu import bfloat16_missing, physical_cores, this_cpu  # noqa: E402
from common.files import write_json  # noqa: E402
from common.mx import mx  # noqa: E402

GENERATED_IMAGES = 1000  # the real-data step's images without --data-dir
DTYPES = ("float32", "float16", "bfloat16")
EPOCH_IMAGES = 50000  # a CIFAR training epoch, to price a checkpoint against
DISP_BATCHES = 20  # train_cifar.py's default --disp-batches


# -- the machine ----------------------------------------------------------------------

def load_average():
    """The 1, 5 and 15-minute load averages: how busy the machine was besides us."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def cpu_busy(seconds=0.3):
    """Fraction of the machine's CPU time spent busy over ``seconds`` (/proc/stat)."""
    def sample():
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        return sum(ticks), ticks[3] + ticks[4]  # all, idle + iowait
    total, idle = sample()
    time.sleep(seconds)
    total2, idle2 = sample()
    return 1.0 - (idle2 - idle) / max(1, total2 - total)


class QuietWaiter:
    """Before each timed run, waits until other processes leave the CPUs idle (busy below
    ``threshold``), spending at most ``budget_s`` seconds over the whole benchmark: on a
    shared machine, one busy neighbour slows OpenMP's threads many times over."""

    def __init__(self, budget_s, threshold=0.15):
        self.budget_s, self.threshold = budget_s, threshold
        self.waited_s, self.runs, self.busy_runs = 0.0, 0, 0

    def __call__(self):
        self.runs += 1
        tic = time.perf_counter()
        while cpu_busy() > self.threshold:
            if self.waited_s + time.perf_counter() - tic >= self.budget_s:
                self.busy_runs += 1
                break
            time.sleep(1.0)
        self.waited_s += time.perf_counter() - tic

    def summary(self):
        return (f"{self.runs - self.busy_runs} of {self.runs} timed runs started on an idle "
                f"machine (waited {self.waited_s:.0f} s for other processes in all)")


def training_gflop(macs):
    """GFLOP of one training image: forward, and backward as twice the forward."""
    return macs * 2 * 3 / 1e9


def linear_fit(x, y):
    """(slope, intercept, R^2) of the least-squares line y = slope * x + intercept."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    total = ((y - y.mean()) ** 2).sum()
    return slope, intercept, 1.0 - (residual ** 2).sum() / total if total else 1.0


# -- the project's training path --------------------------------------------------------

def synthetic_config(depth, batch_size, gpus=None, dtype="float32", mirror=False,
                     fusion=True):
    """train_cifar.py's configuration (a ``training.args.CifarConfig``) of a synthetic run
    of this network."""
    import train_cifar
    argv = ["--num-layers", str(depth), "--batch-size", str(batch_size), "--benchmark",
            "--dtype", dtype] + (["--gpus", gpus] if gpus else [])
    argv += (["--mirror"] if mirror else []) + ([] if fusion else ["--no-fusion"])
    return train_cifar.parse_args(argv)


def cifar_images(data_dir):
    """Images and labels of the CIFAR-10 training files in ``data_dir``, or where it is
    None, GENERATED_IMAGES generated ones (``data.synthetic``: the speed of the pipeline
    does not depend on the pixels)."""
    from data import load_cifar
    from data.synthetic import synthetic_images
    if data_dir is None:
        labels = np.arange(GENERATED_IMAGES) % 10
        return synthetic_images(labels, 10, np.random.default_rng(0)), labels
    if not os.path.isdir(data_dir):
        raise UsageError(f"--data-dir {data_dir}: no such folder")
    files = sorted(f for f in os.listdir(data_dir) if f.startswith("data_batch"))
    if not files:
        raise UsageError(f"--data-dir {data_dir}: no CIFAR-10 data_batch_* file")
    return load_cifar(data_dir, files=files)


def cifar_iter(data_dir, batches, batch_size):
    """The training CifarIter (augmenting, shuffling) over ``cifar_images(data_dir)``,
    tiled to ``batches`` full batches."""
    from data import CifarIter, cifar_mean_std
    images, labels = cifar_images(data_dir)
    mean, std = cifar_mean_std(images)
    take = np.arange(batches * batch_size) % len(images)
    return CifarIter(images[take], labels[take], batch_size, augment=True, mean=mean,
                     std=std, last_batch="discard")


def time_loop(mod, data_iter, epoch):
    """Seconds of ``train_epoch`` over one epoch of ``data_iter``."""
    from data.iterator import count_batches, start_epoch
    from training.loop import train_epoch
    from training.monitor import Progress, RunningStats
    start_epoch(data_iter, epoch)
    stats = RunningStats()
    batches = count_batches(data_iter)
    progress = Progress(epoch + 1, batches, DISP_BATCHES, interactive=False)
    tic = time.perf_counter()
    train_epoch(mod, data_iter, stats, progress, DISP_BATCHES, lambda b: f"batch {b}", batches)
    stats.flush()
    mx.nd.waitall()
    return time.perf_counter() - tic


def time_bare(mod, batch, batches):
    """Seconds of ``batches`` forward_backward + update, nothing else."""
    tic = time.perf_counter()
    for _ in range(batches):
        mod.forward_backward(batch)
        mod.update()
    mx.nd.waitall()
    return time.perf_counter() - tic


def checkpoint_seconds(mod, symbol, run_dir, num_classes):
    """Seconds to write one epoch's checkpoint (parameters, optimizer states, manifest)
    and metrics record, as ``training.loop.run_epoch`` does; leaves a run directory to export."""
    from training import checkpoint as ckpt
    from training import rundir
    arg, aux = mod.get_params()
    tic = time.perf_counter()
    rundir.append_metrics(run_dir, {"epoch": 1, "train_loss": 0.0})
    ckpt.save_checkpoint(run_dir, 1, 1, symbol, arg, aux, mod.save_optimizer_states,
                         extra={"seed": 0})
    seconds = time.perf_counter() - tic
    rundir.write_config(run_dir, rundir.RunRecord(
        {"num_classes": num_classes}, preprocess=rundir.Preprocess(
            image_shape=(3, 32, 32), resize=32, crop=32, mean=(0.0,) * 3, std=(1.0,) * 3)))
    return seconds


def inference_images_per_sec(run_dir, ctx, batch_size, batches, repeats, wait=None):
    """Median images/s of ``training.classify.Classifier`` over the exported network."""
    from training.classify import Classifier
    from training.export import export_model
    model = Classifier(export_model(run_dir), ctx, batch_size)
    images = np.random.default_rng(0).standard_normal((batch_size, 3, 32, 32), np.float32)
    model.probabilities(images)
    speeds = []
    for _ in range(repeats):
        if wait:
            wait()
        tic = time.perf_counter()
        for _ in range(batches):
            model.probabilities(images)
        speeds.append(batches * batch_size / (time.perf_counter() - tic))
    return statistics.median(speeds)


# -- the PyTorch peer ---------------------------------------------------------------------

def import_torch():
    try:
        import torch
    except ImportError:
        raise UsageError("PyTorch is not installed: pip install torch==2.13.0 'numpy<2' "
                         "(or pass --no-peer)") from None
    return torch


def torch_device(gpus):
    """The peer's device: the first of --gpus, or the CPU; None where PyTorch has no CUDA."""
    torch = import_torch()
    if not gpus:
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        return torch.device("cpu")
    return torch.device(f"cuda:{gpus.split(',')[0]}") if torch.cuda.is_available() else None


def peer(depth, symbol, batch_size, device, dtype="float32", tuned=True):
    """The PyTorch network and a ``run(batches) -> seconds`` timer of its training;
    ``tuned``: in the settings PyTorch trains fastest in (the fused SGD, and on the CPU
    the channels-last layout), else in its defaults (NCHW, a loop over parameters)."""
    import symbols
    from benchmarks.peer_torch import PreActResNet, make_trainer, param_shapes
    torch = import_torch()
    layout = torch.channels_last if tuned and device.type == "cpu" else torch.contiguous_format
    model = PreActResNet(depth).to(device, memory_format=layout)
    ours = sorted(symbols.param_shapes(symbol, (3, 32, 32)).values())
    if param_shapes(model) != ours:
        raise AssertionError(f"the PyTorch peer of ResNet-{depth} differs from ours in "
                             "its parameters")
    step = make_trainer(model, precision=dtype, fused=tuned)
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(batch_size, 3, 32, 32, generator=gen).to(device)
    data = data.contiguous(memory_format=layout)
    label = torch.randint(0, 10, (batch_size,), generator=gen).to(device)

    def run(batches):
        tic = time.perf_counter()
        loss = correct = 0
        for _ in range(batches):
            batch_loss, batch_correct = step(data, label)
            loss, correct = loss + batch_loss, correct + batch_correct
        float(loss), int(correct)  # waits for the device
        return time.perf_counter() - tic
    return run


# -- one network --------------------------------------------------------------------------

def default_batches(depth):
    """Batches per timed run: about four R-20 batches' worth of work, at least one."""
    return max(1, -(-80 // depth))


def bench_network(depth, opts, dtype, work_dir):
    """Time every mode of ResNet-``depth``; returns the record of its medians."""
    import symbols
    from symbols import fusion
    from training.speed import SyntheticIter, synthetic_module
    from training.devices import get_contexts
    from training.module import build_symbol
    args = synthetic_config(depth, opts.batch_size, opts.gpus, dtype)
    symbol = build_symbol(args)
    batches = opts.batches or default_batches(depth)
    real = cifar_iter(opts.data_dir, batches, opts.batch_size)
    synthetic = SyntheticIter(10, (opts.batch_size, 3, 32, 32), batches)
    contexts = get_contexts(args.gpus, args.cpus)
    mod = synthetic_module(args, symbol, synthetic, contexts)
    timers = {"real": lambda r: time_loop(mod, real, r),
              "synthetic": lambda r: time_loop(mod, synthetic, r),
              "bare": lambda r: time_bare(mod, synthetic.batch, batches)}
    if fusion.can_fuse(contexts):  # the same bare loop without the BatchNorm-ReLU fusion
        unfused_config = synthetic_config(depth, opts.batch_size, dtype=dtype, fusion=False)
        unfused = synthetic_module(unfused_config, symbol, synthetic, contexts)
        timers["unfused"] = lambda r: time_bare(unfused, synthetic.batch, batches)
    device = None if opts.no_peer else torch_device(opts.gpus)
    if device is not None:
        run_peer = peer(depth, symbol, opts.batch_size, device, dtype)
        run_default = peer(depth, symbol, opts.batch_size, device, dtype, tuned=False)
        timers["torch"] = lambda r: run_peer(batches)
        timers["torch_defaults"] = lambda r: run_default(batches)
    for timer in timers.values():  # warm-up: memory plans, kernels, caches
        timer(0)
    seconds = {mode: [] for mode in timers}
    for r in range(opts.repeats):  # alternated, in a rotating order
        modes = list(timers)[r % len(timers):] + list(timers)[:r % len(timers)]
        for mode in modes:
            opts.wait_quiet()
            seconds[mode].append(timers[mode](r + 1))
    images = batches * opts.batch_size
    speed = {m: images / statistics.median(s) for m, s in seconds.items()}
    # ratios of runs of the same repeat, seconds apart: the machine's drift cancels
    paired = {name: statistics.median(a / b for a, b in zip(seconds[slow], seconds[fast]))
              for name, slow, fast in (("project_vs_torch", "torch", "real"),
                                       ("project_vs_torch_defaults", "torch_defaults", "real"),
                                       ("fusion", "unfused", "bare"),
                                       ("real_vs_synthetic", "synthetic", "real"),
                                       ("bare_vs_synthetic", "synthetic", "bare"))
              if slow in seconds}
    ghz = peak = None
    if not opts.gpus:  # the clock drifts: it and the peak are measured after the runs
        ghz = measure_clock_ghz(physical_cores())
        peak = measure_peaks(this_cpu(), physical_cores()).get(dtype, {}).get("gflops")
    run_dir = os.path.join(work_dir, f"r{depth}-{dtype}")
    os.makedirs(run_dir)
    ckpt_s = checkpoint_seconds(mod, symbol, run_dir, 10)
    macs = symbols.count_macs(symbol, (3, 32, 32))
    record = {"depth": depth, "dtype": dtype, "batch_size": opts.batch_size,
              "batches": batches, "repeats": opts.repeats,
              "params": symbols.num_params(symbol, (3, 32, 32)), "macs": macs,
              "images_per_sec": speed, "speedup": paired, "checkpoint_s": ckpt_s, "ghz": ghz,
              "peak_gflops": peak, "gflops": speed["real"] * training_gflop(macs),
              "inference_images_per_sec": inference_images_per_sec(
                  run_dir, contexts[0], opts.batch_size, 2 * batches, opts.repeats,
                  opts.wait_quiet)}
    real.close()
    return record


def overheads(record):
    """Percent that metric bookkeeping, real data and a checkpoint per epoch add (the
    first two from within-repeat ratios)."""
    speedup = record["speedup"]
    epoch_s = EPOCH_IMAGES / record["images_per_sec"]["real"]
    return {"bookkeeping_pct": 100 * (speedup["bare_vs_synthetic"] - 1),
            "real_vs_synthetic_pct": 100 * speedup["real_vs_synthetic"],
            "checkpoint_pct": 100 * record["checkpoint_s"] / epoch_s}


def describe(record):
    """One network's figures in a few lines; GFLOP/s against the peak of its precision
    measured after the network's runs (none on GPUs)."""
    ips, over = record["images_per_sec"], overheads(record)
    lines = [f"ResNet-{record['depth']} {record['dtype']}: {record['params'] / 1e6:.3f}M "
             f"parameters, {record['macs'] / 1e6:.1f}M multiply-adds, batch "
             f"{record['batch_size']}, {record['batches']} batches x {record['repeats']} repeats",
             "  training images/s: " + ", ".join(f"{m} {v:.1f}" for m, v in ips.items())]
    speedup = record["speedup"]
    if "project_vs_torch" in speedup:
        lines.append(f"  project (real data) / PyTorch: {speedup['project_vs_torch']:.2f}x; "
                     f"/ PyTorch in its defaults: {speedup['project_vs_torch_defaults']:.2f}x "
                     "(medians over repeats of the ratios within a repeat)")
    if "fusion" in speedup:
        lines.append(f"  BatchNorm-ReLU fusion: bare loop {speedup['fusion']:.3f}x the unfused "
                     "one (likewise)")
    share, peak = "", record.get("peak_gflops")
    if peak:
        share = (f" = {100 * record['gflops'] / peak:.1f}% of the {peak:.1f} GFLOP/s "
                 f"{record['dtype']} peak measured after its runs"
                 + (f" (clock {record['ghz']:.3f} GHz)" if record["ghz"] else ""))
    lines.append(f"  achieved {record['gflops']:.1f} GFLOP/s{share}")
    lines.append(f"  real data at {over['real_vs_synthetic_pct']:.1f}% of synthetic speed; "
                 f"metric bookkeeping {over['bookkeeping_pct']:+.1f}%; checkpoint "
                 f"{record['checkpoint_s']:.3f} s = {over['checkpoint_pct']:.2f}% of a "
                 f"{EPOCH_IMAGES}-image epoch")
    lines.append(f"  inference (exported float32 network): "
                 f"{record['inference_images_per_sec']:.1f} images/s")
    return "\n".join(lines)


def depth_fit(records):
    """Lines fitting seconds per training image against depth, per branch type."""
    lines = []
    for kind, chosen in (("basic", [r for r in records if r["depth"] < 164]),
                         ("all, against multiply-adds", records)):
        if len(chosen) < 2:
            continue
        x = [r["depth"] if kind == "basic" else r["macs"] / 1e6 for r in chosen]
        y = [1e3 / r["images_per_sec"]["synthetic"] for r in chosen]
        slope, intercept, r2 = linear_fit(x, y)
        unit = "layer" if kind == "basic" else "M multiply-adds"
        lines.append(f"  {kind}: ms/image = {intercept:.3f} + {slope:.4f} x {unit} "
                     f"(R^2 = {r2:.4f}); measured " + ", ".join(
                         f"R-{r['depth']} {t:.2f}" for r, t in zip(chosen, y)))
    return lines


# -- peak memory, each network in its own process ----------------------------------------

def rss_mib(field):
    """VmRSS or VmHWM (peak) of this process, in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise OSError(f"/proc/self/status has no {field}")


def memory_child(depth, batch_size, framework, mirror, gpus):
    """Train one batch in this (fresh) process; print its peak memory as JSON."""
    from training.speed import SyntheticIter, peak_memory, synthetic_module
    from training.devices import get_contexts
    from training.module import build_symbol
    baseline = rss_mib("VmRSS")
    if framework == "torch":
        args = synthetic_config(depth, batch_size)
        peer(depth, build_symbol(args), batch_size, torch_device(gpus))(1)
        result = {}
    else:
        args = synthetic_config(depth, batch_size, gpus, mirror=mirror,
                            fusion=framework != "unfused")
        data = SyntheticIter(10, (batch_size, 3, 32, 32), 1)
        contexts = get_contexts(args.gpus, args.cpus)
        mod = synthetic_module(args, build_symbol(args), data, contexts)
        time_bare(mod, data.batch, 1)
        result = peak_memory(contexts) if gpus else {}
    result.update(baseline_rss_mib=baseline, peak_rss_mib=rss_mib("VmHWM"))
    print(json.dumps(result))


def measure_memory(depth, batch_size, framework="project", mirror=False, gpus=None):
    """Peak memory of ``memory_child`` run in a subprocess."""
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-child",
           f"{depth},{batch_size},{framework},{int(mirror)}"] + (["--gpus", gpus] if gpus else [])
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise OSError(f"memory measurement of ResNet-{depth} failed: {tail}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_lines(opts):
    """Peak RSS of every network (unfused too, and its peer), and of the mirror comparison."""
    runs = [(d, opts.batch_size, "project", False) for d in opts.depths]
    if not opts.gpus:
        runs += [(d, opts.batch_size, "unfused", False) for d in opts.depths]
    if not opts.no_peer and not opts.gpus:
        runs += [(d, opts.batch_size, "torch", False) for d in opts.depths]
    if opts.mirror_batch:
        runs += [(opts.mirror_depth, opts.mirror_batch, "project", m) for m in (False, True)]
    lines = []
    for depth, batch, framework, mirror in runs:
        mem = measure_memory(depth, batch, framework, mirror, opts.gpus)
        extra = f", GPU pool {mem['gpu_memory_mib']} MiB" if "gpu_memory_mib" in mem else ""
        lines.append(f"  ResNet-{depth} batch {batch} {framework}"
                     f"{' mirror' if mirror else ''}: peak RSS {mem['peak_rss_mib']:.0f} MiB "
                     f"({mem['peak_rss_mib'] - mem['baseline_rss_mib']:.0f} above the "
                     f"{mem['baseline_rss_mib']:.0f} MiB after imports){extra}")
        print(lines[-1], flush=True)
    return lines


# -- the command --------------------------------------------------------------------------

def parse_dtypes(text, allowed=DTYPES):
    """--dtypes "float32,bfloat16" -> ["float32", "bfloat16"]; a one-line UsageError for a
    precision not in ``allowed``."""
    dtypes = [d.strip() for d in text.split(",") if d.strip()]
    if not dtypes or any(d not in allowed for d in dtypes):
        raise UsageError(f"--dtypes takes {', '.join(allowed)}, got {text}")
    return dtypes


def parse_args(argv=None):
    from common.cli import Parser
    p = Parser(prog="bench_train.py", description=__doc__.splitlines()[0])
    p.add_argument("--depths", type=int_list("--depths", minimum=1),
                   default=[20, 56, 110, 164])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5, help="figures are medians of these")
    p.add_argument("--batches", type=int, help="batches per timed run (default: ceil(80 / depth))")
    p.add_argument("--data-dir", help="CIFAR-10 batches for the real-data step (default: "
                   f"{GENERATED_IMAGES} generated images)")
    p.add_argument("--gpus", help="run on these GPUs, e.g. 0 (default: the CPU)")
    p.add_argument("--dtypes", default="float32", help="float32, float16 (GPUs) and/or "
                   "bfloat16 (CPUs with AVX512_BF16 or AMX; skipped on others)")
    p.add_argument("--no-peer", action="store_true", help="skip PyTorch")
    p.add_argument("--no-memory", action="store_true", help="skip peak-memory runs")
    p.add_argument("--mirror-depth", type=int, default=1001)
    p.add_argument("--mirror-batch", type=int, default=32,
                   help="batch of the mirror comparison (0: skip it)")
    p.add_argument("--max-wait", type=float, default=300, help="seconds, in all, to wait "
                   "for other processes to leave the CPUs idle before timed runs (0: never)")
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--memory-child", help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    opts.dtypes = parse_dtypes(opts.dtypes)
    if "float16" in opts.dtypes and not opts.gpus:
        raise UsageError("--dtypes float16 needs --gpus")
    if "bfloat16" in opts.dtypes and opts.gpus:
        raise UsageError("--dtypes bfloat16 is for CPUs with native bfloat16; on GPUs use "
                         "float16")
    if min(opts.batch_size, opts.repeats, opts.batches or 1) < 1 or opts.mirror_batch < 0:
        raise UsageError("--batch-size, --repeats and --batches must be >= 1")
    if opts.data_dir is not None and not os.path.isdir(opts.data_dir):
        raise UsageError(f"--data-dir {opts.data_dir}: no such folder")
    return opts


def main(argv=None):
    opts = parse_args(argv)
    if opts.memory_child:
        depth, batch, framework, mirror = opts.memory_child.split(",")
        return memory_child(int(depth), int(batch), framework, mirror == "1", opts.gpus)
    opts.wait_quiet = QuietWaiter(opts.max_wait)
    opts.wait_quiet()  # the clock and the peaks are measured on idle cores
    machine = machine_info()
    print("\n".join(header_lines(machine)), flush=True)
    print(f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}; MXNet {mx.__version__}; load "
          f"average {load_average()}", flush=True)
    missing = None if opts.gpus else bfloat16_missing()
    if "bfloat16" in opts.dtypes and missing:
        print(f"bfloat16 skipped: {missing}", flush=True)
        opts.dtypes = [d for d in opts.dtypes if d != "bfloat16"]
    records = []
    with tempfile.TemporaryDirectory(prefix="bench_train-") as work_dir:
        for dtype in opts.dtypes:
            for depth in opts.depths:
                records.append(bench_network(depth, opts, dtype, work_dir))
                print(describe(records[-1]), flush=True)
    if records:
        print(f"time per training image against depth (synthetic data, {records[0]['dtype']}):")
        print("\n".join(depth_fit([r for r in records if r["dtype"] == records[0]["dtype"]])))
    memory = []
    if not opts.no_memory:
        print("peak memory (one training batch, a fresh process each):", flush=True)
        memory = memory_lines(opts)
    print(f"{opts.wait_quiet.summary()}; load average at the end: {load_average()}")
    if opts.json:
        write_json(opts.json, {"machine": machine, "records": records, "memory": memory})
    return 0


if __name__ == "__main__":
    run_main(main, prog="bench_train.py")
