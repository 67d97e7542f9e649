"""ONNX export: every unit x shortcut (and projection option, bottleneck and ImageNet-size
nets) exports to an ONNX graph that onnxruntime runs as MXNet does, with random weights
and BatchNorm statistics far from their initial values; the batch size is dynamic; an
export that disagrees, or a corrupted model.onnx, is refused in one line; classify gives
the same top classes through both backends, and through onnxruntime without MXNet."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnx", reason="onnx not installed (python3 -m pip install -e '.[onnx]')")
ort = pytest.importorskip("onnxruntime",
                          reason="onnxruntime not installed (python3 -m pip install -e '.[onnx]')")

import symbols  # noqa: E402
import train_cifar  # noqa: E402
from common.cli import run_main  # noqa: E402
from common.files import write_json  # noqa: E402
from common.mx import mx  # noqa: E402
from tests.conftest import ROOT  # noqa: E402
from tests.train_support import TINY  # noqa: E402
from training import checkpoint as ckpt  # noqa: E402
from training import rundir
from training import onnx_export  # noqa: E402
from training.classify import Classifier, load_image  # noqa: E402
from training.classify import main as classify_main  # noqa: E402
from training.export import export_model, inference_symbol  # noqa: E402
from training.export import main as export_main  # noqa: E402

BOUND = onnx_export.PROB_TOL
MEAN, STD = [125.3, 123.0, 113.9], [63.0, 62.1, 66.7]

# Every unit with every shortcut (projection B, two units a stage so that identity
# shortcuts inside a stage are exercised), the other projection options, bottleneck units
# and the ImageNet network (7x7 stem, max-pool, four stages) at small widths.
VARIANTS = [dict(unit=u, shortcut=s) for u in symbols.UNITS for s in symbols.SHORTCUTS]
VARIANTS += [dict(unit=u, shortcut="identity", projection=p)
             for u in ("original", "full_preact") for p in ("A", "C")]
VARIANTS += [dict(unit="full_preact", shortcut=s, projection="A")
             for s in ("constant_scaling", "exclusive_gating", "shortcut_only_gating",
                       "dropout")]
VARIANTS += [dict(unit="relu_before_add", shortcut="exclusive_gating", projection="C"),
             dict(num_layers=11, bottleneck=True, unit="full_preact", shortcut="identity"),
             dict(num_layers=11, bottleneck=True, unit="original", shortcut="exclusive_gating",
                  projection="A"),
             dict(num_layers=None, units=(1, 1, 1, 1), widths=(8, 16, 16, 32),
                  image_shape=(3, 64, 64), unit="original", shortcut="identity"),
             dict(num_layers=None, units=(1, 1, 1, 1), widths=(16, 32, 32, 64), bottleneck=True,
                  image_shape=(3, 64, 64), unit="full_preact", shortcut="exclusive_gating")]


def variant_id(net):
    return "-".join(str(v) for k, v in net.items() if k not in ("units", "widths"))


def random_params(symbol, shape, seed=0):
    """Xavier weights; BatchNorm scales, shifts and moving statistics, and gate biases,
    drawn far from their initial values, so that inference depends on every one."""
    mod = mx.mod.Module(inference_symbol(symbol), label_names=None)
    mod.bind([("data", (1,) + tuple(shape))], for_training=False)
    mx.random.seed(seed)
    mod.init_params(mx.init.Xavier(magnitude=2))
    arg, aux = mod.get_params()
    rng = np.random.default_rng(seed)
    for params in (arg, aux):
        for name, value in params.items():
            if name.endswith(("_gamma", "_moving_var")):
                params[name] = mx.nd.array(rng.uniform(0.5, 2.0, value.shape))
            elif name.endswith(("_beta", "_moving_mean", "_gate_bias")):
                params[name] = mx.nd.array(rng.normal(0.0, 0.5, value.shape))
    return arg, aux


def make_run(folder, num_layers=14, image_shape=(3, 32, 32), data_dir=None, seed=0, **net):
    """A run directory (checkpoint of epoch 1 and config.json) of a network with
    ``random_params``, as a trainer leaves it."""
    symbol = symbols.get_symbol(10, num_layers, image_shape, **net)
    arg, aux = random_params(symbol, image_shape, seed)
    os.makedirs(folder, exist_ok=True)
    ckpt.save_checkpoint(str(folder), 1, 1, symbol, arg, aux)
    size = image_shape[1]
    config = {"num_classes": 10, "num_layers": num_layers, "unit": "full_preact",
              "shortcut": "identity", "projection": "B", **net,
              "preprocess": {"image_shape": list(image_shape), "resize": size, "crop": size,
                             "mean": MEAN, "std": STD}}
    if data_dir:
        config.update(dataset="cifar10", data_dir=data_dir)
    write_json(os.path.join(folder, rundir.CONFIG), config)
    return str(folder)


def image_batch(cifar_folder, shape, count=12):
    """Normalised images: the generated CIFAR test images (enlarged for bigger nets) and
    Gaussian noise, an input far from the data."""
    from data.cifar import load_cifar
    pixels = load_cifar(cifar_folder, train=False)[0][:count // 2].astype(np.float32)
    factor = shape[1] // 32
    pixels = pixels.repeat(factor, axis=2).repeat(factor, axis=3)
    x = (pixels - np.float32(MEAN)[:, None, None]) / np.float32(STD)[:, None, None]
    noise = np.random.default_rng(1).standard_normal((count - len(x),) + tuple(shape))
    return np.concatenate([x, noise]).astype(np.float32)


def mxnet_probabilities(run, images, epoch=1):
    """The checkpoint's training symbol in evaluation mode (not the exported files)."""
    sym, arg, aux = mx.model.load_checkpoint(os.path.join(run, "model"), epoch)
    mod = mx.mod.Module(sym)
    mod.bind([("data", images.shape)], [("softmax_label", (len(images),))], for_training=False)
    mod.set_params(arg, aux)
    mod.forward(mx.io.DataBatch([mx.nd.array(images)], [mx.nd.zeros(len(images))]),
                is_train=False)
    return mod.get_outputs()[0].asnumpy()


def onnxruntime_probabilities(export, images):
    """model.onnx run by onnxruntime directly."""
    session = ort.InferenceSession(os.path.join(export, "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    return session.run(["prob"], {"data": images})[0]


@pytest.mark.parametrize("net", VARIANTS, ids=variant_id)
def test_every_variant_exports_what_mxnet_computes(net, generated_cifar10, tmp_path):
    run = make_run(tmp_path / "run", **net)
    export = export_model(run)
    with open(os.path.join(export, "model.json")) as f:
        check = json.load(f)["onnx"]
    assert check["max_prob_diff"] <= BOUND and check["max_logit_diff_rel"] <= BOUND
    images = image_batch(generated_cifar10, net.get("image_shape", (3, 32, 32)))
    expected = mxnet_probabilities(run, images)
    got = onnxruntime_probabilities(export, images)
    assert got.shape == expected.shape == (len(images), 10)
    np.testing.assert_allclose(got, expected, rtol=0, atol=BOUND)
    assert (got.argmax(1) == expected.argmax(1)).all()


def test_batchnorm_statistics_reach_the_onnx_graph(generated_cifar10, tmp_path):
    # the same weights with other moving statistics: the ONNX outputs follow them
    run = make_run(tmp_path / "run", unit="original", shortcut="identity")
    images = image_batch(generated_cifar10, (3, 32, 32))
    first = onnxruntime_probabilities(export_model(run), images)
    arg, aux = ckpt.load_params(run, rundir.find_checkpoint(run))
    aux = {k: v * 1.5 if k.endswith("moving_var") else v for k, v in aux.items()}
    sym = mx.sym.load(os.path.join(run, "model-symbol.json"))
    ckpt.save_checkpoint(run, 2, 2, sym, arg, aux)
    second = onnxruntime_probabilities(export_model(run), images)
    assert np.abs(first - second).max() > 100 * BOUND
    np.testing.assert_allclose(second, mxnet_probabilities(run, images, epoch=2), atol=BOUND)


def test_an_imagenet_export_is_checked_on_its_validation_images(generated_cifar10, tmp_path):
    # val.rec's first images, resized and centre-cropped as evaluation does, then generated
    from PIL import Image

    import data
    from training.classify import preprocess
    from training.export import check_images
    pixels = data.load_batch(os.path.join(generated_cifar10, "test_batch"))[0][:3]
    for i, image in enumerate(pixels):
        os.makedirs(tmp_path / "images" / f"class{i}")
        Image.fromarray(image.transpose(1, 2, 0)).resize((90, 72)).save(
            tmp_path / "images" / f"class{i}" / "a.png")
    for name in ("train", "val"):
        data.pack_imagenet(str(tmp_path / "images"), str(tmp_path / name), shuffle=False,
                           progress=False)
    pre = {"image_shape": [3, 64, 64], "resize": 73, "crop": 64, "mean": MEAN, "std": STD}
    images, source = check_images({"data_dir": str(tmp_path)}, pre)
    assert source == "3 images of val.rec and 13 generated" and images.shape == (16, 3, 64, 64)
    with Image.open(tmp_path / "images" / "class0" / "a.png") as first:
        np.testing.assert_array_equal(images[0], preprocess(first, pre))
    run = make_run(tmp_path / "run", num_layers=None, units=(1, 1, 1, 1), widths=(8, 8, 16, 16),
                   image_shape=(3, 64, 64), unit="original")
    config_path = os.path.join(run, rundir.CONFIG)
    config = dict(json.load(open(config_path)), data_dir=str(tmp_path), preprocess=pre)
    write_json(config_path, config)
    with open(os.path.join(export_model(run), "model.json")) as f:
        check = json.load(f)["onnx"]
    assert check["checked_on"] == source and check["max_prob_diff"] <= BOUND


def test_reversed_scalar_ops_convert_whatever_their_name(tmp_path):
    # MXNet's own converters put the scalar first only for generated names (_rminusscalar0)
    x = mx.sym.Variable("data")
    net = mx.sym.Group([mx.sym._internal._rminus_scalar(x, scalar=1.0, name="complement"),
                        mx.sym._internal._rdiv_scalar(x, scalar=2.0, name="ratio"),
                        1.0 - x])
    onnx_export.install_converters()
    path = str(tmp_path / "ops.onnx")
    mx.onnx.export_model(net, {}, [(2, 3)], np.float32, path)
    values = np.array([[0.25, 0.5, 4.0], [1.0, -2.0, 8.0]], np.float32)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    complement, ratio, generated = session.run(None, {"data": values})
    np.testing.assert_allclose(complement, 1 - values, rtol=1e-7)
    np.testing.assert_allclose(ratio, 2 / values, rtol=1e-7)
    np.testing.assert_allclose(generated, 1 - values, rtol=1e-7)


def test_a_wrong_conversion_is_refused_and_leaves_no_model_onnx(tmp_path, monkeypatch):
    # MXNet's name-dependent converter of 1 - g exports the gates as g - 1: the check
    # catches it, names the variant, and the model.onnx of an earlier export is gone
    from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph
    from mxnet.onnx.mx2onnx._op_translations import _op_translations_opset12 as opset12
    run = make_run(tmp_path / "run", shortcut="exclusive_gating")
    export = export_model(run)
    assert os.path.isfile(os.path.join(export, "model.onnx"))
    monkeypatch.setattr(onnx_export, "install_converters", lambda: None)
    monkeypatch.setitem(MXNetGraph.registry_[12], "_rminus_scalar", opset12.convert_rminus_scalar)
    with pytest.raises(ValueError) as err:
        export_model(run)
    message = str(err.value)
    assert "\n" not in message and "exclusive_gating" in message and "ResNet-14" in message
    assert "max |probability difference|" in message and "model.onnx not written" in message
    assert not [f for f in os.listdir(export) if "onnx" in f]  # no file, no temporary
    assert os.path.isfile(os.path.join(export, "model-0000.params"))
    with open(os.path.join(export, "model.json")) as f:
        assert "onnx" not in json.load(f)


def test_the_batch_size_is_dynamic(generated_cifar10, tmp_path):
    run = make_run(tmp_path / "run", shortcut="shortcut_only_gating", num_layers=8)
    export = export_model(run)  # exported for batch 1, checked at batch 16
    import onnx
    graph = onnx.load(os.path.join(export, "model.onnx")).graph
    assert [i.name for i in graph.input] == ["data"] and [o.name for o in graph.output] == ["prob"]
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in (graph.input[0], graph.output[0])]
    assert dims == [["N", 3, 32, 32], ["N", 10]]
    images = image_batch(generated_cifar10, (3, 32, 32), count=37)
    expected = mxnet_probabilities(run, images)
    session = Classifier(export, backend="onnx")
    for n in (1, 5, 37):
        np.testing.assert_allclose(session.probabilities(images[:n]), expected[:n], atol=BOUND)
    with pytest.raises(ValueError, match="onnxruntime: "):
        session.probabilities(images[:2, :, :16])


def classify_lines(args, capsys):
    """stdout lines of ``python3 -m training.classify ARGS``."""
    assert classify_main(args) == 0
    return capsys.readouterr().out.splitlines()


def image_files(cifar_folder, folder, count=4):
    """PNG files of test images, and a larger non-square JPEG (resized and cropped)."""
    from PIL import Image

    from data.cifar import load_cifar
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, pixels in enumerate(load_cifar(cifar_folder, train=False)[0][:count]):
        paths.append(os.path.join(folder, f"{i}.png"))
        Image.fromarray(pixels.transpose(1, 2, 0)).save(paths[-1])
    paths.append(os.path.join(folder, "big.jpg"))
    big = np.random.default_rng(2).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    Image.fromarray(big).save(paths[-1], quality=95)
    return paths


def test_classify_gives_the_same_top_classes_through_both_backends(generated_cifar10, tmp_path,
                                                                   capsys):
    run = make_run(tmp_path / "run", data_dir=generated_cifar10, unit="original",
                   shortcut="exclusive_gating")
    assert export_main([run]) == 0
    export = capsys.readouterr().out.strip()
    with open(os.path.join(export, "model.json")) as f:
        assert json.load(f)["onnx"]["checked_on"].startswith("16 images of cifar10")
    paths = image_files(generated_cifar10, tmp_path / "images")
    mxnet, onnx = Classifier(export), Classifier(export, backend="onnx")
    for (path, a), (_, b) in zip(mxnet.classify(paths, 3), onnx.classify(paths, 3)):
        assert [c for c, _ in a] == [c for c, _ in b], path
        np.testing.assert_allclose([p for _, p in a], [p for _, p in b], atol=BOUND)
    lines = classify_lines([run] + paths, capsys)
    assert [line.split(": ")[1].split()[0] for line in lines] == \
        [line.split(": ")[1].split()[0] for line in classify_lines([run, "--onnx"] + paths, capsys)]
    assert len(lines) == len(paths)


def test_onnx_classify_needs_no_mxnet(generated_cifar10, tmp_path, capsys):
    run = make_run(tmp_path / "run", num_layers=8, unit="relu_only_preact", shortcut="dropout")
    export = export_model(run)
    paths = image_files(generated_cifar10, tmp_path / "images", count=2)
    expected = classify_lines([export, "--top-k", "2"] + paths, capsys)
    code = ("import sys; sys.modules['mxnet'] = None\n"  # any import of MXNet now fails
            "from common.cli import run_main; from training.classify import main\n"
            "run_main(main, sys.argv[1:], prog='training.classify')\n"
            "assert not any(m.startswith('mxnet') for m in sys.modules if sys.modules[m])")
    result = subprocess.run([sys.executable, "-c", code, export, "--onnx",
                             "--top-k", "2"] + paths, cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    got = result.stdout.splitlines()
    assert [g.split(",")[0].split()[1] for g in got] == [e.split(",")[0].split()[1] for e in expected]
    assert [line.split(": ")[0] for line in got] == paths


def onnx_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_main(classify_main, argv, prog="training.classify")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("training.classify: error: ")
    return err[0]


def test_a_corrupted_model_onnx_is_refused_in_one_line(generated_cifar10, tmp_path, capsys):
    run = make_run(tmp_path / "run", num_layers=8)
    export = export_model(run)
    path = os.path.join(export, "model.onnx")
    image = image_files(generated_cifar10, tmp_path / "images", count=1)[0]
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF  # one weight's bits flipped: still a valid protobuf
    open(path, "wb").write(bytes(data))
    assert "is corrupt" in onnx_error([export, image, "--onnx"], capsys)
    open(path, "wb").write(bytes(data[:len(data) // 3]))  # truncated, checksum not recorded
    info_path = os.path.join(export, "model.json")
    info = json.load(open(info_path))
    info["onnx"]["sha256"] = None
    write_json(info_path, info)
    assert "not a valid ONNX model" in onnx_error([export, image, "--onnx"], capsys)
    os.remove(path)
    assert "no such file" in onnx_error([export, image, "--onnx"], capsys)
    assert "takes no --gpu" in onnx_error([export, image, "--onnx", "--gpu", "0"], capsys)


def test_without_onnx_the_export_says_how_to_get_it(generated_cifar10, tmp_path, monkeypatch,
                                                    caplog, capsys):
    run = make_run(tmp_path / "run", num_layers=8)
    export = export_model(run)  # an earlier export with model.onnx
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails
    export_model(run)
    assert "model.onnx not written: onnxruntime is not installed" in caplog.text
    assert "pip install -e '.[onnx]'" in caplog.text
    assert not os.path.exists(os.path.join(export, "model.onnx"))
    image = image_files(generated_cifar10, tmp_path / "images", count=1)[0]
    assert "has no model.onnx" in onnx_error([export, image, "--onnx"], capsys)
    assert len(classify_lines([export, image], capsys)) == 1  # MXNet still classifies


def test_the_trainer_exports_onnx(generated_cifar10, tmp_path):
    out = str(tmp_path / "r")
    train_cifar.main(["--data-dir", generated_cifar10, "--output-dir", out, "--num-epochs", "1",
                      "--shortcut", "exclusive_gating", "--export"] + TINY)
    with open(os.path.join(out, "export", "model.json")) as f:
        check = json.load(f)["onnx"]
    assert check["checked_on"].startswith("16 images of cifar10")
    assert check["max_prob_diff"] <= BOUND
    assert onnx_export.file_sha256(os.path.join(out, "export", "model.onnx")) == check["sha256"]


def test_real_cifar_images_give_the_same_top_classes(shared_cifar10, tmp_path):
    # the extra layer: the real sample's images, in the check and through both backends
    from data.sample import make_cifar_sample
    data_dir = make_cifar_sample(shared_cifar10, str(tmp_path / "sample"), 20, 40)
    run = make_run(tmp_path / "run", data_dir=data_dir, unit="full_preact",
                   shortcut="exclusive_gating")
    export = export_model(run)
    with open(os.path.join(export, "model.json")) as f:
        assert json.load(f)["onnx"]["checked_on"] == "16 images of cifar10"
    paths = image_files(data_dir, tmp_path / "images", count=6)
    images = np.stack([load_image(p, Classifier(export).info["preprocess"]) for p in paths])
    np.testing.assert_allclose(onnxruntime_probabilities(export, images),
                               mxnet_probabilities(run, images), atol=BOUND)
    tops = [[c for c, _ in top] for _, top in Classifier(export, backend="onnx").classify(paths)]
    assert tops == [[c for c, _ in top] for _, top in Classifier(export).classify(paths)]


def test_the_inference_benchmark_times_both_backends(capsys):
    from benchmarks import bench_infer
    results = bench_infer.main(["--depths", "8", "--batch-sizes", "1,3", "--repeats", "1",
                                "--seconds", "0.05", "--max-wait", "0"])
    assert list(results) == [8] and list(results[8]) == [1, 3]
    assert all(s["mxnet"] > 0 and s["onnxruntime"] > 0 for s in results[8].values())
    out = capsys.readouterr().out
    assert "| R-8 | 3 |" in out and "onnxruntime / MXNet" in out and "OMP_NUM_THREADS" in out
