"""The CPU graph rewrites of ``symbols.fusion``, each priced alone against the one before.

    python3 benchmarks/bench_rewrites.py --depths 20,56 --dtypes float32,bfloat16

For every network and precision, the bare training step (``forward_backward`` + ``update``
of the project's Module, batch 128, one fixed synthetic batch) of the same network built
three ways: as built (``none``), with BatchNorm-ReLU fused (``fusion``), and with the
global pooling as a mean too (``fusion+mean``, what training runs). The three alternate
within each repeat; each ratio is the median of the ratios within a repeat.
"""
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from common.cli import Parser, int_list, run_main  # noqa: E402
from benchmarks.bench_train import parse_dtypes  # noqa: E402
from common.cpu import check_dtype, physical_cores, this_cpu  # noqa: E402

# name -> the rewrites of symbols.fusion applied, in order
STEPS = (("none", ()), ("fusion", ("fuse_bn_relu",)),
         ("fusion+mean", ("fuse_bn_relu", "global_pool_as_mean")))


def modules(depth, batch_size, dtype):
    """{step name: Module} of the network of ``depth``, and the batch to time them on."""
    from benchmarks.bench_train import synthetic_config
    from symbols import fusion
    from training import module
    from training.speed import SyntheticIter, synthetic_module
    from training.devices import get_contexts
    config = synthetic_config(depth, batch_size, dtype=dtype)
    symbol = module.build_symbol(config)
    data = SyntheticIter(10, (batch_size, 3, 32, 32), 1)
    contexts = get_contexts(config.gpus, config.cpus)
    built = {}
    plain = module.training_symbol
    try:
        for name, rewrites in STEPS:
            def rewrite(net, ctx, fuse=True, rewrites=rewrites):
                for step in rewrites:
                    net = getattr(fusion, step)(net)
                return net
            module.training_symbol = rewrite
            built[name] = synthetic_module(config, symbol, data, contexts)
    finally:
        module.training_symbol = plain
    return built, data.batch


def bench(depth, dtype, opts):
    """Median ms a step of each way, and each way's speed over the one before it."""
    from benchmarks.bench_train import time_bare
    built, batch = modules(depth, opts.batch_size, dtype)
    for mod in built.values():
        time_bare(mod, batch, 2)
    seconds = {name: [] for name in built}
    for _ in range(opts.repeats):
        for name, mod in built.items():
            seconds[name].append(time_bare(mod, batch, opts.batches) / opts.batches)
    names = list(built)
    lines = [f"ResNet-{depth}, {dtype}, batch {opts.batch_size}: "
             + ", ".join(f"{n} {1000 * statistics.median(seconds[n]):.1f} ms" for n in names)]
    for before, after in zip(names, names[1:]):
        ratio = statistics.median(b / a for b, a in zip(seconds[before], seconds[after]))
        lines.append(f"  {after} over {before}: {ratio:.2f}x")
    return lines


def parse_args(argv=None):
    p = Parser(prog="bench_rewrites.py", description=__doc__.splitlines()[0])
    p.add_argument("--depths", type=int_list("--depths", minimum=8), default=[20, 56])
    p.add_argument("--dtypes", default="float32", help="float32 and/or bfloat16")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--batches", type=int, default=5, help="steps a timed run")
    p.add_argument("--repeats", type=int, default=5)
    return p.parse_args(argv)


def main(argv=None):
    opts = parse_args(argv)
    dtypes = parse_dtypes(opts.dtypes, ("float32", "bfloat16"))
    for dtype in dtypes:
        check_dtype(dtype, ())
    print(f"machine: {this_cpu().label(physical_cores())}")
    for dtype in dtypes:
        for depth in opts.depths:
            print("\n".join(bench(depth, dtype, opts)), flush=True)
    return 0


if __name__ == "__main__":
    run_main(main)
