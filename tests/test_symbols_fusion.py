"""symbols.fusion: BatchNorm-ReLU pairs fused for CPU training, with the same parameters,
the same numbers, and the plain network in checkpoints."""
import json

import numpy as np
import pytest

import symbols
import train_cifar
from common.mx import mx
from symbols.fusion import (FUSED_OP, can_fuse, fuse_bn_relu, global_pool_as_mean,
                            training_symbol)
from symbols.shortcuts import SHORTCUTS
from symbols.units import UNITS
from training.devices import sync_params
from training.module import build_symbol, create_module
from training.schedule import StepSchedule

CIFAR = (3, 32, 32)

pytestmark = pytest.mark.skipif(not can_fuse([mx.cpu()]),
                                reason="this MXNet build has no MKL-DNN BatchNormWithReLU")


def ops(symbol):
    return [node["op"] for node in json.loads(symbol.tojson())["nodes"]]


def run_executors(nets, is_train, seed=0, batch=4, image_shape=CIFAR):
    """Output, gradients and BatchNorm statistics of each net after one forward (and
    backward when training), all from the same random arguments."""
    rng = np.random.default_rng(seed)
    shapes = {"data": (batch,) + image_shape, "softmax_label": (batch,)}
    execs = [net.simple_bind(mx.cpu(), **shapes) for net in nets]
    for name, arr in execs[0].arg_dict.items():
        value = (rng.integers(0, 10, arr.shape) if name == "softmax_label"
                 else rng.standard_normal(arr.shape).astype(np.float32))
        for e in execs:
            e.arg_dict[name][:] = value
    results = []
    for e in execs:
        e.forward(is_train=is_train)
        if is_train:
            e.backward()
        grads = {k: v.asnumpy() for k, v in e.grad_dict.items()
                 if v is not None and is_train and k != "softmax_label"}
        results.append((e.outputs[0].asnumpy(), grads,
                        {k: v.asnumpy() for k, v in e.aux_dict.items()}))
    return results


@pytest.mark.parametrize("unit", list(UNITS))
def test_only_batchnorm_relu_pairs_feeding_one_convolution_are_fused(unit):
    net = symbols.get_symbol(10, 8, unit=unit, widths=(4, 8, 8))
    fused = fuse_bn_relu(net)
    before, after = ops(net), ops(fused)
    pairs = after.count(FUSED_OP)
    assert pairs > 0
    assert after.count("BatchNorm") + pairs == before.count("BatchNorm")
    assert after.count("Activation") == before.count("Activation") - pairs
    # every BatchNorm-ReLU pair left has a ReLU read by more than one convolution
    # (stage-opening units, head, addition, gates)
    nodes = json.loads(fused.tojson())["nodes"]

    def readers(index):
        return [n["op"] for n in nodes if any(e[0] == index for e in n["inputs"])]

    for i, node in enumerate(nodes):
        if node["op"] == "Activation" and nodes[node["inputs"][0][0]]["op"] == "BatchNorm":
            assert readers(node["inputs"][0][0]) != ["Activation"] or \
                readers(i) != ["Convolution"], node["name"]
    assert fused.list_arguments() == net.list_arguments()
    assert fused.list_auxiliary_states() == net.list_auxiliary_states()
    assert symbols.param_shapes(fused, CIFAR) == symbols.param_shapes(net, CIFAR)
    assert symbols.output_shape(fused, CIFAR, 2) == (2, 10)


def test_a_batchnorm_read_elsewhere_too_is_not_fused():
    x = mx.sym.BatchNorm(mx.sym.var("data"), name="bn")
    net = mx.sym.relu(x) + x
    assert ops(fuse_bn_relu(net)) == ops(net)


def assert_same_training_numbers(net, image_shape=CIFAR):
    plain, fused = run_executors([net, fuse_bn_relu(net)], True, image_shape=image_shape)
    np.testing.assert_allclose(fused[0], plain[0], rtol=1e-6, atol=1e-7)
    assert fused[1].keys() == plain[1].keys() and plain[1]
    for name in plain[1]:
        scale = np.abs(plain[1][name]).max()
        assert scale > 0, name
        np.testing.assert_allclose(fused[1][name], plain[1][name], rtol=0,
                                   atol=1e-6 * scale, err_msg=name)
    for name in plain[2]:  # moving statistics updated alike
        np.testing.assert_allclose(fused[2][name], plain[2][name], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("widths", [(4, 8, 8), (16, 32, 64)])
@pytest.mark.parametrize("shortcut", [s for s in SHORTCUTS if s != "dropout"])
@pytest.mark.parametrize("unit", list(UNITS))
def test_fused_network_trains_with_the_same_numbers(unit, shortcut, widths):
    assert_same_training_numbers(
        symbols.get_symbol(10, 8, unit=unit, shortcut=shortcut, widths=widths))


def test_fused_bottleneck_and_imagenet_nets_train_with_the_same_numbers():
    assert_same_training_numbers(symbols.get_symbol(10, 11, bottleneck=True))
    for unit in ("original", "full_preact"):
        assert_same_training_numbers(
            symbols.get_symbol(5, 18, (3, 64, 64), unit=unit, widths=(8, 16, 16, 32)),
            image_shape=(3, 64, 64))


@pytest.mark.parametrize("image_shape,depth", [(CIFAR, 8), ((3, 64, 64), 18)])
def test_global_pooling_as_a_mean_trains_with_the_same_numbers(image_shape, depth):
    net = symbols.get_symbol(10, depth, image_shape, unit="original",
                             widths=(8, 16, 32) if depth == 8 else (8, 16, 16, 32))
    rewritten = global_pool_as_mean(net)
    assert ops(net).count("Pooling") - ops(rewritten).count("Pooling") == 1
    assert ops(rewritten).count("mean") == 1 and rewritten.list_arguments() == net.list_arguments()
    (out, grads, stats), (out2, grads2, stats2) = run_executors([net, rewritten], True,
                                                                image_shape=image_shape)
    np.testing.assert_allclose(out2, out, rtol=1e-5, atol=1e-6)
    for name in grads:
        np.testing.assert_allclose(grads2[name], grads[name], rtol=1e-4, atol=1e-5,
                                   err_msg=name)
    assert "mean" in ops(training_symbol(net, [mx.cpu()]))


@pytest.mark.parametrize("unit", list(UNITS))
def test_fused_dropout_shortcut_infers_the_same(unit):
    net = symbols.get_symbol(10, 8, unit=unit, shortcut="dropout", widths=(4, 8, 8))
    plain, fused = run_executors([net, fuse_bn_relu(net)], is_train=False)
    np.testing.assert_allclose(fused[0], plain[0], rtol=1e-6, atol=1e-7)


def test_training_modules_fuse_on_cpus_only_and_match_the_unfused_run():
    rng = np.random.default_rng(0)
    data = [mx.io.DataBatch([mx.nd.array(rng.standard_normal((8,) + CIFAR))],
                            [mx.nd.array(rng.integers(0, 10, 8))]) for _ in range(3)]
    it = mx.io.NDArrayIter(data[0].data[0], data[0].label[0], 8, label_name="softmax_label")
    params = []
    for flags in ([], ["--no-fusion"]):
        args = train_cifar.parse_args(["--benchmark", "--num-layers", "8"] + flags)
        symbol = build_symbol(args)
        mod = create_module(args, symbol, it, [mx.cpu()], "local", StepSchedule(args.lr))
        assert (FUSED_OP in ops(mod.symbol)) == (not flags)
        for batch in data:
            mod.forward_backward(batch)
            mod.update()
        params.append(sync_params(mod, "local", 1))
    (arg, aux), (plain_arg, plain_aux) = params
    for name in plain_arg:
        np.testing.assert_allclose(arg[name].asnumpy(), plain_arg[name].asnumpy(),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    for name in plain_aux:
        np.testing.assert_allclose(aux[name].asnumpy(), plain_aux[name].asnumpy(),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    net = symbols.get_symbol(10, 8)
    assert training_symbol(net, [mx.gpu(0)]) is net  # no fused op on GPUs
    assert training_symbol(net, [mx.cpu()], fuse=False) is net
