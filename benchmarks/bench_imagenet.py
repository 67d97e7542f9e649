"""Training speed of the ImageNet ResNets at 224 pixels on this machine, against PyTorch.

    python3 benchmarks/bench_imagenet.py --depths 18,50 --batch-size 32 --repeats 5
    python3 benchmarks/bench_imagenet.py --dtypes float32,bfloat16      # a CPU with native bf16

For every depth and precision, the bare training step (forward, backward, update; one
fixed synthetic batch) of the 2015 paper's network as ``train_imagenet.py`` trains it
(original units, projection B, 1000 classes, SGD with momentum 0.9 and weight decay
1e-4, the CPU rewrites of ``symbols.fusion``), against torchvision's ResNet of the same
depth, the same network layer for layer, in PyTorch's fastest CPU settings found for the
CIFAR nets (channels-last, the fused SGD with the same momentum and weight decay;
bfloat16 through ``torch.autocast``). The two alternate within each repeat; speeds are
medians of the repeats, the ratio the median of the ratios within a repeat. PyTorch and
torchvision are needed (``pip install torch torchvision``).
"""
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from common.cli import Parser, UsageError, int_list, run_main  # noqa: E402
from benchmarks.bench_train import parse_dtypes  # noqa: E402
from common.cpu import check_dtype, physical_cores, this_cpu  # noqa: E402

IMAGE = (3, 224, 224)
CLASSES = 1000


def project_step(depth, batch_size, dtype):
    """``run(batches) -> seconds`` of the project's training step, and its parameter count."""
    import symbols
    import train_imagenet
    from benchmarks.bench_train import time_bare
    from training.speed import SyntheticIter, synthetic_module
    from training.devices import get_contexts
    from training.module import build_symbol
    config = train_imagenet.parse_args(
        ["--benchmark", "--num-layers", str(depth), "--unit", "original", "--projection", "B",
         "--batch-size", str(batch_size), "--dtype", dtype])
    symbol = build_symbol(config)
    data = SyntheticIter(CLASSES, (batch_size,) + IMAGE, 1)
    mod = synthetic_module(config, symbol, data, get_contexts(config.gpus, config.cpus))
    return (lambda batches: time_bare(mod, data.batch, batches)), \
        symbols.num_params(symbol, IMAGE)


def torch_step(depth, batch_size, dtype):
    """``run(batches) -> seconds`` of torchvision's ResNet's training step, and its
    parameter count."""
    from benchmarks.bench_train import torch_device
    from benchmarks.peer_torch import make_trainer
    try:
        import torch
        import torchvision
    except Exception as err:  # a missing package, or a torchvision built for another torch
        raise UsageError(f"PyTorch with torchvision is needed ({err})") from None
    device = torch_device(None)
    model = getattr(torchvision.models, f"resnet{depth}")(num_classes=CLASSES)
    model = model.to(device, memory_format=torch.channels_last)
    step = make_trainer(model, lr=0.1, precision=dtype, fused=True, nesterov=False)
    gen = torch.Generator().manual_seed(0)
    data = torch.randn((batch_size,) + IMAGE, generator=gen).contiguous(
        memory_format=torch.channels_last)
    label = torch.randint(0, CLASSES, (batch_size,), generator=gen)

    def run(batches):
        tic = time.perf_counter()
        for _ in range(batches):
            loss, _ = step(data, label)
        float(loss)
        return time.perf_counter() - tic
    return run, sum(p.numel() for p in model.parameters())


def bench(depth, dtype, opts):
    """The lines of one network: images/s of both, their ratio, their parameters."""
    runs = {}
    runs["project"], ours = project_step(depth, opts.batch_size, dtype)
    runs["torch"], theirs = torch_step(depth, opts.batch_size, dtype)
    if ours != theirs:
        raise AssertionError(f"ResNet-{depth}: {ours:,} parameters here, {theirs:,} in "
                             "torchvision's")
    for run in runs.values():
        run(1)  # memory plan, primitives, caches
    speed = {name: [] for name in runs}
    for _ in range(opts.repeats):
        for name, run in runs.items():
            speed[name].append(opts.batches * opts.batch_size / run(opts.batches))
    ratio = statistics.median(p / t for p, t in zip(speed["project"], speed["torch"]))
    return [f"ResNet-{depth}, {dtype}, 224x224, batch {opts.batch_size}, {ours:,} parameters: "
            f"project {statistics.median(speed['project']):.1f} images/s, torchvision "
            f"{statistics.median(speed['torch']):.1f} images/s; project / PyTorch {ratio:.2f}x"]


def parse_args(argv=None):
    p = Parser(prog="bench_imagenet.py", description=__doc__.splitlines()[0])
    p.add_argument("--depths", type=int_list("--depths", minimum=18), default=[18, 50])
    p.add_argument("--dtypes", default="float32", help="float32 and/or bfloat16")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--batches", type=int, default=2, help="steps a timed run")
    p.add_argument("--repeats", type=int, default=5)
    return p.parse_args(argv)


def main(argv=None):
    opts = parse_args(argv)
    dtypes = parse_dtypes(opts.dtypes, ("float32", "bfloat16"))
    for dtype in dtypes:
        check_dtype(dtype, ())
    import common.mx  # noqa: F401  (sets OMP_NUM_THREADS where it is not set)
    print(f"machine: {this_cpu().label(physical_cores())}; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    for dtype in dtypes:
        for depth in opts.depths:
            print("\n".join(bench(depth, dtype, opts)), flush=True)
    return 0


if __name__ == "__main__":
    run_main(main)
