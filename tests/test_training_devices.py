"""Data parallelism over several CPU contexts: the same update as one context; the
contexts of a run, built once from its configuration."""
import numpy as np
import pytest

import train_cifar
from common.cli import UsageError
from common.mx import mx
from training.devices import create_kvstore, get_contexts, sync_params
from training.module import build_symbol, create_module
from training.schedule import StepSchedule


def no_bn_net():
    """conv - relu - pool - fc - softmax: per-sample gradients, so splitting a batch across
    devices and summing must give the gradient of the whole batch."""
    x = mx.sym.Convolution(mx.sym.Variable("data"), num_filter=4, kernel=(3, 3), pad=(1, 1),
                           name="conv")
    x = mx.sym.Pooling(mx.sym.relu(x), global_pool=True, kernel=(1, 1), pool_type="avg")
    x = mx.sym.FullyConnected(mx.sym.flatten(x), num_hidden=10, name="fc")
    return mx.sym.SoftmaxOutput(x, name="softmax")


def train_steps(symbol, contexts, batches, config):
    it = mx.io.NDArrayIter(np.zeros((8, 3, 8, 8)), np.zeros(8), batch_size=8,
                           label_name="softmax_label")
    kv, _, _ = create_kvstore(config.kv_store)
    mod = create_module(config, symbol, it, contexts, kv, StepSchedule(config.lr))
    for batch in batches:
        mod.forward_backward(batch)
        mod.update()
    return sync_params(mod, kv, len(contexts))


def batches(count=3):
    rng = np.random.default_rng(0)
    return [mx.io.DataBatch([mx.nd.array(rng.standard_normal((8, 3, 8, 8)))],
                            [mx.nd.array(rng.integers(0, 10, 8))]) for _ in range(count)]


def test_two_cpu_contexts_give_the_update_of_one():
    config = train_cifar.parse_args(["--benchmark", "--num-layers", "8", "--lr", "0.5"])
    data = batches()
    one, _ = train_steps(no_bn_net(), [mx.cpu(0)], data, config)
    two, _ = train_steps(no_bn_net(), [mx.cpu(0), mx.cpu(1)], data, config)
    start, _ = train_steps(no_bn_net(), [mx.cpu(0)], [], config)
    for name in one:
        assert not np.allclose(one[name].asnumpy(), start[name].asnumpy())  # it did learn
        # the gradient is summed over two halves instead of one batch: rounding only
        np.testing.assert_allclose(two[name].asnumpy(), one[name].asnumpy(), rtol=1e-5,
                                   atol=1e-6)


def test_batchnorm_statistics_are_averaged_over_contexts():
    # With BatchNorm each device normalises its half batch: the results differ from one
    # device, but the devices end with identical parameters and statistics.
    config = train_cifar.parse_args(["--benchmark", "--num-layers", "8"])
    symbol = build_symbol(config)
    rng = np.random.default_rng(1)
    data = [mx.io.DataBatch([mx.nd.array(rng.standard_normal((8, 3, 32, 32)))],
                            [mx.nd.array(rng.integers(0, 10, 8))])]
    it = mx.io.NDArrayIter(data[0].data[0], data[0].label[0], 8, label_name="softmax_label")
    mod = create_module(config, symbol, it, [mx.cpu(0), mx.cpu(1)], "local",
                        StepSchedule(0.1))
    mod.forward_backward(data[0])
    mod.update()
    _, aux = sync_params(mod, "local", 2)
    per_device = mod._exec_group.aux_arrays  # [statistic][device], no public accessor
    for name, (first, second) in zip(symbol.list_auxiliary_states(), per_device):
        np.testing.assert_array_equal(first.asnumpy(), second.asnumpy())
        np.testing.assert_array_equal(first.asnumpy(), aux[name].asnumpy())
    assert any(v.asnumpy().std() > 0 for v in aux.values())


def test_cpus_flag_makes_cpu_contexts():
    config = train_cifar.parse_args(["--benchmark", "--num-layers", "8", "--cpus", "2"])
    assert get_contexts(config.gpus, config.cpus) == [mx.cpu(0), mx.cpu(1)]
    assert config.kv_store == "local"
    assert get_contexts() == [mx.cpu(0)]


def test_gpus_this_build_cannot_see_are_refused_in_one_line():
    with pytest.raises(UsageError, match=r"^--gpus 0,7: this MXNet build sees \d+ GPU"):
        get_contexts((0, 7))


def test_the_loop_builds_the_contexts_once_and_passes_them_down(monkeypatch, tmp_path):
    from training import loop
    calls, seen = [], []

    def counted(*args):
        calls.append(args)
        return get_contexts(*args)
    monkeypatch.setattr(loop, "get_contexts", counted)
    monkeypatch.setattr(loop, "benchmark", lambda config, symbol, contexts: seen.append(contexts))
    monkeypatch.setattr(loop, "fit", lambda config, symbol, contexts, *rest: seen.append(contexts))
    flags = ["--num-layers", "8", "--cpus", "2"]
    loop.train(train_cifar.parse_args(flags + ["--benchmark"]), make_data=None)
    loop.train(train_cifar.parse_args(flags + ["--data-dir", "d", "--output-dir",
                                               str(tmp_path)]),
               make_data=lambda config, parts, index: (None, None, {}))
    assert calls == [((), 2)] * 2
    assert seen == [[mx.cpu(0), mx.cpu(1)]] * 2
