"""Sizes of a network: learnable parameters, multiply-adds, output shape."""
import json

import numpy as np

from common.cli import parse_image_shape

INPUTS = ("data", "softmax_label")


def input_shapes(image_shape, batch_size=1):
    return {"data": (batch_size,) + parse_image_shape(image_shape)}


def param_shapes(symbol, image_shape):
    """{argument name: shape} of the learnable arguments (not data, label or probes)."""
    arg_shapes, _, _ = symbol.infer_shape(**input_shapes(image_shape))
    return {name: shape for name, shape in zip(symbol.list_arguments(), arg_shapes)
            if name not in INPUTS and not name.endswith("_probe")}


def num_params(symbol, image_shape):
    """Number of learnable parameters (BatchNorm's moving statistics excluded)."""
    return int(sum(np.prod(shape) for shape in param_shapes(symbol, image_shape).values()))


def output_shape(symbol, image_shape, batch_size=1):
    _, out_shapes, _ = symbol.infer_shape(**input_shapes(image_shape, batch_size))
    return out_shapes[0]


def count_macs(symbol, image_shape):
    """Multiply-adds of one image's forward pass in convolutions and fully connected
    layers (element-wise ops, BatchNorm and pooling are not counted)."""
    internals = symbol.get_internals()
    _, shapes, _ = internals.infer_shape(**input_shapes(image_shape))
    shape_of = dict(zip(internals.list_outputs(), shapes))
    nodes = json.loads(symbol.tojson())["nodes"]

    def output_of(index):
        node = nodes[index]
        return node["name"] if node["op"] == "null" else node["name"] + "_output"

    macs = 0
    for node in nodes:
        if node["op"] not in ("Convolution", "FullyConnected"):
            continue
        out = shape_of[node["name"] + "_output"]
        weight = shape_of[output_of(node["inputs"][1][0])]
        macs += int(np.prod(out[1:])) * int(np.prod(weight[1:]))
    return macs
