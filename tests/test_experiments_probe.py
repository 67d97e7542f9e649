"""The gradient-flow probe (experiments/probe.py) on deep, narrow CIFAR nets."""
import math
import re

import matplotlib.image
import numpy as np
import pytest

import symbols
from common.cli import run_main
from common.mx import mx
from experiments import probe
from training.checkpoint import read_params

WIDTHS = (4, 8, 16)  # narrow, so a ResNet-56 runs in well under a second


def net(depth, unit="full_preact", shortcut="identity", **kwargs):
    return symbols.get_symbol(10, depth, (3, 32, 32), unit=unit, shortcut=shortcut,
                              widths=WIDTHS, probe=True, **kwargs)


@pytest.fixture(scope="module")
def batch():
    return probe.random_batch(8, 10, seed=0)


def test_result_lists_every_unit_in_order(batch):
    result = probe.gradient_flow(net(20), *batch)
    assert result["units"] == [f"stage{s}_unit{u}" for s in (1, 2, 3) for u in (1, 2, 3)]
    for key in ("grad_norm", "signal_norm"):
        assert len(result[key]) == 9
        assert all(math.isfinite(v) and v > 0 for v in result[key])
    assert probe.gradient_flow(net(20), *batch) == result  # seeded: reproducible
    assert probe.gradient_flow(net(20), *batch, seed=1) != result


def bind(symbol, arg, aux, data, label):
    """An executor of ``symbol`` on one batch with the given parameters, probes at zero."""
    exe = symbol.simple_bind(mx.cpu(), data=data.shape, softmax_label=label.shape)
    for name, array in {**arg, **aux}.items():
        (exe.arg_dict if name in exe.arg_dict else exe.aux_dict)[name][:] = array
    for name in symbol.list_arguments():
        if name.endswith("_probe"):
            exe.arg_dict[name][:] = 0
    exe.arg_dict["data"][:] = data
    exe.arg_dict["softmax_label"][:] = label
    return exe


def test_grad_norm_is_d_loss_d_x_by_finite_differences(batch):
    """Moving x_l by eps along the measured gradient changes the summed cross-entropy
    by eps times the gradient's norm."""
    symbol, (data, label) = net(20), batch
    arg, aux = probe.init_params(symbol, data.shape, seed=0)
    result = probe.gradient_flow(symbol, data, label, arg, aux)
    exe = bind(symbol, arg, aux, data, label)
    exe.forward(is_train=True)
    exe.backward()
    for unit in ("stage1_unit2", "stage2_unit1", "stage3_unit3"):
        grad = exe.grad_dict[f"{unit}_probe"].asnumpy()
        norm = float(np.linalg.norm(grad))
        assert result["grad_norm"][result["units"].index(unit)] == pytest.approx(norm, rel=1e-4)

        def loss(eps):
            fresh = bind(symbol, arg, aux, data, label)
            fresh.arg_dict[f"{unit}_probe"][:] = eps * grad / norm
            p = fresh.forward(is_train=True)[0].asnumpy().astype(np.float64)
            return -np.log(p[np.arange(len(label)), label.astype(int)]).sum()

        eps = 1e-2
        assert (loss(eps) - loss(-eps)) / (2 * eps) == pytest.approx(norm, rel=0.03)


def pairs_through_plain_shortcuts(units):
    """Indices (l, l+1) whose unit l has a plain shortcut (not the stride-2 projection
    that opens stages 2 and 3), so that x_{l+1} = lambda x_l + F(x_l)."""
    return [(i, i + 1) for i, u in enumerate(units[:-1])
            if not re.match(r"stage[23]_unit1$", u)]


@pytest.mark.parametrize("unit, shortcut, params, lam", [
    ("full_preact", "identity", {}, 1.0),
    ("full_preact", "constant_scaling", {}, 0.5),
    ("full_preact", "constant_scaling", {"scale": 0.8}, 0.8),
])
def test_shortcut_term_of_eqn5_and_eqn8_exactly(batch, unit, shortcut, params, lam):
    """With F = 0 (every unit's last conv zeroed: the paper's 'arbitrarily small weights')
    only the shortcut term is left: dE/dx_l = lambda^(L-l) dE/dx_L (Eqn. 8; Eqn. 5 with
    lambda = 1), and x_{l+1} = lambda x_l, along every plain shortcut. (Not for the
    original unit: its ReLU after the addition zeroes part of the gradient.)"""
    symbol = net(32, unit, shortcut, **params)
    arg, aux = probe.init_params(symbol, batch[0].shape, seed=0)
    for name in arg:
        if re.match(r"stage\d+_unit\d+_conv2_weight$", name):
            arg[name][:] = 0
    result = probe.gradient_flow(symbol, *batch, arg, aux)
    grad, signal = np.array(result["grad_norm"]), np.array(result["signal_norm"])
    for l, nxt in pairs_through_plain_shortcuts(result["units"]):
        assert grad[l] == pytest.approx(lam * grad[nxt], rel=1e-4)
        assert signal[nxt] == pytest.approx(lam * signal[l], rel=1e-4)
    stage1 = slice(0, 5)  # 5 units of stage 1, all with plain shortcuts
    assert probe.log_slope(grad[stage1]) == pytest.approx(-math.log(lam), abs=1e-4)
    assert probe.log_slope(signal[stage1]) == pytest.approx(math.log(lam), abs=1e-4)


def test_xavier_init_identity_nearly_flat_constant_scaling_not(batch):
    """At initialisation, with BN in training mode, the weight layers carry most of the
    gradient. Identity shortcuts keep it nearly flat: it grows mildly toward the input
    (BN's gradient growth, about 1.1x per unit at this depth), never vanishing. With
    constant scaling the shortcut term lambda^(L-l) dies out, so what reaches the lower
    units is what the weight layers pass on, and it grows exponentially toward the input
    (about 1.3x per unit) instead of keeping its scale."""
    identity = probe.gradient_flow(net(56), *batch)
    scaled = probe.gradient_flow(net(56, shortcut="constant_scaling"), *batch)
    flat, steep = probe.log_slope(identity["grad_norm"]), probe.log_slope(scaled["grad_norm"])
    assert -0.2 < flat < 0
    assert steep < -0.2 and steep < flat - 0.1
    # identity: the signal grows along the stages (x_L = x_l + sum F); scaling holds it down
    assert probe.log_slope(identity["signal_norm"][:9]) > 0.05
    assert probe.log_slope(scaled["signal_norm"][:9]) < 0.02


def test_load_params_from_a_saved_checkpoint(batch, tmp_path):
    symbol = net(20)
    arg, aux = probe.init_params(symbol, batch[0].shape, seed=3)
    plain = symbols.get_symbol(10, 20, (3, 32, 32), widths=WIDTHS)
    mx.model.save_checkpoint(str(tmp_path / "r20"), 7, plain, arg, aux)
    loaded = read_params(str(tmp_path / "r20-0007.params"))
    assert sorted(loaded[0]) == sorted(arg) and sorted(loaded[1]) == sorted(aux)
    assert probe.gradient_flow(symbol, *batch, *loaded) == \
        probe.gradient_flow(symbol, *batch, seed=3)
    with pytest.raises(ValueError, match="arg parameters missing.*fc_weight"):
        probe.gradient_flow(symbol, *batch, {k: v for k, v in arg.items() if k != "fc_weight"})
    (tmp_path / "bad.params").write_bytes(b"not a params file")
    with pytest.raises(ValueError, match="bad.params is unreadable"):
        read_params(str(tmp_path / "bad.params"))


def test_plot_gradient_flow_writes_png_and_pdf(batch, tmp_path):
    results = {"a": probe.gradient_flow(net(20), *batch),
               "b": probe.gradient_flow(net(20, shortcut="constant_scaling"), *batch)}
    png, pdf = probe.plot_gradient_flow(results, str(tmp_path / "flow"))
    assert matplotlib.image.imread(png).shape[:2] == (340, 800)
    with open(pdf, "rb") as f:
        assert f.read(5) == b"%PDF-"


def test_parse_variants_with_shortcut_settings():
    assert probe.parse_variants("original:identity, full_preact:constant_scaling:scale=0.8:"
                                "scale_residual=False") == [
        ("original", "identity", {}),
        ("full_preact", "constant_scaling", {"scale": 0.8, "scale_residual": False})]


def test_cli_on_cifar_with_checkpoint(generated_cifar10, tmp_path, capsys):
    symbol = symbols.get_symbol(10, 20, (3, 32, 32), widths=WIDTHS)
    arg, aux = probe.init_params(symbol, (4, 3, 32, 32), seed=5)
    mx.model.save_checkpoint(str(tmp_path / "r"), 1, symbol, arg, aux)
    code = probe.main(["--num-layers", "20", "--widths", "4,8,16", "--batch-size", "4",
                       "--variants", "full_preact:identity", "--data-dir", generated_cifar10,
                       "--checkpoint", str(tmp_path / "r-0001.params"),
                       "--out", str(tmp_path / "cli")])
    assert code == 0
    out = capsys.readouterr().out
    assert "full_preact identity: per unit toward the input" in out
    assert "full_preact identity (checkpoint): per unit toward the input" in out
    assert matplotlib.image.imread(str(tmp_path / "cli.png")).ndim == 3


@pytest.mark.parametrize("args, message", [
    (["--variants", "full_preact"], "not UNIT:SHORTCUT"),
    (["--variants", "full_preact:bogus"], "unknown shortcut 'bogus'"),
    (["--variants", "full_preact:constant_scaling:scale"], "expects NAME=VALUE, got 'scale'"),
    (["--variants", "full_preact:constant_scaling:scale=x"], "scale: 'x' is not a number"),
    (["--variants", "full_preact:identity:scale=0.8"], "takes no parameter scale"),
    (["--num-layers", "21"], "depth 21 is impossible"),
    (["--checkpoint", "missing.params"], "checkpoint not found"),
    (["--data-dir", "no-such-dir"], "no CIFAR-10 data in no-such-dir"),
    (["--widths", "4,x"], "--widths must be comma-separated integers"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        run_main(probe.main, ["--widths", "4,8,16", "--out", str(tmp_path / "x")] + args,
                 prog="probe")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_loss_is_the_batch_cross_entropy(batch):
    """With the classifier's weights at zero every class gets 1/10: the loss is ln 10; with
    the initialised weights it is the mean -ln p(label) of the net's own forward pass."""
    symbol = net(20)
    arg, aux = probe.init_params(symbol, batch[0].shape, seed=3)
    exe = bind(symbol, arg, aux, *batch)
    p = exe.forward(is_train=True)[0].asnumpy()
    expected = -np.log(p[np.arange(len(batch[1])), batch[1].astype(int)]).mean()
    assert probe.gradient_flow(symbol, *batch, arg, aux)["loss"] == pytest.approx(expected,
                                                                                   rel=1e-5)
    zeroed = {n: mx.nd.zeros_like(a) if n.startswith("fc") else a for n, a in arg.items()}
    assert probe.gradient_flow(symbol, *batch, zeroed, aux)["loss"] == \
        pytest.approx(math.log(10), rel=1e-6)


def test_cli_projection_reaches_the_net(tmp_path, capsys):
    """Option A pads with zeros (no parameters), option B projects by 1x1 convolutions:
    the same seed then gives different nets and different losses."""
    losses = {}
    for projection in ("A", "B"):
        assert probe.main(["--num-layers", "20", "--widths", "4,8,16", "--batch-size", "4",
                           "--variants", "original:identity", "--projection", projection,
                           "--out", str(tmp_path / projection)]) == 0
        losses[projection] = re.search(r"loss (\d+\.\d+)", capsys.readouterr().out)[1]
    assert losses["A"] != losses["B"]
