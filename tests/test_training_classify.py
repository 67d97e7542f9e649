"""training.classify: image files classified with an export folder through MXNet (the
onnxruntime backend is in test_training_onnx_export.py), the same numbers as the trained
network, the test error on a CIFAR test set the one the run measured, damaged export
files and contradicting test sets refused in one line, and MXNet imported only by the
MXNet backend."""
import ast
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from common.cli import run_main
from common.mx import mx
from tests.train_support import ROOT, copy_run, run_script
from training import classify
from training.classify import INFO, PARAMS_FILE, SYMBOL_FILE, Classifier, load_image
from training.classify import main as classify_main
from training.export import export_model
from training.rundir import read_metrics


def test_export_and_classify_image_files(run3, tmp_path, capsys):
    import matplotlib.image
    out = copy_run(run3, tmp_path)
    model_dir = export_model(out)
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    path = str(tmp_path / "cat.png")
    matplotlib.image.imsave(path, pixels)
    model = Classifier(model_dir)
    [(name, top)] = model.classify([path], top_k=10)
    probs = [p for _, p in top]
    assert name == path and sum(probs) == pytest.approx(1, abs=1e-5)
    assert probs == sorted(probs, reverse=True)
    assert {c for c, _ in top} == set(model.info["classes"])
    # the exported net computes what the trained net computes in evaluation
    sym, arg, aux = mx.model.load_checkpoint(os.path.join(out, "model"), 3)
    mod = mx.mod.Module(sym)
    mod.bind([("data", (1, 3, 32, 32))], [("softmax_label", (1,))], for_training=False)
    mod.set_params(arg, aux)
    x = load_image(path, model.info["preprocess"])[None]
    mod.forward(mx.io.DataBatch([mx.nd.array(x)], [mx.nd.zeros(1)]), is_train=False)
    np.testing.assert_allclose(model.probabilities(x), mod.get_outputs()[0].asnumpy(),
                               rtol=1e-5, atol=1e-6)
    assert classify_main([out, path, "--top-k", "2"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"{path}: ") and printed.count(" 0.") + printed.count(" 1.") == 2


def test_classify_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_main(classify_main, [str(tmp_path), "x.png"], prog="training.classify")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "not an export folder" in err and "python3 -m training.export RUN_DIR" in err


def test_classify_refuses_damaged_export_files_in_one_line(run3, tmp_path):
    import matplotlib.image
    model_dir = export_model(copy_run(run3, tmp_path), onnx=False)
    image = str(tmp_path / "cat.png")
    matplotlib.image.imsave(image, np.zeros((32, 32, 3), np.uint8))

    def classify_error(damage, name):
        folder = str(tmp_path / f"{damage}_{name}")
        shutil.copytree(model_dir, folder)
        path = os.path.join(folder, name)
        if damage == "unsummed":  # an export written before the sums: MXNet's own error
            info = json.load(open(os.path.join(folder, INFO)))
            del info["sha256"]
            json.dump(info, open(os.path.join(folder, INFO), "w"))
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2 if name != INFO else 5)
        out = run_script(["-m", "training.classify", folder, image])
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        [line] = out.stderr.strip().splitlines()
        return line, path

    for name in (PARAMS_FILE, SYMBOL_FILE):
        line, path = classify_error("truncated", name)
        assert line == (f"training.classify: error: {path} is corrupt: its SHA-256 differs "
                        f"from the one recorded in {INFO} at export; export the run again "
                        "(RESNET_TRACEBACK=1 shows the traceback)")
    line, path = classify_error("truncated", INFO)
    assert line.startswith(f"training.classify: error: {path}: not valid JSON")
    line, _ = classify_error("unsummed", PARAMS_FILE)
    folder = str(tmp_path / f"unsummed_{PARAMS_FILE}")
    assert line == (f"training.classify: error: {folder}: MXNet cannot load the export "
                    "(fi->Read(data): Invalid NDArray file format); export the run again "
                    "(RESNET_TRACEBACK=1 shows the traceback)")


WITHOUT_MXNET = """
import sys
sys.modules["mxnet"] = None  # any import of MXNet now fails
from training.classify import Classifier, find_export, load_image, read_info
folder = find_export(sys.argv[1])
x = load_image(sys.argv[2], read_info(folder)["preprocess"])
print(folder, x.dtype, x.shape)
try:
    Classifier(folder, backend="onnx")
except FileNotFoundError as err:
    print(err)
assert not any(m.startswith("mxnet") for m in sys.modules if sys.modules[m])
try:
    Classifier(folder)
except ImportError:
    print("the MXNet backend imports MXNet")
"""


def test_classify_imports_no_mxnet_unless_its_mxnet_backend_is_chosen(tmp_path):
    # an export folder without model.onnx: everything up to the ONNX backend's own
    # refusal runs without MXNet; only the MXNet backend asks for it
    from PIL import Image
    folder = tmp_path / "run" / "export"
    folder.mkdir(parents=True)
    pre = {"image_shape": [3, 8, 8], "resize": 8, "crop": 8, "mean": [1, 2, 3],
           "std": [4, 5, 6]}
    (folder / INFO).write_text(json.dumps({"classes": ["a", "b"], "preprocess": pre}))
    image = str(tmp_path / "a.png")
    Image.fromarray(np.zeros((12, 10, 3), np.uint8)).save(image)
    result = subprocess.run([sys.executable, "-c", WITHOUT_MXNET, str(tmp_path / "run"), image],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{folder} float32 (3, 8, 8)",
        f"{folder} has no model.onnx: export again with onnx and onnxruntime installed",
        "the MXNet backend imports MXNet"]


def imports_mxnet(node):
    """Whether the AST ``node`` is an import of MXNet or of ``common.mx``."""
    return (isinstance(node, ast.ImportFrom) and node.module in ("common.mx", "mxnet")
            or isinstance(node, ast.Import)
            and any(alias.name.split(".")[0] == "mxnet" for alias in node.names))


def test_mxnet_is_imported_in_one_place():
    tree = ast.parse(open(classify.__file__).read(), classify.__file__)
    imports = [node for node in ast.walk(tree) if imports_mxnet(node)]
    importers = [f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
                 for node in ast.walk(f) if imports_mxnet(node)]
    assert len(imports) == 1 and importers == ["mxnet"]


def test_the_test_error_of_an_export_is_the_one_its_run_measured(run3, generated_cifar10,
                                                                 tmp_path, capsys):
    model_dir = export_model(copy_run(run3, tmp_path))
    with open(os.path.join(model_dir, INFO)) as f:
        assert json.load(f)["dataset"] == "cifar10"
    last = read_metrics(run3[0])[-1]
    measured = 100 * (1 - last["val_acc"])  # the run tested on the whole test batch
    for backend in ([], ["--onnx"]):
        assert classify_main([model_dir, "--test-set", generated_cifar10] + backend) == 0
        [line] = capsys.readouterr().out.splitlines()
        name = "onnx" if backend else "mxnet"
        assert line == (f"{model_dir}: test error {measured:.2f} % on the 60 test images of "
                        f"{generated_cifar10} ({name})")
    images, labels = classify.read_test_set(generated_cifar10, Classifier(model_dir).info)
    # the error counts whole images, whatever the batch
    assert classify.error_rate(Classifier(model_dir), images, labels, batch_size=7) == \
        pytest.approx(measured)


def test_a_test_set_that_contradicts_the_network_is_refused_in_one_line(
        run3, generated_cifar10, generated_cifar100, tmp_path):
    model_dir = export_model(copy_run(run3, tmp_path), onnx=False)

    def refusal(*args):
        out = run_script(["-m", "training.classify", model_dir] + list(args))
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        [line] = out.stderr.strip().splitlines()
        return line

    assert refusal() == \
        "training.classify: error: give image files or --test-set DIR, one of the two"
    assert refusal("x.png", "--test-set", str(tmp_path)) == \
        "training.classify: error: give image files or --test-set DIR, one of the two"
    cifar100 = str(tmp_path / "cifar-100-python")
    shutil.copytree(generated_cifar100, cifar100)
    line = refusal("--test-set", str(tmp_path))  # the folder holds CIFAR-100 only
    assert line.startswith("training.classify: error: no CIFAR-10 data in ")
    info = json.load(open(os.path.join(model_dir, INFO)))
    info["dataset"] = "cifar100"
    json.dump(info, open(os.path.join(model_dir, INFO), "w"))
    assert refusal("--test-set", str(tmp_path)).startswith(
        f"training.classify: error: {cifar100}: its classes (")
    info.update(dataset="cifar10", preprocess=dict(info["preprocess"], image_shape=[3, 28, 28]))
    json.dump(info, open(os.path.join(model_dir, INFO), "w"))
    assert refusal("--test-set", generated_cifar10) == ("training.classify: error: "
        f"{generated_cifar10} holds 3x32x32 images; the network takes 3x28x28 "
        "(RESNET_TRACEBACK=1 shows the traceback)")
