"""bfloat16 training: the CPU check and its one-line refusal, the converted graph (types,
casts, float32 parameters), Module binding and float32 checkpoints; and, on a CPU with
native bfloat16, training steps, the fusion, resume and export across precisions."""
import dataclasses
import json
import os

import numpy as np
import pytest

import symbols
import train_cifar
from common import cpu
from common.cli import UsageError
from common.mx import mx
from symbols.fusion import fuse_bn_relu
from symbols.precision import bfloat16_graph
from tests.cpuinfo_samples import SAPPHIRE_RAPIDS, ZEN3, ZEN4
from tests.train_support import TINY, run_script
from training import checkpoint as ckpt
from training import rundir
from training.speed import SyntheticIter
from training.module import build_symbol, create_module
from training.schedule import StepSchedule

BF16 = mx.contrib.amp.amp.bfloat16  # MXNet's NumPy type for bfloat16
HERE = cpu.this_cpu()
needs_bf16 = pytest.mark.skipif(
    not HERE.native_bf16,
    reason=f"needs a CPU with AVX512_BF16 or AMX (this one: {HERE.label()}); oneDNN in "
           "MXNet 1.9.1 has no bfloat16 kernels for AVX2")
refuses_bf16 = pytest.mark.skipif(HERE.native_bf16,
                                  reason="this CPU has native bfloat16: nothing is refused")


# -- the CPU ---------------------------------------------------------------------------

@pytest.mark.parametrize("text,model,isa,native", [
    (ZEN3, "AMD EPYC 7B13", ["AVX2", "FMA"], False),
    (ZEN4, "AMD EPYC 9B14", ["AVX2", "FMA", "AVX512F", "AVX512_VNNI", "AVX512_BF16"], True),
    (SAPPHIRE_RAPIDS, "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz",
     ["AVX2", "FMA", "AVX512F", "AVX512_VNNI", "AVX_VNNI", "AVX512_BF16", "AMX_BF16"], True),
])
def test_cpuinfo_gives_model_and_instruction_sets(text, model, isa, native):
    found = cpu.parse_cpuinfo(text)
    assert (found.model, found.isa, found.native_bf16) == (model, isa, native)
    assert cpu.bfloat16_missing(found) is None if native else "AVX512_BF16" in \
        cpu.bfloat16_missing(found)


def test_labels_say_what_the_cpu_lacks():
    assert cpu.parse_cpuinfo(ZEN3).label(2) == \
        "AMD EPYC 7B13, 2 cores, AVX2/FMA, no AVX-512, no native bf16"
    assert cpu.parse_cpuinfo(ZEN4).label() == \
        "AMD EPYC 9B14, AVX2/FMA/AVX512F/AVX512_VNNI/AVX512_BF16"
    assert cpu.parse_cpuinfo("").flags == frozenset()
    assert HERE.model and cpu.physical_cores() == len(cpu.core_cpus()) >= 1


def test_dtype_checks():
    zen3, zen4 = cpu.parse_cpuinfo(ZEN3), cpu.parse_cpuinfo(ZEN4)
    with pytest.raises(UsageError, match=r"--dtype bfloat16: this CPU \(AMD EPYC 7B13.*"
                                         r"needs AVX512_BF16 or AMX_BF16"):
        cpu.check_dtype("bfloat16", cpu=zen3)
    cpu.check_dtype("bfloat16", cpu=zen4)
    cpu.check_dtype("float32", cpu=zen3)
    with pytest.raises(UsageError, match="on GPUs use --dtype float16"):
        cpu.check_dtype("bfloat16", gpus="0", cpu=zen4)
    with pytest.raises(UsageError, match="float16 needs GPU contexts"):
        cpu.check_dtype("float16", cpu=zen4)
    cpu.check_dtype("float16", gpus="0", cpu=zen3)


@refuses_bf16
@pytest.mark.parametrize("command", [
    ["train_cifar.py", "--benchmark", "--num-layers", "8", "--dtype", "bfloat16"],
    ["train_imagenet.py", "--benchmark", "--num-layers", "18", "--dtype", "bfloat16"],
    ["benchmarks/bench_ops.py", "--dtype", "bfloat16"],
    ["-m", "experiments", "table2", "--data-dir", "nowhere", "--out", "nowhere",
     "--dtype", "bfloat16"],
])
def test_bfloat16_is_refused_in_one_line_on_this_cpu(command):
    out = run_script(command, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--dtype bfloat16: this CPU" in lines[0]
    assert "AVX512_BF16 or AMX_BF16" in lines[0] and HERE.model in lines[0]


def test_bfloat16_on_gpus_is_refused():
    out = run_script(["train_cifar.py", "--benchmark", "--num-layers", "8", "--gpus", "0",
                      "--dtype", "bfloat16"])
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "train_cifar.py: error: --dtype bfloat16 is for CPUs with native bfloat16; on GPUs "
        "use --dtype float16"]


@refuses_bf16
def test_benchmark_skips_bfloat16_saying_why(generated_cifar10):
    out = run_script(["benchmarks/bench_train.py", "--dtypes", "bfloat16", "--no-peer",
                      "--no-memory", "--max-wait", "0", "--data-dir", generated_cifar10])
    assert out.returncode == 0, out.stderr
    skipped = [line for line in out.stdout.splitlines() if "skipped" in line]
    assert len(skipped) == 1 and skipped[0].startswith("bfloat16 skipped: this CPU (")
    assert "AVX512_BF16 or AMX_BF16" in skipped[0]
    assert out.stdout.startswith(f"machine: {HERE.model}") and "ResNet-" not in out.stdout


# -- the graph -------------------------------------------------------------------------

def internal_types(net):
    """{internal output name: type} of ``net`` with float32 data and label."""
    internals = net.get_internals()
    _, types, _ = internals.infer_type(data="float32", softmax_label="float32")
    return dict(zip(internals.list_outputs(), types))


def nodes(net):
    return json.loads(net.tojson(remove_amp_cast=False))["nodes"]


@pytest.mark.parametrize("fused", [False, True])
def test_resnet20_converts_with_float32_parameters_and_loss(fused):
    plain = symbols.get_symbol(10, 20)
    net = bfloat16_graph(fuse_bn_relu(plain) if fused else plain)
    assert net.list_arguments() == plain.list_arguments()
    assert net.list_auxiliary_states() == plain.list_auxiliary_states()
    args, outs, aux = net.infer_type(data="float32", softmax_label="float32")
    assert set(args) == set(aux) == set(outs) == {np.float32}
    types = internal_types(net)
    compute = [n["name"] for n in nodes(net) if n["op"] in (
        "Convolution", "BatchNorm", "_contrib_BatchNormWithReLU", "Activation",
        "elemwise_add", "Pooling")]
    assert len(compute) == (21 + 4 + 4 + 15 + 9 + 1 if fused else 21 + 19 + 19 + 9 + 1)
    assert all(types[f"{name}_output"] == BF16 for name in compute)
    assert types["fc_output"] == types["softmax_output"] == np.float32
    casts = sorted(n["name"] for n in nodes(net) if n["op"] == "amp_cast")
    weights = [c for c in casts if c.endswith("_weight_amp_cast_bfloat16")]
    assert len(weights) == 21  # every convolution's weight, cast where it is read
    assert sorted(set(casts) - set(weights)) == ["data_amp_cast_bfloat16",
                                                  "pool1_output_amp_cast_float32"]
    assert net.tojson() != net.tojson(remove_amp_cast=False)  # saved files leave casts out


def variants():
    for unit in symbols.UNITS:
        for shortcut in symbols.SHORTCUTS:
            for projection in symbols.PROJECTIONS:
                try:
                    yield symbols.get_symbol(10, 8, unit=unit, shortcut=shortcut,
                                             projection=projection, widths=(4, 8, 8)), \
                        f"{unit}-{shortcut}-{projection}"
                except ValueError:  # an impossible combination
                    continue


@pytest.mark.parametrize("net,name", list(variants()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_unit_and_shortcut_converts(net, name):
    converted = bfloat16_graph(net)
    args, outs, aux = converted.infer_type(data="float32", softmax_label="float32")
    assert set(args) == set(aux) == set(outs) == {np.float32}, name
    types = internal_types(converted)
    convs = [n["name"] for n in nodes(converted) if n["op"] == "Convolution"]
    for conv in convs:  # the gates stay float32 (see symbols.precision)
        want = np.float32 if conv.endswith("_gate") else BF16
        assert types[f"{conv}_output"] == want, conv


@pytest.mark.parametrize("depth", [18, 50])
def test_imagenet_nets_convert(depth):
    net = bfloat16_graph(symbols.get_symbol(1000, depth, (3, 224, 224)))
    types = internal_types(net)
    assert types["conv0_output"] == types["pool0_output"] == BF16
    assert types["softmax_output"] == np.float32


# -- the Module and its checkpoints ------------------------------------------------------

def tiny_args(tmp_path, dtype="bfloat16", extra=()):
    """train_cifar's configuration of a ResNet-8 run; ``dtype`` set after the flags' CPU
    check."""
    config = train_cifar.parse_args(TINY + ["--data-dir", str(tmp_path), "--output-dir",
                                            str(tmp_path / "run")] + list(extra))
    return dataclasses.replace(config, dtype=dtype)


def tiny_module(args, batch=4):
    data = SyntheticIter(10, (batch, 3, 32, 32), 2)
    symbol = build_symbol(args)
    return create_module(args, symbol, data, [mx.cpu()], "local", StepSchedule(args.lr)), \
        symbol, data


def test_network_and_hash_are_those_of_float32(tmp_path):
    bf16, f32 = build_symbol(tiny_args(tmp_path)), build_symbol(tiny_args(tmp_path, "float32"))
    assert bf16.tojson() == f32.tojson()
    assert ckpt.symbol_hash(bf16) == ckpt.symbol_hash(f32)


def test_module_binds_with_float32_parameters_and_checkpoints_load_into_float32(tmp_path):
    mod, symbol, data = tiny_module(tiny_args(tmp_path))
    assert any(n["op"] == "amp_cast" for n in nodes(mod.symbol))  # it trains the bf16 graph
    arg, aux = mod.get_params()
    assert {v.dtype for v in arg.values()} == {v.dtype for v in aux.values()} == {np.float32}
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    ckpt.save_checkpoint(run_dir, 1, 2, symbol, arg, aux, mod.save_optimizer_states)
    manifest = rundir.find_checkpoint(run_dir)
    loaded, loaded_aux = ckpt.load_params(run_dir, manifest)
    assert {v.dtype for v in loaded.values()} == {np.float32}
    float32_mod, _, _ = tiny_module(tiny_args(tmp_path, "float32"))
    float32_mod.set_params(loaded, loaded_aux)
    float32_mod.load_optimizer_states(os.path.join(run_dir, manifest["files"]["states"]))
    got, _ = float32_mod.get_params()
    for name, value in arg.items():
        np.testing.assert_array_equal(got[name].asnumpy(), value.asnumpy())


# -- training, where the CPU runs bfloat16 ----------------------------------------------

def train_steps(mod, data, steps):
    losses = []
    batch = data.batch
    for _ in range(steps):
        mod.forward_backward(batch)
        mod.update()
        p = mod.get_outputs()[0].asnumpy()
        labels = batch.label[0].asnumpy().astype(int)
        losses.append(float(-np.log(p[np.arange(len(labels)), labels] + 1e-12).mean()))
    return losses


@needs_bf16
def test_bfloat16_steps_lower_the_loss_with_float32_weights(tmp_path):
    mod, _, data = tiny_module(tiny_args(tmp_path), batch=16)
    losses = train_steps(mod, data, 10)
    assert np.isfinite(losses).all() and losses[-1] < 0.8 * losses[0]
    arg, _ = mod.get_params()
    assert {v.dtype for v in arg.values()} == {np.float32}


@needs_bf16
def test_bfloat16_follows_float32_and_the_fusion_keeps_it(tmp_path):
    # Same initial weights (the seed), same batch: the first step's outputs in bf16 stay
    # near float32's (bf16 keeps 8 bits of mantissa), fused or not.
    outputs = {}
    for dtype, extra in (("float32", []), ("bfloat16", []), ("bfloat16", ["--no-fusion"])):
        mod, _, data = tiny_module(tiny_args(tmp_path, dtype, extra), batch=8)
        mod.forward(data.batch, is_train=True)
        outputs[(dtype, bool(extra))] = mod.get_outputs()[0].asnumpy()
    want = outputs[("float32", False)]
    for key in (("bfloat16", False), ("bfloat16", True)):
        np.testing.assert_allclose(outputs[key], want, atol=0.05)
    np.testing.assert_allclose(outputs[("bfloat16", False)], outputs[("bfloat16", True)],
                               atol=0.02)


@needs_bf16
def test_train_in_bfloat16_resume_in_float32_and_export(generated_cifar10, tmp_path):
    run = str(tmp_path / "run")
    common = TINY + ["--data-dir", generated_cifar10, "--output-dir", run]
    out = run_script(["train_cifar.py", "--dtype", "bfloat16", "--num-epochs", "1"] + common,
                     timeout=600)
    assert out.returncode == 0, out.stderr
    out = run_script(["train_cifar.py", "--num-epochs", "2", "--resume", "--export"] + common,
                     timeout=600)
    assert out.returncode == 0, out.stderr
    records = rundir.read_metrics(run)
    assert [r["epoch"] for r in records] == [1, 2]
    assert os.path.isfile(os.path.join(run, "export", "model-0000.params"))


@needs_bf16
def test_onednn_runs_the_convolutions_in_bfloat16():
    env = dict(os.environ, DNNL_VERBOSE="1")
    out = run_script(["train_cifar.py", "--benchmark", "--num-layers", "8", "--batch-size",
                      "8", "--benchmark-batches", "1", "--dtype", "bfloat16"], env=env,
                     timeout=300)
    assert out.returncode == 0, out.stderr
    convs = [line for line in out.stdout.splitlines()
             if line.startswith("dnnl_verbose,exec,cpu,convolution")]
    assert convs and all("src_bf16" in line for line in convs)
