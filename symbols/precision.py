"""The bfloat16 training graph of a float32 network (CPUs with native bfloat16).

MXNet's AMP (``mxnet.contrib.amp.convert_symbol``) inserts ``amp_cast`` nodes: the data
and every convolution weight are cast to bfloat16 where they enter a convolution, and
the convolutions, BatchNorm (with float32 gamma, beta and statistics), ReLU and the
shortcut additions then run in bfloat16. The classifier, global pooling's output on,
stays float32: the fully-connected layer, the softmax and the loss (a negligible share
of the work). So do the 1x1 convolutions of the gates of the gating shortcuts (Fig. 2c,
d of the 2016 paper): converted, they leave MXNet 1.9.1's AMP pass with a convolution of
bfloat16 data and a float32 weight, which type inference refuses. Ops that AMP lists as
float32 (``_mul_scalar`` of the scaling shortcuts, ``Dropout``, option A's slicing and
padding) run in float32, with casts around them.

The parameters stay float32 variables, so the optimizer updates float32 master weights
with float32 states (the backward of ``amp_cast`` hands it float32 gradients), and
checkpoints are those of the float32 network. Every variable is marked float32
(``__dtype__``): a cast's output type says nothing about its input, and without the mark
``Module.bind`` cannot infer the weights' types ("InferType pass cannot decide dtypes
... conv0_weight: -1").
"""
import json

from common.mx import mx

FLOAT32 = "0"  # MXNet's type code of float32, as the __dtype__ attribute holds it
CLASSIFIER = ("flatten", "fc")  # names of symbols.resnet.get_symbol's classifier ops
GATE = "_gate"  # name suffix of the gates' convolutions (symbols.shortcuts.gate)


def with_float32_variables(symbol):
    """``symbol`` with every variable (data, label, parameters, statistics) marked float32."""
    graph = json.loads(symbol.tojson())
    for node in graph["nodes"]:
        if node["op"] == "null":
            node.setdefault("attrs", {})["__dtype__"] = FLOAT32
    return mx.sym.load_json(json.dumps(graph))


def float32_ops(symbol):
    """Names of the ops of ``symbol`` kept in float32: the classifier and the gates."""
    nodes = json.loads(symbol.tojson())["nodes"]
    return [n["name"] for n in nodes if n["name"] in CLASSIFIER
            or (n["op"] == "Convolution" and n["name"].endswith(GATE))]


def bfloat16_graph(symbol):
    """The graph that trains float32 ``symbol`` in bfloat16 (same arguments, all float32).

    Its JSON (``tojson``, ``save``) leaves the casts out; ``tojson(remove_amp_cast=False)``
    shows them."""
    typed = with_float32_variables(symbol)
    return mx.contrib.amp.convert_symbol(typed, target_dtype="bfloat16",
                                         data_names=typed.list_inputs(),
                                         excluded_sym_names=float32_ops(symbol),
                                         cast_optional_params=False)
