"""Stacking residual units into CIFAR and ImageNet ResNets, and the public entry point."""
from common.cli import parse_image_shape
from common.mx import mx
from symbols import layers
from symbols.shortcuts import get_shortcut
from symbols.units import BRANCHES, get_unit, head_activation, residual_unit

# ImageNet depths (2015 paper, Table 1): depth -> (branch, units per stage).
IMAGENET_SPEC = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}
IMAGENET_WIDTHS = {"basic": (64, 128, 256, 512), "bottleneck": (256, 512, 1024, 2048)}
# CIFAR (2015 paper Sec. 4.2; 2016 paper Sec. 4): 3 stages of n units each, depth 6n+2
# with basic units, 9n+2 with bottleneck units (inner widths 16/32/64).
CIFAR_WIDTHS = {"basic": (16, 32, 64), "bottleneck": (64, 128, 256)}
CIFAR_DEPTHS = {"basic": (6, (20, 32, 44, 56, 110, 1202)), "bottleneck": (9, (164, 1001))}
PROJECTIONS = ("A", "B", "C")


def cifar_layout(num_layers, bottleneck):
    """(branch, units per stage) of a CIFAR ResNet of depth ``num_layers``."""
    if bottleneck is None:
        bottleneck = num_layers >= 164 and (num_layers - 2) % 9 == 0
    branch = "bottleneck" if bottleneck else "basic"
    per_unit, examples = CIFAR_DEPTHS[branch]
    n, rest = divmod(num_layers - 2, per_unit)
    if n < 1 or rest:
        raise ValueError(f"depth {num_layers} is impossible for a CIFAR ResNet with {branch} "
                         f"units: it must be {per_unit}n+2 "
                         f"(e.g. {', '.join(map(str, examples))})")
    return branch, (n, n, n)


def imagenet_layout(num_layers):
    if num_layers not in IMAGENET_SPEC:
        raise ValueError(f"depth {num_layers} is impossible for an ImageNet ResNet; valid "
                         f"depths: {', '.join(map(str, IMAGENET_SPEC))}")
    return IMAGENET_SPEC[num_layers]


def make_match(projection, placement, num_filter, stride, in_filter, name):
    """The network's mapping of a shortcut input to F's shape (2015 paper, Sec. 3.3).

    A: identity, with strided subsampling and zero channels where dimensions change.
    B: a 1x1 projection where dimensions change, identity elsewhere.
    C: a 1x1 projection on every shortcut.
    A projection reads the pre-activated input of pre-activation units, and is followed
    by BN where the residual branch ends with BN.
    """
    changes = stride != 1 or in_filter != num_filter

    def match(x, pre_x, counter):
        if not changes and projection != "C":
            return x
        if projection == "A":
            return zero_pad(x, num_filter - in_filter, stride, name)
        h = layers.conv(pre_x if placement.pre else x, num_filter, 1, stride, f"{name}_sc")
        return layers.bn(h, f"{name}_sc_bn") if "bn" in placement.last else h
    return match


def zero_pad(x, extra, stride, name):
    """Option A: subsample by ``stride`` and append ``extra`` channels of zeros.

    The channels are joined on a 5-d view (N, C, H, W, 1): MXNet hands a 4-d concat to
    oneDNN, whose backward pass divides by zero (SIGFPE) where its gradient arrives in a
    channel-blocked layout whose block does not divide the joined parts' channels (e.g. 4
    channels in blocks of 8 or 16). A 5-d concat runs MXNet's own kernel.
    """
    if stride != 1:
        x = mx.sym.slice(x, begin=(None, None, 0, 0), end=(None, None, None, None),
                         step=(1, 1, stride, stride), name=f"{name}_sc_subsample")
    if extra <= 0:
        return x
    x = mx.sym.expand_dims(x, axis=4, name=f"{name}_sc_5d")
    zero = mx.sym.zeros_like(mx.sym.slice_axis(x, axis=1, begin=0, end=1), name=f"{name}_sc_zero")
    zeros = mx.sym.broadcast_axis(zero, axis=1, size=extra, name=f"{name}_sc_zeros")
    padded = mx.sym.concat(x, zeros, dim=1, name=f"{name}_sc_pad")
    return mx.sym.squeeze(padded, axis=4, name=f"{name}_sc_4d")


def stem(data, placement, imagenet, num_filter):
    """conv0 (3x3, or 7x7/2 + 3x3/2 max-pool for ImageNet), then whichever of BN and ReLU
    the first unit does not apply itself. Returns (x, preactivated)."""
    if imagenet:
        x = layers.conv(data, num_filter, 7, 2, "conv0")
        x = layers.relu(layers.bn(x, "bn0"), "relu0")
        x = mx.sym.Pooling(x, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max",
                           name="pool0")
        return x, bool(placement.pre)
    x = layers.conv(data, num_filter, 3, 1, "conv0")
    if "bn" not in placement.pre:
        x = layers.bn(x, "bn0")
    if not placement.pre:
        return layers.relu(x, "relu0"), False
    # Sec. 4.1: the first unit's activation comes right after conv0, before the split.
    return layers.activate(x, placement.pre, "stage1_unit1", {}), True


def probe_point(x, name):
    """x + a zero Variable ``<name>_probe``: its gradient is d loss / d x."""
    return mx.sym.elemwise_add(x, mx.sym.Variable(f"{name}_probe"), name=f"{name}_input")


def resnet(data, units, widths, branch, unit="full_preact", shortcut="identity",
           projection="B", imagenet=False, probe=False, **shortcut_params):
    """Feature extractor: stem, stages of residual units, head activation, global pooling.

    ``units[s]`` units of output width ``widths[s]`` in stage ``s + 1``; the first unit of
    every stage but the first halves the resolution.
    """
    placement = get_unit(unit)
    combine = get_shortcut(shortcut, **shortcut_params)
    if projection not in PROJECTIONS:
        raise ValueError(f"unknown projection {projection!r}; valid: {', '.join(PROJECTIONS)}")
    if shortcut == "none" and projection != "B":
        raise ValueError("a plain network (shortcut 'none') has no shortcut to project")
    if shortcut == "conv1x1" and projection == "A":
        raise ValueError("the conv1x1 shortcut is a projection everywhere; option A contradicts it")
    if branch not in BRANCHES:
        raise ValueError(f"unknown branch {branch!r}; valid: {', '.join(BRANCHES)}")
    if len(units) != len(widths) or min(units) < 1:
        raise ValueError(f"units {tuple(units)} and widths {tuple(widths)} must pair up, "
                         "at least one unit a stage")
    in_filter = 64 if imagenet else widths[0] // (4 if branch == "bottleneck" else 1)
    x, preactivated = stem(data, placement, imagenet, in_filter)
    for s, (count, num_filter) in enumerate(zip(units, widths), start=1):
        for u in range(1, count + 1):
            name = f"stage{s}_unit{u}"
            stride = 2 if s > 1 and u == 1 else 1
            if probe:
                x = probe_point(x, name)
            match = make_match(projection, placement, num_filter, stride, in_filter, name)
            x = residual_unit(x, num_filter, stride, name, placement, BRANCHES[branch],
                              combine, match, preactivated)
            in_filter, preactivated = num_filter, False
    x = layers.activate(x, head_activation(placement), "head", {})
    return mx.sym.Pooling(x, global_pool=True, kernel=(1, 1), pool_type="avg", name="pool1")


def get_symbol(num_classes, num_layers=None, image_shape=(3, 32, 32), unit="full_preact",
               shortcut="identity", bottleneck=None, projection="B", widths=None, units=None,
               dtype="float32", probe=False, **shortcut_params):
    """A ResNet classifier ending in SoftmaxOutput 'softmax' (inputs 'data', 'softmax_label').

    ``image_shape`` is (channels, height, width); a "3,32,32" string is read too (see
    ``common.cli.parse_image_shape``). Images of 32 px or less get the CIFAR net (depth
    6n+2 basic, 9n+2 bottleneck, which is the default from depth 164 on), larger ones the
    ImageNet net (depths 18-200).
    ``units`` / ``widths`` override units and output widths per stage (``num_layers`` may
    then be None); ``bottleneck`` forces the branch type. ``unit`` is a Fig. 4 placement,
    ``shortcut`` a Fig. 2 shortcut with its ``shortcut_params`` (e.g. ``scale=0.5``,
    ``gate_bias=-6``), ``projection`` option A/B/C. ``dtype='float16'`` computes in half
    precision with a float32 softmax. ``probe`` adds a zero Variable at every unit input
    (see ``probe_point``).
    """
    channels, height, _ = parse_image_shape(image_shape)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype must be float32 or float16, got {dtype!r}")
    imagenet = height > 32
    if units is None:
        if num_layers is None:
            raise ValueError("give num_layers, or units per stage")
        branch, units = imagenet_layout(num_layers) if imagenet else \
            cifar_layout(num_layers, bottleneck)
    else:
        branch = "bottleneck" if bottleneck else "basic"
    if bottleneck is not None and (branch == "bottleneck") != bool(bottleneck):
        raise ValueError(f"ResNet-{num_layers} on ImageNet uses {branch} units")
    widths = tuple(widths or (IMAGENET_WIDTHS if imagenet else CIFAR_WIDTHS)[branch])
    with mx.name.NameManager():
        data = mx.sym.Variable("data")
        if dtype == "float16":
            data = mx.sym.Cast(data, dtype="float16", name="data_fp16")
        x = resnet(data, units, widths, branch, unit, shortcut, projection, imagenet, probe,
                   **shortcut_params)
        x = mx.sym.FullyConnected(mx.sym.flatten(x, name="flatten"), num_hidden=num_classes,
                                  name="fc")
        if dtype == "float16":
            x = mx.sym.Cast(x, dtype="float32", name="fc_fp32")
        return mx.sym.SoftmaxOutput(x, name="softmax")
