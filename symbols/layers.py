"""Named layer helpers shared by units, shortcuts and networks.

Every op gets an explicit, hierarchical name (``stage2_unit3_conv1``) so that argument
names are stable across builds and checkpoints can rely on them.
"""
from common.mx import mx

# BatchNorm settings, in one place (the papers use Torch's defaults: momentum 0.9,
# epsilon 1e-5; gamma is learnt).
BN_MOMENTUM = 0.9
BN_EPS = 1e-5


def conv(x, num_filter, kernel, stride, name):
    """Convolution without bias (a BatchNorm or the next unit absorbs it), 'same' padding."""
    return mx.sym.Convolution(x, num_filter=num_filter, kernel=(kernel, kernel),
                              stride=(stride, stride), pad=(kernel // 2, kernel // 2),
                              no_bias=True, name=name)


def bn(x, name):
    """BatchNorm with the project's settings."""
    return mx.sym.BatchNorm(x, fix_gamma=False, momentum=BN_MOMENTUM, eps=BN_EPS, name=name)


def relu(x, name):
    return mx.sym.Activation(x, act_type="relu", name=name)


def activate(x, ops, name, counter):
    """Apply a sequence of 'bn' / 'relu' ops, numbering each kind through ``counter``."""
    for op in ops:
        counter[op] = counter.get(op, 0) + 1
        layer = bn if op == "bn" else relu
        x = layer(x, f"{name}_{op}{counter[op]}")
    return x


def scale(x, factor, name):
    """x * factor as a named op."""
    return mx.sym._internal._mul_scalar(x, scalar=float(factor), name=name)


def add(a, b, name):
    return mx.sym.elemwise_add(a, b, name=name)
