"""ONNX export of an inference network, checked against MXNet before it is kept, and
inference with onnxruntime alone (this module imports MXNet only to export).

MXNet 1.9.1's exporter (``mx.onnx.export_model``) is used with three corrections:

- It decides whether ``_rminus_scalar`` (s - x) and ``_rdiv_scalar`` (s / x) have their
  operands reversed from the node's *name*: only MXNet's generated names
  (``_rminusscalar0``) get the scalar first. Any other name, such as the gates'
  ``stage1_unit1_gate_complement`` (1 - g, ``symbols.shortcuts.gated_shortcut``), was
  exported as x - s, i.e. g - 1: the gated shortcut came out negated. The converters
  below decide from the op, whatever the node is called, so checkpoints whose symbol
  was saved before this fix export correctly too.
- It lists every weight as a graph input as well as an initializer, which stops
  onnxruntime from folding constants (BatchNorm into the convolutions) and lets a caller
  override weights: the graph keeps only ``data`` as its input.
- Only the batch dimension (``N``) of ``data`` and ``prob`` is dynamic.

Every export is run through onnxruntime and MXNet on the same images before it gets its
name; see ``export_onnx``.
"""
import os

import numpy as np

from common.files import atomic_path, file_sha256

ONNX_FILE = "model.onnx"
INSTALL = "python3 -m pip install -e '.[onnx]'"
PROB_TOL = 1e-4  # max |probability difference| between onnxruntime and MXNet
LOGIT_RTOL = 1e-4  # max |logit difference| / max(max |logit|, 1)


def require(export=True):
    """``ImportError`` with the install command unless onnxruntime and, to ``export``,
    onnx <= 1.15 can be imported."""
    import importlib
    for name in ("onnx", "onnxruntime") if export else ("onnxruntime",):
        try:
            importlib.import_module(name)
        except ImportError:
            raise ImportError(f"{name} is not installed; get onnx and onnxruntime with: "
                              f"{INSTALL}") from None
    if export:
        try:
            importlib.import_module("onnx.mapping")  # MXNet's exporter needs it
        except ImportError:
            raise ImportError(f"onnx {importlib.import_module('onnx').__version__} is too "
                              f"new for MXNet 1.9.1's exporter (it needs onnx <= 1.15): "
                              f"{INSTALL}") from None


# -- export ------------------------------------------------------------------------------

def _scalar_first(onnx_op):
    """Converter of an MXNet scalar op whose scalar is the left operand (s - x, s / x)."""
    def convert(node, **kwargs):
        import onnx
        source = node["inputs"][0]
        x = kwargs["outputs_lookup"][source[0]][source[1]]
        scalar = np.array([float(node.get("attrs", {}).get("scalar", 1.0))], dtype=x.dtype)
        const = f"{node['name']}_scalar"
        kwargs["initializer"].append(onnx.numpy_helper.from_array(scalar, const))
        return [onnx.helper.make_node(onnx_op, [const, x.name], [node["name"]],
                                      name=node["name"])]
    return convert


def install_converters():
    """Replace MXNet's name-dependent converters of ``_rminus_scalar`` and ``_rdiv_scalar``
    (registered for opset 12, the ones every later opset falls back to)."""
    from common.mx import mx
    graph = mx.onnx.mx2onnx._export_onnx.MXNetGraph  # importing MXNet registered its own
    graph.register("_rminus_scalar", 12)(_scalar_first("Sub"))
    graph.register("_rdiv_scalar", 12)(_scalar_first("Div"))


def tidy(model, num_classes):
    """Only ``data`` as graph input, no unused initializers, batch dimension ``N``."""
    graph = model.graph
    weights = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)
    used = {name for node in graph.node for name in node.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    for value in (graph.input[0], graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    graph.output[0].type.tensor_type.shape.dim[1].dim_value = num_classes


def with_output(model, name):
    """A copy of ``model`` that also outputs its intermediate tensor ``name``."""
    import onnx
    if name not in {out for node in model.graph.node for out in node.output}:
        raise ValueError(f"the ONNX graph has no tensor {name!r}")
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    copy.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT,
                                                                None))
    return copy


def mxnet_outputs(net, arg, aux, images):
    """(probabilities, logits) of MXNet's inference network ``net`` on ``images``."""
    from common.mx import mx
    logits = net.get_children()[0]
    mod = mx.mod.Module(mx.sym.Group([net, logits]), label_names=None, context=mx.cpu())
    mod.bind([("data", images.shape)], for_training=False)
    mod.set_params(arg, aux)
    mod.forward(mx.io.DataBatch([mx.nd.array(images)]), is_train=False)
    return tuple(out.asnumpy() for out in mod.get_outputs())


def differences(mx_prob, mx_logits, prob, logits):
    """{max_prob_diff, max_logit_diff_rel}: the figures ``export_onnx`` bounds."""
    scale = max(float(np.abs(mx_logits).max()), 1.0)
    return {"max_prob_diff": float(np.abs(prob - mx_prob).max()),
            "max_logit_diff_rel": float(np.abs(logits - mx_logits).max()) / scale}


def export_onnx(net, arg, aux, images, path, variant):
    """Write ``net`` (an inference symbol ending in the softmax ``prob``, logits its input)
    with parameters ``arg``/``aux`` to ``path`` as ONNX, and return the check's figures.

    The graph is exported for batch 1 and checked at the batch of ``images`` (normalised,
    N x C x H x W float32): onnxruntime must give MXNet's probabilities within
    ``PROB_TOL`` and its logits within ``LOGIT_RTOL`` of their scale. Otherwise
    ``ValueError`` names ``variant`` and the differences, and nothing is left at ``path``.
    """
    require()
    import onnx

    from common.mx import mx
    install_converters()
    images = np.ascontiguousarray(images, dtype=np.float32)
    mx_prob, mx_logits = mxnet_outputs(net, arg, aux, images)
    with atomic_path(path) as tmp:
        mx.onnx.export_model(net, {**arg, **aux}, [(1,) + images.shape[1:]], np.float32, tmp,
                             dynamic=True, dynamic_input_shapes=[(None,) + images.shape[1:]])
        model = onnx.load(tmp)
        tidy(model, mx_prob.shape[1])
        model.doc_string = variant
        onnx.checker.check_model(model)
        onnx.save(model, tmp)
        prob = Session(tmp).probabilities(images)
        logits_name = net.get_children()[0].name
        logits = Session(with_output(model, logits_name).SerializeToString()).run(
            images, logits_name)
        check = differences(mx_prob, mx_logits, prob, logits)
        if check["max_prob_diff"] > PROB_TOL or check["max_logit_diff_rel"] > LOGIT_RTOL:
            raise ValueError(
                f"ONNX export of {variant} disagrees with MXNet on {len(images)} images: "
                f"max |probability difference| {check['max_prob_diff']:.2g} (bound {PROB_TOL:g}), "
                f"max |logit difference| {check['max_logit_diff_rel']:.2g} of the logits' "
                f"scale (bound {LOGIT_RTOL:g}); {os.path.basename(path)} not written")
        check["sha256"] = file_sha256(tmp)
    return check


# -- inference ---------------------------------------------------------------------------

class Session:
    """An onnxruntime session of an exported network (a file, or a model's bytes): images
    in as ``data``, class probabilities out as ``prob``. A file that is not a model, or
    whose SHA-256 differs from ``sha256``, is refused with a one-line ``ValueError``."""

    def __init__(self, model, sha256=None, threads=0):
        require(export=False)
        import onnxruntime as ort
        name = model if isinstance(model, str) else "the ONNX model"
        if isinstance(model, str):
            if not os.path.isfile(model):
                raise FileNotFoundError(f"{model}: no such file (export with onnx and "
                                        f"onnxruntime installed: {INSTALL})")
            if sha256 is not None and file_sha256(model) != sha256:
                raise ValueError(f"{model} is corrupt: its SHA-256 differs from the one "
                                 "recorded at export; export the network again")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(model, options,
                                                providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime's InvalidProtobuf, Fail, ...
            raise ValueError(f"{name} is not a valid ONNX model: {first_line(err)}") from None

    def run(self, images, output="prob"):
        """Output ``output`` of the network on normalised (N, C, H, W) images."""
        try:
            return self.session.run([output], {"data": np.asarray(images, np.float32)})[0]
        except Exception as err:  # onnxruntime's InvalidArgument (a wrong shape), ...
            raise ValueError(f"onnxruntime: {first_line(err)}") from None

    def probabilities(self, images):
        """Class probabilities (N, classes) of normalised (N, C, H, W) images."""
        return self.run(images)


def first_line(err):
    """An onnxruntime error in one line, without its source location prefix."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
