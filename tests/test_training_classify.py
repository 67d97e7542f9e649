"""training.classify: image files classified with an export folder through MXNet (the
onnxruntime backend is in test_training_onnx_export.py), the same numbers as the trained
network, the test error on a CIFAR test set the one the run measured, damaged export
files and contradicting test sets refused in one line, and MXNet imported only by the
MXNet backend."""
import ast
import json
import os
import re
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
from training.export import export_model, read_class_names
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


@pytest.fixture(scope="module")
def photo_export(generated_cifar10, tmp_path_factory):
    """An export of a 1-epoch ResNet-18 trained on records of 3 class folders of 30x40
    JPEGs with the scale augmentation (so with a per-pixel mean), and that folder."""
    import train_imagenet
    from PIL import Image
    import data
    root = tmp_path_factory.mktemp("photos")
    images, labels = data.load_cifar(generated_cifar10)
    for c in range(3):
        (root / "images" / f"class{c}").mkdir(parents=True)
        for j, i in enumerate(np.flatnonzero(labels == c)[:8]):
            picture = Image.fromarray(images[i].transpose(1, 2, 0)).resize((40, 30))
            picture.save(root / "images" / f"class{c}" / f"img{j}.jpg", quality=95)
    for name in ("train", "val"):
        data.pack_imagenet(str(root / "images"), str(root / name), progress=False)
    run = str(root / "run")
    train_imagenet.main(["--data-dir", str(root), "--output-dir", run, "--num-layers", "18",
                         "--image-shape", "3,40,40", "--num-classes", "3", "--top-k", "2",
                         "--batch-size", "8", "--num-epochs", "1", "--data-nthreads", "1",
                         "--no-plots"])
    names = root / "names.txt"
    names.write_text("tench\nspringer\ncassette\n")
    return export_model(run, class_names=read_class_names(str(names))), str(root / "images")


def test_crop_boxes_are_the_centre_and_the_four_corners():
    assert classify.crop_boxes(10, 8, 4) == [(3, 2, 7, 6)]
    assert classify.crop_boxes(10, 8, 4, ten_crop=True) == [
        (3, 2, 7, 6), (0, 0, 4, 4), (6, 0, 10, 4), (0, 4, 4, 8), (6, 4, 10, 8)]


def test_an_export_subtracts_its_per_pixel_mean_and_ten_crops_average(photo_export):
    from PIL import Image
    model_dir, folder = photo_export
    model = Classifier(model_dir, batch_size=10)
    pre = model.info["preprocess"]
    assert model.info["classes"] == ["class0", "class1", "class2"]  # the packed folders
    assert model.names == ["tench", "springer", "cassette"]
    assert pre["mean_image"] in model.info["sha256"]
    mean = np.load(os.path.join(model_dir, pre["mean_image"]))
    np.testing.assert_array_equal(mean, model.mean_image)
    path = os.path.join(folder, "class1", "img0.jpg")
    img = Image.open(path)
    resized = classify.resize_shorter(img, pre["resize"])
    assert min(resized.size) == pre["resize"] == 46 and resized.size == (61, 46)
    crops = model.inputs(img, ten_crop=True)
    assert crops.shape == (10, 3, 40, 40)
    left = np.asarray(resized.crop((0, 0, 40, 40)), np.float32).transpose(2, 0, 1)
    np.testing.assert_allclose(crops[1], left - mean, atol=1e-4)  # the top-left corner
    np.testing.assert_allclose(crops[6], left[:, :, ::-1] - mean, atol=1e-4)  # mirrored
    np.testing.assert_array_equal(crops[0], load_image(path, pre, mean))  # the centre
    by_hand = model.probabilities(crops).mean(axis=0)
    np.testing.assert_allclose(model.image_probabilities([img], ten_crop=True)[0], by_hand,
                               rtol=1e-5, atol=1e-6)
    assert len({crop.tobytes() for crop in crops}) == 10


def test_the_errors_on_a_folder_of_class_folders(photo_export, tmp_path, capsys):
    model_dir, folder = photo_export
    model = Classifier(model_dir, batch_size=10)
    items = classify.read_class_folder(folder, model.info)
    assert len(items) == 24 and items[8] == (1, os.path.join(folder, "class1", "img0.jpg"))
    for ten_crop in (False, True):
        prob = np.concatenate([model.image_probabilities([classify.open_image(p)], ten_crop)
                               for _, p in items])
        labels = np.array([label for label, _ in items])
        top1 = 100 * np.mean(prob.argmax(axis=1) != labels)
        top2 = 100 * np.mean(~(np.argsort(-prob, axis=1)[:, :2] == labels[:, None]).any(axis=1))
        assert classify.top_k_errors(classify.folder_probabilities(model, items, ten_crop),
                                     labels, top_k=2) == pytest.approx((top1, top2))
        for backend in ([], ["--onnx"]):
            assert classify_main([model_dir, "--test-set", folder] + backend +
                                 (["--ten-crop"] if ten_crop else [])) == 0
            line = capsys.readouterr().out
            assert f"top-1 error {top1:.2f} %, top-2 error {top2:.2f} % on the 24 images" in line
    assert classify_main([model_dir, "--test-set", folder, "--ten-crop", "--predictions",
                          str(tmp_path / "pred.json")]) == 0
    capsys.readouterr()
    written = json.loads((tmp_path / "pred.json").read_text())
    assert written["names"] == ["tench", "springer", "cassette"] and written["crops"] == "10-crop"
    assert written["labels"] == [label for label, _ in items]
    assert written["top5"] == np.argsort(-prob, axis=1)[:, :5].tolist()  # the last, 10-crop
    assert classify_main([model_dir, os.path.join(folder, "class2", "img3.jpg"), "--top-k",
                          "3", "--ten-crop"]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in ("tench", "springer", "cassette"))
    shutil.copytree(os.path.join(folder, "class0"), tmp_path / "val" / "class0")
    shutil.copytree(os.path.join(folder, "class1"), tmp_path / "val" / "goldfish")
    with pytest.raises(ValueError, match=re.escape(
            "class folders (class0, goldfish, ...) are not the network's classes (class0, "
            "class1, class2, ...)")):
        classify.read_class_folder(str(tmp_path / "val"), model.info)
