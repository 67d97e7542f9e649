"""Data parallelism over several CPU contexts: the same update as one context."""
import numpy as np

import train_cifar
from common.mx import mx
from training.devices import create_kvstore, get_contexts, kvstore_type, sync_params
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


def train_steps(symbol, contexts, batches, args):
    it = mx.io.NDArrayIter(np.zeros((8, 3, 8, 8)), np.zeros(8), batch_size=8,
                           label_name="softmax_label")
    kv, _, _ = create_kvstore(args)
    mod = create_module(args, symbol, it, contexts, kv, StepSchedule(args.lr))
    for batch in batches:
        mod.forward_backward(batch)
        mod.update()
    return sync_params(mod, kv, len(contexts))


def batches(count=3):
    rng = np.random.default_rng(0)
    return [mx.io.DataBatch([mx.nd.array(rng.standard_normal((8, 3, 8, 8)))],
                            [mx.nd.array(rng.integers(0, 10, 8))]) for _ in range(count)]


def test_two_cpu_contexts_give_the_update_of_one():
    args = train_cifar.parse_args(["--benchmark", "--num-layers", "8", "--lr", "0.5"])
    data = batches()
    one, _ = train_steps(no_bn_net(), [mx.cpu(0)], data, args)
    two, _ = train_steps(no_bn_net(), [mx.cpu(0), mx.cpu(1)], data, args)
    start, _ = train_steps(no_bn_net(), [mx.cpu(0)], [], args)
    for name in one:
        assert not np.allclose(one[name].asnumpy(), start[name].asnumpy())  # it did learn
        # the gradient is summed over two halves instead of one batch: rounding only
        np.testing.assert_allclose(two[name].asnumpy(), one[name].asnumpy(), rtol=1e-5,
                                   atol=1e-6)


def test_batchnorm_statistics_are_averaged_over_contexts():
    # With BatchNorm each device normalises its half batch: the results differ from one
    # device, but the devices end with identical parameters and statistics.
    args = train_cifar.parse_args(["--benchmark", "--num-layers", "8"])
    symbol = build_symbol(args)
    rng = np.random.default_rng(1)
    data = [mx.io.DataBatch([mx.nd.array(rng.standard_normal((8, 3, 32, 32)))],
                            [mx.nd.array(rng.integers(0, 10, 8))])]
    it = mx.io.NDArrayIter(data[0].data[0], data[0].label[0], 8, label_name="softmax_label")
    mod = create_module(args, symbol, it, [mx.cpu(0), mx.cpu(1)], "local",
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
    args = train_cifar.parse_args(["--benchmark", "--num-layers", "8", "--cpus", "2"])
    assert get_contexts(args) == [mx.cpu(0), mx.cpu(1)]
    assert kvstore_type(args) == "local"
