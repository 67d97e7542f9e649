"""Graph rewrites for faster CPU training that keep the math: BatchNorm then ReLU as one
op, and global average pooling as a mean.

MKL-DNN's ReLU backward writes its gradient to a temporary buffer and copies it out, and
the separate ReLU makes another pass over the tensor. ``_contrib_BatchNormWithReLU`` (MKL-DNN
builds, CPU only) does both in one operator with the same parameters under the same names,
so checkpoints, exports and parameter counts stay those of the plain network.

Only pairs whose ReLU feeds exactly one convolution are fused. Elsewhere MXNet 1.9.1's
fused backward is not safe: before global pooling it fails to build its primitive, and
where the ReLU also feeds the gate and projection of a gating shortcut it computes wrong
gradients. tests/test_symbols_fusion.py compares every unit and shortcut with the plain network.

The global average pooling before the classifier becomes a ``mean`` over the spatial axes.
MXNet 1.9.1 runs the Pooling's backward with oneDNN's reference kernel, which writes its
gradient in a layout (``acdB16b`` on AVX-512) that sends the BatchNorm before it to the
reference kernel too: about 45 of the 245 ms of a ResNet-20 training batch on a 2-core
Zen 4. The mean's backward is a plain broadcast.
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


def global_pool_as_mean(symbol):
    """``symbol`` with each global average Pooling replaced by a ``mean`` over the spatial
    axes (keeping them, of size 1), under the same name."""
    graph = json.loads(symbol.tojson())
    changed = False
    for node in graph["nodes"]:
        attrs = node.get("attrs", {})
        if (node["op"] == "Pooling" and attrs.get("global_pool") == "True"
                and attrs.get("pool_type") == "avg"):
            node["op"], node["attrs"] = "mean", {"axis": "(2, 3)", "keepdims": "True"}
            changed = True
    return mx.sym.load_json(json.dumps(graph)) if changed else symbol


def training_symbol(symbol, contexts, fuse=True):
    """The symbol to train on ``contexts``: on CPUs of an MKL-DNN build, rewritten
    (BatchNorm-ReLU pairs fused, global pooling as a mean); elsewhere, or without
    ``fuse``, ``symbol`` itself."""
    if not (fuse and can_fuse(contexts)):
        return symbol
    return global_pool_as_mean(fuse_bn_relu(symbol))
