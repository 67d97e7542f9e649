"""Inference speed of an exported network: MXNet against onnxruntime, side by side.

    python3 benchmarks/bench_infer.py --depths 20,56 --batch-sizes 1,32,128

Each CIFAR ResNet (``--unit``/``--shortcut``; random weights, which do not change the
speed) is exported by ``training.export.export_model``, which writes the MXNet files and
the checked ``model.onnx``. Then ``training.classify.Classifier`` runs the MXNet export, and
``training.onnx_export.Session`` the ONNX one with as many threads as MXNet's OpenMP, on
the same normalised batch. Each figure is the median images/s of ``--repeats`` timed runs
of about ``--seconds`` each, after a warm-up batch; both backends alternate within a
repeat, and before each run the benchmark waits (within ``--max-wait`` seconds in all)
for other processes to leave the CPUs idle.
"""
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from benchmarks.bench_train import QuietWaiter, load_average  # noqa: E402
from common.cli import UsageError, int_list, run_main  # noqa: E402
from common.files import write_json  # noqa: E402
from common.mx import mx  # noqa: E402
from training import checkpoint as ckpt  # noqa: E402
from training import onnx_export, rundir  # noqa: E402


def make_export(depth, unit, shortcut, folder):
    """Export folder of a CIFAR ResNet-``depth`` with Xavier weights."""
    import symbols
    from training.export import export_model, inference_symbol
    symbol = symbols.get_symbol(10, depth, (3, 32, 32), unit=unit, shortcut=shortcut)
    mod = mx.mod.Module(inference_symbol(symbol), label_names=None)
    mod.bind([("data", (1, 3, 32, 32))], for_training=False)
    mod.init_params(mx.init.Xavier(magnitude=2))
    arg, aux = mod.get_params()
    ckpt.save_checkpoint(folder, 1, 1, symbol, arg, aux)
    flags = {"num_classes": 10, "num_layers": depth, "unit": unit, "shortcut": shortcut,
             "projection": "B"}
    rundir.write_config(folder, rundir.RunRecord(flags, preprocess=rundir.Preprocess(
        image_shape=(3, 32, 32), resize=32, crop=32, mean=(0.0,) * 3, std=(1.0,) * 3)))
    return export_model(folder)


def images_per_sec(predict, images, seconds, wait):
    """images/s of ``predict(images)`` over a run of about ``seconds``."""
    tic = time.perf_counter()
    predict(images)  # how many batches make ``seconds``
    batches = max(1, round(seconds / max(time.perf_counter() - tic, 1e-6)))
    wait()
    tic = time.perf_counter()
    for _ in range(batches):
        predict(images)
    return batches * len(images) / (time.perf_counter() - tic)


def bench_network(depth, opts, folder):
    """{batch size: {backend: median images/s}} of one network."""
    from training.classify import Classifier
    export = make_export(depth, opts.unit, opts.shortcut, folder)
    session = onnx_export.Session(os.path.join(export, onnx_export.ONNX_FILE),
                                  threads=int(os.environ["OMP_NUM_THREADS"]))
    rng = np.random.default_rng(0)
    figures = {}
    for batch_size in opts.batch_sizes:
        images = rng.standard_normal((batch_size, 3, 32, 32), np.float32)
        backends = {"mxnet": Classifier(export, batch_size=batch_size).probabilities,
                    "onnxruntime": session.probabilities}
        for predict in backends.values():
            predict(images)  # warm-up: allocation, oneDNN primitives, graph optimisation
        speeds = {name: [] for name in backends}
        for _ in range(opts.repeats):
            for name, predict in backends.items():
                speeds[name].append(images_per_sec(predict, images, opts.seconds,
                                                   opts.wait_quiet))
        figures[batch_size] = {name: statistics.median(s) for name, s in speeds.items()}
    return figures


def table(results):
    """Markdown rows: network, batch, MXNet, onnxruntime, their ratio."""
    lines = ["| network | batch | MXNet images/s | onnxruntime images/s | onnxruntime / MXNet |",
             "|---|---|---|---|---|"]
    for depth, figures in results.items():
        for batch_size, speed in figures.items():
            lines.append(f"| R-{depth} | {batch_size} | {speed['mxnet']:,.1f} | "
                         f"{speed['onnxruntime']:,.1f} | "
                         f"{speed['onnxruntime'] / speed['mxnet']:.2f}x |")
    return "\n".join(lines)


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return "unknown CPU"


def parse_args(argv=None):
    from common.cli import Parser
    from symbols import SHORTCUTS, UNITS
    p = Parser(prog="bench_infer.py", description=__doc__.splitlines()[0])
    p.add_argument("--depths", type=int_list("--depths", minimum=1), default=[20, 56])
    p.add_argument("--batch-sizes", type=int_list("--batch-sizes", minimum=1),
                   default=[1, 32, 128])
    p.add_argument("--unit", default="full_preact", choices=list(UNITS))
    p.add_argument("--shortcut", default="identity", choices=list(SHORTCUTS))
    p.add_argument("--repeats", type=int, default=3, help="figures are medians of these")
    p.add_argument("--seconds", type=float, default=1.0, help="length of one timed run")
    p.add_argument("--max-wait", type=float, default=120, help="seconds, in all, to wait "
                   "for other processes to leave the CPUs idle before timed runs (0: never)")
    p.add_argument("--json", help="also write the figures to this file")
    opts = p.parse_args(argv)
    if opts.repeats < 1 or opts.seconds <= 0:
        raise UsageError("--repeats must be >= 1 and --seconds > 0")
    return opts


def main(argv=None):
    opts = parse_args(argv)
    onnx_export.require()
    import onnxruntime
    opts.wait_quiet = QuietWaiter(opts.max_wait)
    threads = os.environ["OMP_NUM_THREADS"]
    print(f"{cpu_model()}; MXNet {mx.__version__} with OMP_NUM_THREADS={threads}; "
          f"onnxruntime {onnxruntime.__version__} with {threads} intra-op threads; "
          f"load average {load_average()}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_infer-") as work_dir:
        for depth in opts.depths:
            results[depth] = bench_network(depth, opts, os.path.join(work_dir, f"r{depth}"))
    print(table(results))
    print(f"{opts.wait_quiet.summary()}; load average at the end: {load_average()}")
    if opts.json:
        write_json(opts.json, {"cpu": cpu_model(), "threads": int(threads), "results": {
            str(d): {str(b): s for b, s in f.items()} for d, f in results.items()}})
    return results


if __name__ == "__main__":
    run_main(main, prog="bench_infer.py")
