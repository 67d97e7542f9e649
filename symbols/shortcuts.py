"""Shortcuts: how a unit combines h(x) with its residual F (Identity Mappings, Fig. 2).

Every shortcut has the signature ``shortcut(x, f, *, match, num_filter, stride, name,
**params) -> Symbol``: ``x`` is the unit's input, ``f`` the residual branch's output and
``match(x)`` the network's mapping of ``x`` to F's shape (identity, or option A/B/C of the
2015 paper where dimensions change). Keyword ``params`` are the shortcut's own settings.
"""
import inspect

from common.mx import mx
from symbols import layers

SHORTCUTS = {}


def register(name):
    def add(fn):
        SHORTCUTS[name] = fn
        return fn
    return add


def get_shortcut(name, **params):
    """The shortcut ``name`` with ``params`` bound; ``ValueError`` for an unknown name or a
    parameter the shortcut does not take."""
    if name not in SHORTCUTS:
        raise ValueError(f"unknown shortcut {name!r}; valid shortcuts: {', '.join(SHORTCUTS)}")
    fn = SHORTCUTS[name]
    valid = shortcut_params(name)
    wrong = sorted(set(params) - set(valid))
    if wrong:
        raise ValueError(f"shortcut {name!r} takes no parameter {', '.join(wrong)}; "
                         f"its parameters: {', '.join(valid) or 'none'}")
    return lambda x, f, **kw: fn(x, f, **kw, **params)


def shortcut_params(name):
    """Names and defaults of the settings shortcut ``name`` takes."""
    sig = inspect.signature(SHORTCUTS[name])
    return {p.name: p.default for p in sig.parameters.values()
            if p.default is not inspect.Parameter.empty}


@register("identity")
def identity(x, f, *, match, num_filter, stride, name):
    """Fig. 2(a): x_{l+1} = h(x) + F(x)."""
    return layers.add(match(x), f, f"{name}_add")


@register("constant_scaling")
def constant_scaling(x, f, *, match, num_filter, stride, name, scale=0.5,
                     scale_residual=True):
    """Fig. 2(b): lambda * h(x) + (1 - lambda) * F(x); with ``scale_residual=False`` F
    is left unscaled (the paper's 'shortcut only' row of Table 1)."""
    h = layers.scale(match(x), scale, f"{name}_sc_scale")
    if scale_residual:
        f = layers.scale(f, 1.0 - scale, f"{name}_f_scale")
    return layers.add(h, f, f"{name}_add")


def gate(x, num_filter, stride, name, gate_bias):
    """g(x) = sigmoid(1x1 conv(x) + b_g), with b_g initialised to ``gate_bias``."""
    bias = mx.sym.Variable(f"{name}_gate_bias", init=mx.init.Constant(gate_bias))
    g = mx.sym.Convolution(x, bias=bias, num_filter=num_filter, kernel=(1, 1),
                           stride=(stride, stride), name=f"{name}_gate")
    return mx.sym.Activation(g, act_type="sigmoid", name=f"{name}_gate_sigmoid")


def gated_shortcut(h, g, name):
    """(1 - g) * h."""
    complement = mx.sym._internal._rminus_scalar(g, scalar=1.0, name=f"{name}_gate_complement")
    return mx.sym.elemwise_mul(complement, h, name=f"{name}_sc_gated")


@register("exclusive_gating")
def exclusive_gating(x, f, *, match, num_filter, stride, name, gate_bias=-6.0):
    """Fig. 2(c): (1 - g(x)) * h(x) + g(x) * F(x)."""
    g = gate(x, num_filter, stride, name, gate_bias)
    h = gated_shortcut(match(x), g, name)
    f = mx.sym.elemwise_mul(g, f, name=f"{name}_f_gated")
    return layers.add(h, f, f"{name}_add")


@register("shortcut_only_gating")
def shortcut_only_gating(x, f, *, match, num_filter, stride, name, gate_bias=0.0):
    """Fig. 2(d): (1 - g(x)) * h(x) + F(x)."""
    h = gated_shortcut(match(x), gate(x, num_filter, stride, name, gate_bias), name)
    return layers.add(h, f, f"{name}_add")


@register("conv1x1")
def conv1x1(x, f, *, match, num_filter, stride, name):
    """Fig. 2(e): a 1x1 convolution on every shortcut, x_{l+1} = W x + F(x)."""
    h = layers.conv(x, num_filter, 1, stride, f"{name}_sc")
    return layers.add(h, f, f"{name}_add")


@register("dropout")
def dropout(x, f, *, match, num_filter, stride, name, ratio=0.5):
    """Fig. 2(f): dropout on the shortcut's output, x_{l+1} = d(h(x)) + F(x).

    As in the paper's Torch code the kept values are not rescaled in training and the
    shortcut is scaled by (1 - ratio) in inference, so in expectation it is a constant
    scaling by 1 - ratio (MXNet's Dropout rescales by 1 / (1 - ratio); we undo it).
    """
    h = mx.sym.Dropout(match(x), p=ratio, name=f"{name}_sc_dropout")
    h = layers.scale(h, 1.0 - ratio, f"{name}_sc_scale")
    return layers.add(h, f, f"{name}_add")


@register("none")
def plain(x, f, *, match, num_filter, stride, name):
    """No shortcut: the plain network of the 2015 paper, x_{l+1} = F(x)."""
    return f
