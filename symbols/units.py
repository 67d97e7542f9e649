"""Residual units by activation placement (Identity Mappings, Fig. 4) and their branches.

A unit computes ``x_{l+1} = post(h(x_l) combined with F(x_l))``. Where the activations
sit is all that tells the five variants apart, so each is a :class:`Placement`:

- ``pre``: ops before the first convolution of F (pre-activation),
- ``last``: ops after the last convolution of F,
- ``post``: ops after the addition.

Between two convolutions of F there is always BN then ReLU.
"""
from collections import namedtuple

from symbols import layers

Placement = namedtuple("Placement", "pre last post")

UNITS = {
    # (a) original (2015): conv-BN-ReLU-conv-BN, addition, ReLU.
    "original": Placement(pre=(), last=("bn",), post=("relu",)),
    # (b) BN after addition: conv-BN-ReLU-conv, addition, BN, ReLU.
    "bn_after_add": Placement(pre=(), last=(), post=("bn", "relu")),
    # (c) ReLU before addition: conv-BN-ReLU-conv-BN-ReLU, addition.
    "relu_before_add": Placement(pre=(), last=("bn", "relu"), post=()),
    # (d) ReLU-only pre-activation: ReLU-conv-BN-ReLU-conv-BN, addition.
    "relu_only_preact": Placement(pre=("relu",), last=("bn",), post=()),
    # (e) full pre-activation: BN-ReLU-conv-BN-ReLU-conv, addition.
    "full_preact": Placement(pre=("bn", "relu"), last=(), post=()),
}


def get_unit(name):
    """The :class:`Placement` of unit ``name``; ``ValueError`` listing valid names."""
    if name not in UNITS:
        raise ValueError(f"unknown unit {name!r}; valid units: {', '.join(UNITS)}")
    return UNITS[name]


def head_activation(placement):
    """Ops before global pooling: the 'extra activation after the last addition' that
    pre-activation nets need (Sec. 4.1); post-activation units end activated already."""
    return placement.pre


def basic_branch(x, num_filter, stride, name, placement, counter):
    """F of a basic unit: two 3x3 convolutions with ``num_filter`` outputs."""
    x = layers.conv(x, num_filter, 3, stride, f"{name}_conv1")
    x = layers.activate(x, ("bn", "relu"), name, counter)
    x = layers.conv(x, num_filter, 3, 1, f"{name}_conv2")
    return layers.activate(x, placement.last, name, counter)


def bottleneck_branch(x, num_filter, stride, name, placement, counter):
    """F of a bottleneck unit: 1x1 (num_filter/4), 3x3 (num_filter/4, carries the
    stride), 1x1 (num_filter)."""
    inner = num_filter // 4
    x = layers.conv(x, inner, 1, 1, f"{name}_conv1")
    x = layers.activate(x, ("bn", "relu"), name, counter)
    x = layers.conv(x, inner, 3, stride, f"{name}_conv2")
    x = layers.activate(x, ("bn", "relu"), name, counter)
    x = layers.conv(x, num_filter, 1, 1, f"{name}_conv3")
    return layers.activate(x, placement.last, name, counter)


BRANCHES = {"basic": basic_branch, "bottleneck": bottleneck_branch}


def residual_unit(x, num_filter, stride, name, placement, branch, shortcut, match,
                  preactivated=False):
    """One residual unit.

    ``branch`` builds F, ``shortcut`` combines h(x) with F (see ``symbols.shortcuts``),
    ``match(x, pre_x, counter)`` maps the shortcut input to F's shape (the network's
    projection option). ``preactivated``: ``x`` already went through ``placement.pre``
    (the first unit of a pre-activation net, Sec. 4.1), so both paths read it as is.
    """
    if preactivated:  # number the branch's ops as if this unit had applied ``pre``
        counter = {op: placement.pre.count(op) for op in placement.pre}
        pre_x = x
    else:
        counter = {}
        pre_x = layers.activate(x, placement.pre, name, counter)
    f = branch(pre_x, num_filter, stride, name, placement, counter)
    out = shortcut(x, f, match=lambda s: match(s, pre_x, counter), num_filter=num_filter,
                   stride=stride, name=name)
    return layers.activate(out, placement.post, f"{name}_out", {})
