"""The benchmark's pieces: the PyTorch peer is our network (in both precisions), the fits,
the memory probe, and a tiny end-to-end run."""
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT

torch = pytest.importorskip("torch", reason="PyTorch (the benchmark's peer) not installed")

import symbols  # noqa: E402
from benchmarks import bench_train  # noqa: E402
from benchmarks.peer_torch import PreActResNet, make_trainer, num_params, param_shapes  # noqa: E402
from common.mx import mx  # noqa: E402


@pytest.mark.parametrize("depth", [20, 164])
def test_peer_has_our_parameter_shapes(depth):
    ours = symbols.get_symbol(10, depth, (3, 32, 32))
    peer = PreActResNet(depth)
    assert num_params(peer) == symbols.num_params(ours, (3, 32, 32))
    assert param_shapes(peer) == sorted(symbols.param_shapes(ours, (3, 32, 32)).values())


def mxnet_probabilities(symbol, params, aux, x, is_train):
    mod = mx.mod.Module(symbol)
    mod.bind([("data", x.shape)], [("softmax_label", (len(x),))], for_training=is_train)
    mod.set_params(params, aux)
    mod.forward(mx.io.DataBatch([mx.nd.array(x)], [mx.nd.zeros(len(x))]), is_train=is_train)
    return mod.get_outputs()[0].asnumpy()


@pytest.mark.parametrize("depth,bottleneck", [(8, False), (11, True)])
def test_peer_computes_what_our_network_computes(depth, bottleneck):
    # With our weights copied in order, the peer gives the same probabilities, with
    # moving statistics (inference) and with batch statistics (training).
    symbol = symbols.get_symbol(10, depth, (3, 32, 32), bottleneck=bottleneck)
    peer = PreActResNet(depth, bottleneck=bottleneck)
    rng = np.random.default_rng(0)
    names = [n for n in symbol.list_arguments() if n not in ("data", "softmax_label")]
    params, aux = {}, {}
    for name, p in zip(names, peer.parameters(), strict=True):
        params[name] = mx.nd.array(rng.normal(0.5, 0.3, tuple(p.shape)))
        p.data = torch.from_numpy(params[name].asnumpy())
    buffers = [b for n, b in peer.named_buffers() if "running" in n]
    for name, b in zip(symbol.list_auxiliary_states(), buffers, strict=True):
        aux[name] = mx.nd.array(rng.uniform(0.5, 1.5, tuple(b.shape)))
        b.data = torch.from_numpy(aux[name].asnumpy())
    x = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
    for is_train in (False, True):
        peer.train(is_train)
        with torch.no_grad():
            want = torch.softmax(peer(torch.from_numpy(x)), 1).numpy()
        got = mxnet_probabilities(symbol, params, aux, x, is_train)
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_peer_trainer_lowers_the_loss(precision):
    # bfloat16: under CPU autocast (PyTorch runs it on any x86-64 CPU, slowly without
    # native bf16); the weights and the loss stay float32.
    torch.manual_seed(0)
    model = PreActResNet(8).to(memory_format=torch.channels_last)
    step = make_trainer(model, lr=0.1, precision=precision, fused=True)
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    losses = [step(x, y)[0] for _ in range(10)]
    assert {loss.dtype for loss in losses} == {p.dtype for p in model.parameters()} == \
        {torch.float32}
    assert float(losses[-1]) < 0.8 * float(losses[0])
    with pytest.raises(ValueError, match="precision must be one of"):
        make_trainer(model, precision="int8")


def peer_trained(steps, layout, fused):
    """The parameters of the peer ResNet-8 after ``steps`` steps on one batch of 16."""
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 3, 32, 32, generator=gen), torch.randint(0, 10, (16,), generator=gen)
    torch.manual_seed(0)
    model = PreActResNet(8).to(memory_format=layout)
    step = make_trainer(model, lr=0.1, fused=fused)
    for _ in range(steps):
        step(x.contiguous(memory_format=layout), y)
    return [p.detach().clone() for p in model.parameters()]


def test_peer_speed_settings_keep_the_arithmetic():
    # The benchmark's peer trains channels-last with the fused SGD: that changes how
    # PyTorch computes, not what. The fused SGD is checked over three Nesterov steps; the
    # layout over one, since its rounding differences grow from step to step.
    plain = torch.contiguous_format
    for a, b in zip(peer_trained(3, plain, False), peer_trained(3, plain, True), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)
    fast = peer_trained(1, torch.channels_last, True)
    for a, b in zip(peer_trained(1, plain, False), fast, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_training_flops_and_linear_fit():
    macs = symbols.count_macs(symbols.get_symbol(10, 20, (3, 32, 32)), (3, 32, 32))
    assert bench_train.training_gflop(macs) == pytest.approx(macs * 6 / 1e9)
    slope, intercept, r2 = bench_train.linear_fit([20, 56, 110], [41, 113, 221])  # 2x + 1
    assert (slope, intercept, r2) == pytest.approx((2.0, 1.0, 1.0))
    assert bench_train.linear_fit([1, 2, 3], [1, 3, 2])[2] < 0.5


def test_quiet_waiter_keeps_to_its_budget():
    assert 0.0 <= bench_train.cpu_busy(0.05) <= 1.0
    wait = bench_train.QuietWaiter(budget_s=0.0, threshold=-1.0)  # never idle enough
    wait()
    wait()
    assert (wait.runs, wait.busy_runs) == (2, 2) and wait.waited_s < 2
    assert wait.summary().startswith("0 of 2 timed runs started on an idle machine")


def test_memory_probe_sees_mirroring_and_batch_size():
    small = bench_train.measure_memory(8, 4)
    big = bench_train.measure_memory(8, 64)
    mirrored = bench_train.measure_memory(8, 64, mirror=True)
    assert 0 < small["baseline_rss_mib"] < small["peak_rss_mib"] < big["peak_rss_mib"]
    assert mirrored["peak_rss_mib"] > mirrored["baseline_rss_mib"]


def test_tiny_benchmark_prints_every_figure(generated_cifar10):
    out = subprocess.run([sys.executable, "benchmarks/bench_train.py", "--depths", "8,14",
                          "--batch-size", "8", "--repeats", "2", "--batches", "1",
                          "--no-memory", "--max-wait", "0", "--data-dir", generated_cifar10],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("machine: ") and "float32 peak:" in text
    assert text.count("training images/s: real") == 2
    assert "timed runs started on an idle machine" in text
    for figure in ("synthetic", "bare", "unfused", "torch", "torch_defaults", "project (real data) / PyTorch",
                   "/ PyTorch in its defaults",
                   "BatchNorm-ReLU fusion: bare loop",
                   "GFLOP/s float32 peak measured after its runs", "metric bookkeeping",
                   "inference (exported float32 network)", "ms/image ="):
        assert figure in text


def test_bad_flags_give_one_line_errors():
    out = subprocess.run([sys.executable, "benchmarks/bench_train.py", "--dtypes", "float16"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip() == "bench_train.py: error: --dtypes float16 needs --gpus"
    out = subprocess.run([sys.executable, "benchmarks/bench_train.py", "--dtypes",
                          "bfloat16", "--gpus", "0"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip() == ("bench_train.py: error: --dtypes bfloat16 is for CPUs with "
                                  "native bfloat16; on GPUs use float16")


def test_the_real_data_step_reads_generated_images_without_a_data_dir(generated_cifar10):
    from benchmarks.bench_train import GENERATED_IMAGES, cifar_images
    images, labels = cifar_images(None)
    assert images.shape == (GENERATED_IMAGES, 3, 32, 32) and images.dtype == np.uint8
    assert sorted(set(labels.tolist())) == list(range(10)) and images.std() > 20
    files, _ = cifar_images(generated_cifar10)
    assert files.shape == (200, 3, 32, 32)  # 5 files of 40
