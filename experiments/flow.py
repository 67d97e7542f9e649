"""The findings' gradient-flow measurements at initialisation (Identity Mappings, Eqn. 5
and 8): |dE/dx_l| of every unit for each seed of a probe finding's rows, as initialised and
with the residual branches switched off (F = 0, the shortcut term alone), on one batch of
the findings' training images; each seed's result is cached as JSON."""
import os
import re

from common.files import read_json, write_json
from experiments.scale import run_dir, seeds_of


def probe_batch(data_dir, scale, protocol):
    """The first ``scale.probe_batch`` training images of the findings' split, normalised
    with the training images' statistics, and their labels."""
    from data import cifar_folder, load_cifar, stratified_split
    from experiments.probe import first_images
    images, labels = load_cifar(cifar_folder(data_dir, "cifar10"))
    train, _ = stratified_split(labels, scale.validation_images(protocol))
    return first_images(images[train], labels[train], scale.probe_batch, stats_of=images[train])


LAST_CONV = re.compile(r"^(stage\d+_unit\d+)_conv(\d)_weight$")
UNIT = re.compile(r"^stage(\d+)_unit(\d+)$")


def without_branches(arg_params):
    """A copy of ``arg_params`` with the last convolution of every residual branch zeroed,
    so that F = 0 and dE/dx_l is the shortcut term of Eqn. 5 / Eqn. 8 alone."""
    last = {}
    for name in arg_params:
        match = LAST_CONV.match(name)
        if match and int(match[2]) > last.get(match[1], (0, None))[0]:
            last[match[1]] = (int(match[2]), name)
    params = dict(arg_params)
    for _, name in last.values():
        params[name] = params[name] * 0
    return params


def shortcut_factor(units, grad_norm):
    """Geometric mean of |dE/dx_l| / |dE/dx_{l+1}| over consecutive units of one stage
    whose shortcut is not a projection (from each stage's second unit on)."""
    import numpy as np
    ratios = []
    for (a, ga), (b, gb) in zip(zip(units, grad_norm), zip(units[1:], grad_norm[1:])):
        (sa, ua), (sb, _) = UNIT.match(a).groups(), UNIT.match(b).groups()
        if sa == sb and int(ua) >= 2:
            ratios.append(ga / gb)
    if not ratios:
        raise ValueError("the net needs three units a stage to measure the shortcut term")
    return float(np.exp(np.mean(np.log(ratios))))


def run_probe(finding, out_dir, data_dir, scale, seeds=None, log=print):
    """Measure |dE/dx_l| at initialisation for every seed of every row, as initialised
    and with the residual branches switched off (cached as JSON)."""
    import numpy as np

    import symbols
    from experiments.probe import gradient_flow, init_params
    batch = None
    for row in finding.rows:
        for seed in range(seeds_of(finding, seeds)):
            path = run_dir(out_dir, finding, row, scale, seed) + ".json"
            if os.path.isfile(path):
                continue
            batch = batch or probe_batch(data_dir, scale, finding.protocol)
            net = symbols.get_symbol(10, scale.depth(row), (3, 32, 32), unit=row.unit,
                                     shortcut=row.shortcut, projection=row.projection,
                                     probe=True, **row.params)
            arg_params, aux_params = init_params(net, batch[0].shape, seed)
            result = gradient_flow(net, *batch, arg_params, aux_params)
            grads = np.asarray(result["grad_norm"])
            alone = gradient_flow(net, *batch, without_branches(arg_params), aux_params)
            result.update(grad_spread=float(grads.max() / grads.min()),
                          log10_grad_ratio=float(np.log10(grads[0] / grads[-1])),
                          shortcut_grad_norm=alone["grad_norm"],
                          shortcut_factor=shortcut_factor(alone["units"], alone["grad_norm"]))
            write_json(path, result)
            log(f"{path}: |dE/dx_l| spread x{result['grad_spread']:.3g}, shortcut term "
                f"x{result['shortcut_factor']:.4f} a unit")


def probe_numbers(path, protocol):
    if not os.path.isfile(path + ".json"):
        return None
    result = read_json(path + ".json")
    return {k: result[k] for k in ("grad_spread", "log10_grad_ratio", "shortcut_factor",
                                   "grad_norm", "units")}
