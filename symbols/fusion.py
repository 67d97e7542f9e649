"""Graph rewrite for faster CPU training that keeps the math: BatchNorm then ReLU as one op.

MKL-DNN's ReLU backward writes its gradient to a temporary buffer and copies it out, and
the separate ReLU makes another pass over the tensor. ``_contrib_BatchNormWithReLU`` (MKL-DNN
builds, CPU only) does both in one operator with the same parameters under the same names,
so checkpoints, exports and parameter counts stay those of the plain network.

Only pairs whose ReLU feeds exactly one convolution are fused. Elsewhere MXNet 1.9.1's
fused backward is not safe: before global pooling it fails to build its primitive, and
where the ReLU also feeds the gate and projection of a gating shortcut it computes wrong
gradients. tests/test_symbols_fusion.py compares every unit and shortcut with the plain network.
"""
import json

from common.mx import mx

FUSED_OP = "_contrib_BatchNormWithReLU"


def can_fuse(contexts):
    """Whether this MXNet build can run the fused op on all of ``contexts``."""
    return (all(c.device_type == "cpu" for c in contexts)
            and mx.runtime.Features().is_enabled("MKLDNN")
            and hasattr(mx.sym.contrib, "BatchNormWithReLU"))


def _readers(nodes, heads):
    """{(node, output): ops that read it, "head" for a graph output}."""
    readers = {}
    for node in nodes:
        for entry in node["inputs"]:
            readers.setdefault((entry[0], entry[1]), []).append(node["op"])
    for entry in heads:
        readers.setdefault((entry[0], entry[1]), []).append("head")
    return readers


def fuse_bn_relu(symbol):
    """``symbol`` with each BatchNorm read only by a ReLU that only one convolution reads
    replaced by BatchNormWithReLU, and that ReLU removed."""
    graph = json.loads(symbol.tojson())
    nodes, heads = graph["nodes"], graph["heads"]
    readers = _readers(nodes, heads)
    replace = {}  # ReLU node -> the BatchNorm node that takes its place
    for i, node in enumerate(nodes):
        if node["op"] == "Activation" and node.get("attrs", {}).get("act_type") == "relu":
            src, out = node["inputs"][0][:2]
            if (nodes[src]["op"] == "BatchNorm" and out == 0
                    and readers[(src, 0)] == ["Activation"]
                    and readers.get((i, 0)) == ["Convolution"]):
                replace[i] = src
    if not replace:
        return symbol
    for bn in replace.values():
        nodes[bn]["op"] = FUSED_OP
    keep = [i for i in range(len(nodes)) if i not in replace]
    new_index = {old: new for new, old in enumerate(keep)}

    def remap(entry):
        node = replace.get(entry[0], entry[0])
        return [new_index[node]] + list(entry[1:])

    graph["nodes"] = [dict(nodes[i], inputs=[remap(e) for e in nodes[i]["inputs"]])
                      for i in keep]
    graph["arg_nodes"] = [new_index[i] for i in graph["arg_nodes"]]
    graph["heads"] = [remap(e) for e in heads]
    graph.pop("node_row_ptr", None)  # recomputed by the loader
    return mx.sym.load_json(json.dumps(graph))


def training_symbol(symbol, contexts, fuse=True):
    """The symbol to train on ``contexts``: fused where the build allows it."""
    return fuse_bn_relu(symbol) if fuse and can_fuse(contexts) else symbol
