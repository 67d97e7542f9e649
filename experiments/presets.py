"""Every row of the Identity Mappings paper's Tables 1-3 as a named preset, with the
paper's CIFAR test error (%, median of 5 runs; ``FAIL`` where the paper reports that
training failed, i.e. an error above 20 %)."""
from collections import namedtuple

FAIL = "fail"
FAIL_THRESHOLD = 20.0

Preset = namedtuple("Preset", "name dataset num_layers unit shortcut shortcut_params paper_error")


def preset(name, paper_error, num_layers=110, unit="original", shortcut="identity",
           dataset="cifar10", **shortcut_params):
    return Preset(name, dataset, num_layers, unit, shortcut, shortcut_params, paper_error)


# Table 1: shortcuts on ResNet-110 with original units, CIFAR-10.
TABLE1 = [
    preset("original", 6.61),
    preset("constant_scaling_shortcut_only", FAIL, shortcut="constant_scaling", scale=0.5,
           scale_residual=False),
    preset("constant_scaling_both", 12.35, shortcut="constant_scaling", scale=0.5),
    *[preset(f"exclusive_gating_bg{-b}", FAIL, shortcut="exclusive_gating",
             gate_bias=float(b)) for b in (0, -1, -2, -3, -4, -5)],
    preset("exclusive_gating_bg6", 8.70, shortcut="exclusive_gating", gate_bias=-6.0),
    preset("exclusive_gating_bg7", 9.81, shortcut="exclusive_gating", gate_bias=-7.0),
    preset("shortcut_only_gating_bg0", 12.86, shortcut="shortcut_only_gating", gate_bias=0.0),
    preset("shortcut_only_gating_bg6", 6.91, shortcut="shortcut_only_gating", gate_bias=-6.0),
    preset("conv1x1", 12.22, shortcut="conv1x1"),
    preset("dropout", FAIL, shortcut="dropout", ratio=0.5),
]

# Table 2: activation placement (Fig. 4), ResNet-110 and ResNet-164, CIFAR-10.
TABLE2 = [
    preset(f"{unit}_{depth}", error, num_layers=depth, unit=unit)
    for unit, errors in (("original", (6.61, 5.93)), ("bn_after_add", (8.17, 6.50)),
                         ("relu_before_add", (7.84, 6.14)),
                         ("relu_only_preact", (6.71, 5.91)), ("full_preact", (6.37, 5.46)))
    for depth, error in zip((110, 164), errors)
]

# Table 3: original vs full pre-activation units, ResNet-164 and ResNet-1001.
TABLE3 = [
    preset(f"{dataset}_{unit}_{depth}", error, num_layers=depth, unit=unit, dataset=dataset)
    for dataset, depth, errors in (("cifar10", 164, (5.93, 5.46)), ("cifar10", 1001, (7.61, 4.92)),
                                   ("cifar100", 164, (25.16, 24.33)),
                                   ("cifar100", 1001, (27.82, 22.71)))
    for unit, error in zip(("original", "full_preact"), errors)
]

TABLES = {"table1": TABLE1, "table2": TABLE2, "table3": TABLE3}

# The paper's CIFAR recipe (Sec. 4 and appendix), in iterations of 128 images.
RECIPE = dict(batch_size=128, lr=0.1, mom=0.9, wd=1e-4, optimizer="nag",
              num_iterations=64000, lr_step_iterations=(32000, 48000),
              warmup_lr=0.01, warmup_iterations=400)


def get_table(name):
    """The presets of table ``name``; ``ValueError`` listing the valid names."""
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; valid: {', '.join(TABLES)}")
    return TABLES[name]


def select_rows(table, rows=None):
    """The presets of ``table`` named in ``rows`` (all when None), in table order."""
    presets = get_table(table)
    if not rows:
        return list(presets)
    names = [p.name for p in presets]
    unknown = [r for r in rows if r not in names]
    if unknown:
        raise ValueError(f"{table} has no row {', '.join(unknown)}; its rows: {', '.join(names)}")
    return [p for p in presets if p.name in rows]
